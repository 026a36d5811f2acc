/*
 * Format 1.1 per-process and per-thread state (FORMAT.md 4.11-4.14), applied with remote
 * syscalls in the stopped child, in an order the kernel's permission rules allow:
 *
 *   restore_state_check   before any process exists: what the image says it could not
 *                         capture, or this restore cannot bring back, is refused with one
 *                         line (a warning with --force).
 *   restore_state_early   while the child is still root with every capability: seccomp
 *                         filters and strict mode (installing a filter needs CAP_SYS_ADMIN or
 *                         no_new_privs; PTRACE_O_SUSPEND_SECCOMP keeps them from filtering our
 *                         remote calls until detach), supplementary groups, and KEEPCAPS when
 *                         the credentials will change, so the recorded capabilities survive.
 *   restore_state         after the credentials: bounding set, securebits, capabilities,
 *                         ambient set, rseq, timer slack, pdeathsig, no_new_privs, process
 *                         prctl flags, oom_score_adj, scheduler (sched_setattr from outside),
 *                         then the timers, last, so they count from as close to the moment
 *                         the process runs as possible. Signals they raise meanwhile stay
 *                         pending (every thread blocks all signals until restore_finish).
 * Any failure returns -errno with the record named; main.c's one failure path kills the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "restore.h"

#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS     77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON  1
#endif
#define SECCOMP_SET_MODE_FILTER_  1
#define SECCOMP_MODE_STRICT_      1
#define SECCOMP_FILTER_FLAG_KEEP  (2u | 4u)   /* LOG, SPEC_ALLOW: what a restorer may pass again */
#define SCHED_RESET_ON_FORK_      0x40000000u
#define SCHED_FLAG_RESET_ON_FORK_ 0x01

#define SCRATCH_OFF 2048                 /* our part of the trampoline's scratch page */
#define SCRATCH_LEN 2048

static const struct img_thread_state *tstate_of(const struct restore_args *a, const struct rst_thread *t)
{
	const struct img_state *st = &a->img->st;
	for (size_t i = 0; i < st->ntstates; i++)
		if (st->tstates[i].thread_idx == t->img_idx)
			return &st->tstates[i];
	return NULL;
}

/* --detach ends the restorer at once: a parent-death signal fires for the tree's root (whose
 * parent is the restorer), not for a process whose parent is restored with it. */
static int parent_is_restorer(const struct restore_args *a)
{
	return !a->tree_entry || a->img->proc.f.pid == a->img->tree_root;
}

uint32_t rst_main_pdeathsig(const struct restore_args *a)
{
	const struct img_thread_state *ts = a->nthreads ? tstate_of(a, &a->threads[0]) : NULL;
	if (!ts || !(ts->f.valid & CKIMG_TS_PRCTL) || (a->detach && parent_is_restorer(a)))
		return 0;
	return ts->f.pdeathsig;
}

/* Either refuse (one line, the caller fails) or, with --force, warn and go on. */
static int refuse(struct restore_args *a, const char *fmt, const char *what, unsigned n)
{
	char buf[400];
	snprintf(buf, sizeof(buf), fmt, n, what);
	if (a->force) {
		rst_warn("%s (--force: restoring without it)", buf);
		return 0;
	}
	return rst_err(a, -ENOTSUP, "%s (use --force to restore without it)", buf);
}

int restore_state_check(struct restore_args *a)
{
	const struct img *img = a->img;
	const struct img_state *st = &img->st;
	int err;

	/* warnings first: a refusal below ends the run */
	for (uint32_t i = 0; i < st->nptimers; i++)
		if (st->ptimers[i].overrun)
			rst_warn("TIMERS record #%u: timer %u had an overrun count of %u, which cannot be restored",
				 st->timers_seq, st->ptimers[i].timer_id, st->ptimers[i].overrun);
	if (st->have_pstate && (st->pstate.valid & CKIMG_PS_PRCTL) && st->pstate.dumpable == 2)
		rst_warn("PROCESS_STATE record #%u: dumpable 2 (suid_dumpable) is restored as 0", st->pstate_seq);
	if (st->ntstates) {
		for (size_t k = 0; k < img->nthreads; k++) {
			int found = 0;
			for (size_t i = 0; i < st->ntstates; i++)
				found |= st->tstates[i].thread_idx == (int)k;
			if (!found && (err = refuse(a, "THREAD record #%u: no THREAD_STATE record (%s)",
						    "rseq, capabilities, seccomp unknown", img->threads[k].seq)))
				return err;
		}
	}
	for (size_t i = 0; i < st->ntstates; i++) {
		const struct img_thread_state *t = &st->tstates[i];
		if (!(t->f.valid & CKIMG_TS_SECCOMP) &&
		    (err = refuse(a, "THREAD_STATE record #%u: %s", "seccomp state was not captured", t->seq)))
			return err;
		if ((t->f.valid & CKIMG_TS_SECCOMP) && t->f.seccomp_mode == 2 && t->f.seccomp_filter == CKIMG_NO_FILTER &&
		    (err = refuse(a, "THREAD_STATE record #%u: %s", "seccomp filters were not captured: the thread would run unconfined",
				  t->seq)))
			return err;
		if (!(t->f.valid & CKIMG_TS_RSEQ) &&
		    (err = refuse(a, "THREAD_STATE record #%u: %s", "rseq registration was not captured", t->seq)))
			return err;
		if ((t->f.valid & CKIMG_TS_PRCTL) && t->f.pdeathsig && a->detach && parent_is_restorer(a) &&
		    (err = refuse(a, "THREAD_STATE record #%u: %s", "a parent-death signal cannot be kept with --detach "
				  "(the restorer, its parent, exits at once)", t->seq)))
			return err;
	}
	return 0;
}

/* A buffer in the child: the scratch page's upper half, or a temporary mapping. */
struct cbuf {
	uint64_t addr, maplen;
};

static int cbuf_get(struct restore_args *a, size_t len, struct cbuf *b)
{
	if (len <= SCRATCH_LEN) {
		b->addr = a->tramp + 4096 + SCRATCH_OFF;
		b->maplen = 0;
		return 0;
	}
	b->maplen = (len + 4095) & ~(size_t)4095;
	long r = rst_rsys(a, &a->threads[0], SYS_mmap, 0, b->maplen, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0);
	if (r < 0 && r > -4096)
		return rst_err(a, (int)r, "mmap of a %zu-byte buffer in the child: %s", len, strerror((int)-r));
	b->addr = (uint64_t)r;
	return 0;
}

static void cbuf_put(struct restore_args *a, struct cbuf *b)
{
	if (b->maplen)
		rst_rsys(a, &a->threads[0], SYS_munmap, b->addr, b->maplen, 0, 0, 0, 0);
	b->maplen = 0;
}

/* Install the thread's filter chain, oldest first (the kernel runs the newest first). */
static int restore_seccomp(struct restore_args *a, struct rst_thread *t, const struct img_thread_state *ts)
{
	const struct img_state *st = &a->img->st;
	uint32_t chain[64], n = 0;
	struct cbuf b;
	int err;
	long r;

	if (!(ts->f.valid & CKIMG_TS_SECCOMP) || ts->f.seccomp_mode == 0)
		return 0;
	if (!a->seccomp_suspended)
		return rst_err(a, -EPERM, "THREAD_STATE record #%u: seccomp cannot be restored: PTRACE_O_SUSPEND_SECCOMP "
			       "was refused (needs CAP_SYS_ADMIN)", ts->seq);
	if (ts->f.seccomp_mode == 1) {
		r = rst_rsys(a, t, SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_STRICT_, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "THREAD_STATE record #%u: seccomp strict mode: %s", ts->seq, strerror((int)-r));
		return 0;
	}
	for (uint32_t f = ts->f.seccomp_filter; f != CKIMG_NO_FILTER; f = st->filters[f].h.parent) {
		if (n == 64)   /* the kernel limits a chain to MAX_INSNS_PER_PATH (32768) instructions */
			return rst_err(a, -E2BIG, "SECCOMP record #%u: a chain of more than 64 filters", st->seccomp_seq);
		chain[n++] = f;
	}
	if ((err = cbuf_get(a, 16 + CKIMG_SECCOMP_MAX_INSNS * 8, &b)))
		return err;
	while (n--) {
		const struct img_filter *f = &st->filters[chain[n]];
		struct { uint16_t len; uint16_t pad[3]; uint64_t filter; } prog = { (uint16_t)f->h.ninsns, { 0 }, b.addr + 16 };
		if (rst_write(a, b.addr, &prog, sizeof(prog)) || rst_write(a, b.addr + 16, f->insns, (size_t)f->h.ninsns * 8)) {
			cbuf_put(a, &b);
			return rst_err(a, -EIO, "SECCOMP record #%u: cannot write to the child", st->seccomp_seq);
		}
		r = rst_rsys(a, t, SYS_seccomp, SECCOMP_SET_MODE_FILTER_, f->h.flags & SECCOMP_FILTER_FLAG_KEEP, b.addr, 0, 0, 0);
		if (r < 0) {
			cbuf_put(a, &b);
			return rst_err(a, (int)r, "SECCOMP record #%u: filter %u of thread %d: %s", st->seccomp_seq, chain[n],
				       t->tid, strerror((int)-r));
		}
	}
	cbuf_put(a, &b);
	return 0;
}

static int restore_groups(struct restore_args *a)
{
	const struct img_state *st = &a->img->st;
	struct cbuf b;
	int err;

	if (!st->have_pstate || !(st->pstate.valid & CKIMG_PS_GROUPS))
		return 0;
	if ((err = cbuf_get(a, (size_t)st->pstate.ngroups * 4, &b)))
		return err;
	if (st->pstate.ngroups && rst_write(a, b.addr, st->groups, (size_t)st->pstate.ngroups * 4)) {
		cbuf_put(a, &b);
		return rst_err(a, -EIO, "PROCESS_STATE record #%u: cannot write to the child", st->pstate_seq);
	}
	/* the raw syscall sets one thread's credentials: every thread */
	for (size_t i = 0; i < a->nthreads; i++) {
		long r = rst_rsys(a, &a->threads[i], SYS_setgroups, st->pstate.ngroups, b.addr, 0, 0, 0, 0);
		if (r < 0) {
			cbuf_put(a, &b);
			return rst_err(a, (int)r, "PROCESS_STATE record #%u: setgroups (%u groups): %s", st->pstate_seq,
				       st->pstate.ngroups, strerror((int)-r));
		}
	}
	cbuf_put(a, &b);
	return 0;
}

/* Before setresuid away from root: keep the permitted set, so the recorded caps can be set. */
int rst_keepcaps(struct restore_args *a)
{
	for (size_t i = 0; i < a->nthreads; i++) {
		const struct img_thread_state *ts = tstate_of(a, &a->threads[i]);
		if (ts && (ts->f.valid & CKIMG_TS_CAPS) && ts->f.cap_permitted)
			rst_rsys(a, &a->threads[i], SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0, 0);
	}
	return 0;
}

int restore_state_early(struct restore_args *a)
{
	int err;

	for (size_t i = 0; i < a->nthreads; i++) {
		const struct img_thread_state *ts = tstate_of(a, &a->threads[i]);
		if (ts && (err = restore_seccomp(a, &a->threads[i], ts)))
			return err;
	}
	return restore_groups(a);
}

struct caps3 {
	struct { uint32_t version; int pid; } hdr;
	struct { uint32_t effective, permitted, inheritable; } d[2];
};

static int capset_remote(struct restore_args *a, struct rst_thread *t, uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct caps3 c = { { _LINUX_CAPABILITY_VERSION_3, 0 },
			   { { (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
			     { (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) } } };
	uint64_t at = a->tramp + 4096 + SCRATCH_OFF;
	if (rst_write(a, at, &c, sizeof(c)))
		return -EIO;
	long r = rst_rsys(a, t, SYS_capset, at, at + 8, 0, 0, 0, 0);
	return r < 0 ? (int)r : 0;
}

static int cap_last(void)
{
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC), v = 40;
	char buf[16] = { 0 };
	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			v = atoi(buf);
		close(fd);
	}
	return v > 0 && v < 64 ? v : 40;
}

static int restore_caps(struct restore_args *a, struct rst_thread *t, const struct img_thread_state *ts)
{
	const struct ckimg_thread_state_fixed *f = &ts->f;
	struct caps3 cur = { { _LINUX_CAPABILITY_VERSION_3, t->tid }, { { 0, 0, 0 }, { 0, 0, 0 } } };
	uint64_t prm, inh, bnd = 0;
	char path[96], line[256];
	int err, last = cap_last();
	long r;

	if (!(f->valid & CKIMG_TS_CAPS))
		return 0;
	if (syscall(SYS_capget, &cur.hdr, cur.d) < 0)
		return rst_err(a, -errno, "THREAD_STATE record #%u: capget: %s", ts->seq, strerror(errno));
	prm = cur.d[0].permitted | (uint64_t)cur.d[1].permitted << 32;
	inh = cur.d[0].inheritable | (uint64_t)cur.d[1].inheritable << 32;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", a->pid, t->tid);
	FILE *sf = fopen(path, "re");
	while (sf && fgets(line, sizeof(line), sf))
		if (!strncmp(line, "CapBnd:", 7))
			bnd = strtoull(line + 7, NULL, 16);
	if (sf)
		fclose(sf);
	/* effective = permitted: CAP_SETPCAP for the bounding set and securebits */
	if ((err = capset_remote(a, t, prm, prm, inh)))
		return rst_err(a, err, "THREAD_STATE record #%u: capset: %s", ts->seq, strerror(-err));
	for (int cap = 0; cap <= last; cap++)
		if ((bnd & (1ull << cap)) && !(f->cap_bounding & (1ull << cap))) {
			r = rst_rsys(a, t, SYS_prctl, PR_CAPBSET_DROP, (uint64_t)cap, 0, 0, 0, 0);
			if (r < 0)
				return rst_err(a, (int)r, "THREAD_STATE record #%u: dropping capability %d from the bounding set: %s",
					       ts->seq, cap, strerror((int)-r));
		}
	if (f->valid & CKIMG_TS_PRCTL) {
		r = rst_rsys(a, t, SYS_prctl, PR_GET_SECUREBITS, 0, 0, 0, 0, 0);
		if (r != (long)f->securebits)
			r = rst_rsys(a, t, SYS_prctl, PR_SET_SECUREBITS, f->securebits, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "THREAD_STATE record #%u: securebits %#x: %s", ts->seq, f->securebits,
				       strerror((int)-r));
	}
	if ((err = capset_remote(a, t, f->cap_effective, f->cap_permitted, f->cap_inheritable)))
		return rst_err(a, err, "THREAD_STATE record #%u: capabilities eff %#llx prm %#llx inh %#llx: %s "
			       "(the restorer cannot grant what it lacks)", ts->seq, (unsigned long long)f->cap_effective,
			       (unsigned long long)f->cap_permitted, (unsigned long long)f->cap_inheritable, strerror(-err));
	for (int cap = 0; cap <= last; cap++)
		if (f->cap_ambient & (1ull << cap)) {
			r = rst_rsys(a, t, SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (uint64_t)cap, 0, 0, 0);
			if (r < 0)
				return rst_err(a, (int)r, "THREAD_STATE record #%u: ambient capability %d: %s", ts->seq, cap,
					       strerror((int)-r));
		}
	return 0;
}

static int restore_thread_misc(struct restore_args *a, struct rst_thread *t, const struct img_thread_state *ts)
{
	const struct ckimg_thread_state_fixed *f = &ts->f;
	long r;

	if ((f->valid & CKIMG_TS_RSEQ) && f->rseq_addr) {
		r = rst_rsys(a, t, SYS_rseq, f->rseq_addr, f->rseq_len, 0, f->rseq_sig, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "THREAD_STATE record #%u: rseq registration at %#llx (%u bytes): %s", ts->seq,
				       (unsigned long long)f->rseq_addr, f->rseq_len, strerror((int)-r));
	}
	if (f->valid & CKIMG_TS_PRCTL) {
		if (f->timer_slack_ns) {
			r = rst_rsys(a, t, SYS_prctl, PR_SET_TIMERSLACK, f->timer_slack_ns, 0, 0, 0, 0);
			if (r < 0)
				return rst_err(a, (int)r, "THREAD_STATE record #%u: timer slack: %s", ts->seq, strerror((int)-r));
		}
		/* the main thread's parent-death signal is set by restore_finish (fork.c armed SIGKILL) */
		if (t != &a->threads[0] && f->pdeathsig && !(a->detach && parent_is_restorer(a)))
			rst_rsys(a, t, SYS_prctl, PR_SET_PDEATHSIG, f->pdeathsig, 0, 0, 0, 0);
	}
	if (f->flags & CKIMG_TS_NO_NEW_PRIVS) {
		r = rst_rsys(a, t, SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "THREAD_STATE record #%u: no_new_privs: %s", ts->seq, strerror((int)-r));
	}
	if (f->valid & CKIMG_TS_SCHED) {
		struct {
			uint32_t size, policy;
			uint64_t flags;
			int32_t nice;
			uint32_t priority;
			uint64_t runtime, deadline, period;
		} sa = { sizeof(sa), f->sched_policy & ~SCHED_RESET_ON_FORK_,
			 (f->sched_policy & SCHED_RESET_ON_FORK_) ? SCHED_FLAG_RESET_ON_FORK_ : 0, f->nice, f->sched_priority,
			 f->dl_runtime, f->dl_deadline, f->dl_period };
		if (syscall(SYS_sched_setattr, t->tid, &sa, 0) < 0)
			return rst_err(a, -errno, "THREAD_STATE record #%u: scheduler policy %u priority %u nice %d: %s", ts->seq,
				       sa.policy, sa.priority, sa.nice, strerror(errno));
	}
	return 0;
}

#define MEMBARRIER_REGISTER_BITS ((1u << 2) | (1u << 4) | (1u << 6) | (1u << 8))

static int restore_process_state(struct restore_args *a)
{
	const struct img_state *st = &a->img->st;
	const struct ckimg_process_state_fixed *p = &st->pstate;
	struct rst_thread *m = &a->threads[0];
	char path[64], v[16];
	long r = 0;

	if (!st->have_pstate)
		return 0;
	if (p->valid & CKIMG_PS_PRCTL) {
		if (p->child_subreaper)
			r = rst_rsys(a, m, SYS_prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0, 0);
		if (r >= 0 && p->thp_disable)
			r = rst_rsys(a, m, SYS_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0, 0);
		if (r >= 0)
			r = rst_rsys(a, m, SYS_prctl, PR_SET_DUMPABLE, p->dumpable == 1, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "PROCESS_STATE record #%u: prctl: %s", st->pstate_seq, strerror((int)-r));
	}
	/* membarrier: each registration made again (its REGISTER_* command is its bit: GLOBAL_EXPEDITED,
	 * PRIVATE_EXPEDITED, its SYNC_CORE and RSEQ flavours) */
	if ((p->valid & CKIMG_PS_MEMBARRIER) && (p->membarrier & ~MEMBARRIER_REGISTER_BITS))
		return rst_err(a, -EBADMSG, "BAD_FIELD: PROCESS_STATE record #%u: membarrier %#x is not a set of registrations",
			       st->pstate_seq, p->membarrier);
	for (uint32_t bit = 1; (p->valid & CKIMG_PS_MEMBARRIER) && bit && bit <= p->membarrier; bit <<= 1) {
		if (!(p->membarrier & bit))
			continue;
		r = rst_rsys(a, m, SYS_membarrier, bit, 0, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "PROCESS_STATE record #%u: membarrier registration %#x: %s", st->pstate_seq,
				       bit, strerror((int)-r));
	}
	if (p->valid & CKIMG_PS_OOM) {
		snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", a->pid);
		int fd = open(path, O_WRONLY | O_CLOEXEC), n = snprintf(v, sizeof(v), "%d", p->oom_score_adj);
		if (fd < 0 || write(fd, v, (size_t)n) != n) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			return rst_err(a, -e, "PROCESS_STATE record #%u: oom_score_adj %d: %s", st->pstate_seq,
				       p->oom_score_adj, strerror(e));
		}
		close(fd);
	}
	return 0;
}

static void ns_to_ts(uint64_t ns, int64_t out[2])
{
	out[0] = (int64_t)(ns / 1000000000ull);
	out[1] = (int64_t)(ns % 1000000000ull);
}

static int restore_timers(struct restore_args *a)
{
	const struct img_state *st = &a->img->st;
	struct rst_thread *m = &a->threads[0];
	uint64_t scr = a->tramp + 4096 + SCRATCH_OFF;
	int by_prctl = 0, err = 0;
	long r;

	if (!st->have_timers)
		return 0;
	if (st->nptimers) {
		r = rst_rsys(a, m, SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0, 0);
		by_prctl = r == 0;
	}
	for (uint32_t i = 0; i < st->nptimers; i++) {
		const struct ckimg_posix_timer *p = &st->ptimers[i];
		struct { uint64_t value; int32_t signo, notify, tid, pad[11]; } sev = {
			p->sival, (int32_t)p->signo, (int32_t)p->notify, (int32_t)p->notify_tid, { 0 } };
		int32_t id = (int32_t)p->timer_id;
		if (rst_write(a, scr, &sev, sizeof(sev)) || rst_write(a, scr + 64, &id, 4))
			return rst_err(a, -EIO, "TIMERS record #%u: cannot write to the child", st->timers_seq);
		if (by_prctl) {
			r = rst_rsys(a, m, SYS_timer_create, (uint64_t)(int64_t)p->clock_id, scr, scr + 64, 0, 0, 0);
		} else {
			/* older kernels hand out ids in order: create and delete fillers up to it */
			int32_t got = -1;
			for (int tries = 0; tries < 65536; tries++) {
				r = rst_rsys(a, m, SYS_timer_create, (uint64_t)(int64_t)p->clock_id, scr, scr + 64, 0, 0, 0);
				if (r < 0 || rst_read_i32(a, scr + 64, &got) || got >= id)
					break;
				rst_rsys(a, m, SYS_timer_delete, (uint64_t)got, 0, 0, 0, 0, 0);
			}
			if (r >= 0 && got != id)
				return rst_err(a, -EEXIST, "TIMERS record #%u: timer id %u cannot be had on this kernel (got %d; "
					       "PR_TIMER_CREATE_RESTORE_IDS needs Linux 6.17)", st->timers_seq, p->timer_id, got);
		}
		if (r < 0) {
			err = rst_err(a, (int)r, "TIMERS record #%u: timer_create (id %u, clock %d): %s", st->timers_seq,
				      p->timer_id, p->clock_id, strerror((int)-r));
			break;
		}
		if (by_prctl) {
			int32_t got = -1;
			if (rst_read_i32(a, scr + 64, &got) || got != id) {
				err = rst_err(a, -EEXIST, "TIMERS record #%u: timer id %u came back as %d", st->timers_seq,
					      p->timer_id, got);
				break;
			}
		}
	}
	if (by_prctl)
		rst_rsys(a, m, SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0, 0);
	if (err)
		return err;
	/* arm: POSIX timers, then the itimers, each relative to now */
	for (uint32_t i = 0; i < st->nptimers; i++) {
		const struct ckimg_posix_timer *p = &st->ptimers[i];
		int64_t its[4];
		if (!p->value_ns)
			continue;
		ns_to_ts(p->interval_ns, its);
		ns_to_ts(p->value_ns, its + 2);
		if (rst_write(a, scr, its, sizeof(its)))
			return rst_err(a, -EIO, "TIMERS record #%u: cannot write to the child", st->timers_seq);
		r = rst_rsys(a, m, SYS_timer_settime, p->timer_id, 0, scr, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "TIMERS record #%u: timer_settime (id %u): %s", st->timers_seq, p->timer_id,
				       strerror((int)-r));
	}
	for (int which = 0; which < 3; which++) {
		int64_t itv[4];
		uint64_t interval = st->timers.itimer[which][0], value = st->timers.itimer[which][1];
		if (!value && !interval)
			continue;
		/* a periodic ITIMER_REAL that fired while the process was stopped reads 0 left (the
		 * kernel re-arms it when SIGALRM is dequeued): arm it for one interval */
		if (!value)
			value = interval;
		itv[0] = (int64_t)(interval / 1000000000ull);
		itv[1] = (int64_t)(interval % 1000000000ull / 1000);
		itv[2] = (int64_t)(value / 1000000000ull);
		itv[3] = (int64_t)(value % 1000000000ull / 1000);
		if (!itv[2] && !itv[3])
			itv[3] = 1;    /* under a microsecond left: still armed */
		if (rst_write(a, scr, itv, sizeof(itv)))
			return rst_err(a, -EIO, "TIMERS record #%u: cannot write to the child", st->timers_seq);
		r = rst_rsys(a, m, SYS_setitimer, (uint64_t)which, scr, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "TIMERS record #%u: setitimer(%d): %s", st->timers_seq, which, strerror((int)-r));
	}
	return 0;
}

int restore_state(struct restore_args *a)
{
	int err;

	for (size_t i = 0; i < a->nthreads; i++) {
		const struct img_thread_state *ts = tstate_of(a, &a->threads[i]);
		if (!ts)
			continue;
		if ((err = restore_caps(a, &a->threads[i], ts)) || (err = restore_thread_misc(a, &a->threads[i], ts)))
			return err;
	}
	if ((err = restore_process_state(a)) || (err = restore_timers(a)))
		return err;
	rst_trace(a, "state restored");
	return 0;
}
