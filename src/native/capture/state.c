/*
 * Per-process and per-thread kernel state beyond registers and memory (FORMAT.md 4.11-4.14):
 *
 *   TIMERS         getitimer x3 and, per line group of /proc/PID/timers, timer_gettime and
 *                  timer_getoverrun, all as remote calls (timer ids are per process).
 *   PROCESS_STATE  /proc/PID/oom_score_adj, the Groups: line, remote prctl for dumpable,
 *                  child subreaper and THP-disable.
 *   THREAD_STATE   per thread: rseq (PTRACE_GET_RSEQ_CONFIGURATION), scheduler
 *                  (sched_getattr, readable from outside), capabilities, no_new_privs and
 *                  seccomp mode (task status), pdeathsig, timer slack, securebits (remote prctl).
 *   SECCOMP        filter programs (PTRACE_SECCOMP_GET_FILTER / _GET_METADATA), each chain
 *                  stored once: threads that share filters share entries.
 *
 * A thread frozen inside an rseq critical section is moved to the section's abort handler,
 * which is what the kernel itself does on preemption (rseq_ip_fixup): after a restore the
 * section must not resume half-way on another CPU.
 * What cannot be read or brought back is named with cap_warn() and left out of `valid`.
 */
#include "capture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER   0x420c
#endif
#ifndef PTRACE_SECCOMP_GET_METADATA
#define PTRACE_SECCOMP_GET_METADATA 0x420d
#endif
#define MEMBARRIER_CMD_GET_REGISTRATIONS_ (1 << 9)   /* linux/membarrier.h, Linux 6.3 */
#define SCHED_FLAG_RESET_ON_FORK_ 0x01
#define SCHED_RESET_ON_FORK_      0x40000000

struct rseq_config {            /* include/uapi/linux/ptrace.h */
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

struct sched_attr_ {            /* include/uapi/linux/sched/types.h (SCHED_ATTR_SIZE_VER1) */
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};

struct filter {
	struct ckimg_seccomp_filter h;
	uint64_t *insns;
};

struct state_ctx {
	struct capture *c;
	uint64_t scr;                  /* scratch page in the target */
	struct filter *filters;
	size_t nfilters, cap;
};

static int remote(struct state_ctx *s, pid_t tid, struct pt_syscall sc, int64_t *ret)
{
	int err = pt_remote_syscall(tid, s->c->syscall_ip, &sc);
	if (err)
		return cap_fail(err, "thread %d: remote syscall %ld", tid, sc.nr);
	*ret = sc.ret;
	return 0;
}

static uint64_t tv_ns(const int64_t tv[2], int usec)
{
	if (tv[0] < 0 || tv[1] < 0)
		return 0;
	return (uint64_t)tv[0] * 1000000000ull + (uint64_t)tv[1] * (usec ? 1000u : 1u);
}

static int collect_itimers(struct state_ctx *s, struct ckimg_timers_fixed *tf)
{
	pid_t tid = s->c->pt.threads[0].tid;
	int64_t ret = 0, v[4];

	for (int which = 0; which < 3; which++) {
		int err = remote(s, tid, REMOTE_SYSCALL(__NR_getitimer, (uint64_t)which, s->scr), &ret);
		if (err)
			return err;
		if (ret < 0)
			return cap_fail((int)ret, "remote getitimer(%d)", which);
		if (pt_read_mem(s->c->pid, s->scr, v, sizeof(v)) != (long)sizeof(v))
			return cap_fail(-EIO, "read itimer");
		tf->itimer[which][0] = tv_ns(v, 1);
		tf->itimer[which][1] = tv_ns(v + 2, 1);
	}
	return 0;
}

/* One "ID:" group of /proc/PID/timers (fs/proc/base.c show_timer). */
static int parse_timer_line(const char *line, struct ckimg_posix_timer *t)
{
	char kind[16], who[8];
	int pid;

	if (sscanf(line, "ID: %u", &t->timer_id) == 1)
		return 1;
	if (!strncmp(line, "signal: ", 8)) {
		char *slash;
		t->signo = (uint32_t)strtoul(line + 8, &slash, 10);
		if (*slash == '/')
			t->sival = strtoull(slash + 1, NULL, 16);
		return 0;
	}
	if (sscanf(line, "notify: %15[a-z]/%7[a-z].%d", kind, who, &pid) == 3) {
		t->notify = !strcmp(kind, "none") ? CKIMG_SIGEV_NONE : !strcmp(kind, "thread") ? 2 : CKIMG_SIGEV_SIGNAL;
		if (!strcmp(who, "tid")) {
			t->notify |= CKIMG_SIGEV_THREAD_ID;
			t->notify_tid = (uint32_t)pid;
		}
		return 0;
	}
	sscanf(line, "ClockID: %d", &t->clock_id);
	return 0;
}

static int collect_posix_timers(struct state_ctx *s, struct buf *out, uint32_t *count)
{
	struct capture *c = s->c;
	pid_t tid = c->pt.threads[0].tid;
	char path[64], *text = NULL;
	struct ckimg_posix_timer *ts = NULL;
	size_t n = 0, cap = 0;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/timers", c->pid);
	err = read_file(path, &text, NULL);
	if (err)   /* no CONFIG_CHECKPOINT_RESTORE: we cannot know whether timers exist */
		return cap_warn("%s unreadable (%s): POSIX timers are not captured", path, strerror(-err)), 0;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		struct ckimg_posix_timer probe = { 0 };
		if (parse_timer_line(line, &probe) == 1) {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				void *q = realloc(ts, cap * sizeof(*ts));
				if (!q) {
					err = -ENOMEM;
					goto out;
				}
				ts = q;
			}
			memset(&ts[n], 0, sizeof(ts[n]));
			ts[n++].timer_id = probe.timer_id;
		} else if (n) {
			parse_timer_line(line, &ts[n - 1]);
		}
		line = nl ? nl + 1 : NULL;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t ret = 0, v[4];
		err = remote(s, tid, REMOTE_SYSCALL(__NR_timer_gettime, ts[i].timer_id, s->scr), &ret);
		if (err)
			goto out;
		if (ret < 0) {
			err = cap_fail((int)ret, "remote timer_gettime(%u)", ts[i].timer_id);
			goto out;
		}
		if (pt_read_mem(c->pid, s->scr, v, sizeof(v)) != (long)sizeof(v)) {
			err = cap_fail(-EIO, "read timer %u", ts[i].timer_id);
			goto out;
		}
		ts[i].interval_ns = tv_ns(v, 0);
		ts[i].value_ns = tv_ns(v + 2, 0);
		err = remote(s, tid, REMOTE_SYSCALL(__NR_timer_getoverrun, ts[i].timer_id), &ret);
		if (err)
			goto out;
		if (ret > 0) {
			ts[i].overrun = (uint32_t)ret;
			cap_warn("POSIX timer %u: overrun count %u cannot be restored (the kernel offers no way to set it)",
				 ts[i].timer_id, ts[i].overrun);
		}
		if ((ts[i].notify & ~CKIMG_SIGEV_THREAD_ID) == 2)   /* SIGEV_THREAD never reaches the kernel */
			cap_warn("POSIX timer %u: unexpected notify type SIGEV_THREAD", ts[i].timer_id);
		err = buf_put(out, &ts[i], sizeof(ts[i]));
		if (err)
			goto out;
	}
	*count = (uint32_t)n;
out:
	free(text);
	free(ts);
	return err;
}

static int collect_timers(struct state_ctx *s)
{
	struct capture *c = s->c;
	struct ckimg_timers_fixed tf = { .fixed_size = sizeof(tf), .entry_size = sizeof(struct ckimg_posix_timer) };
	struct buf entries = { 0 };
	uint32_t count = 0;
	int err = collect_itimers(s, &tf);

	if (!err)
		err = collect_posix_timers(s, &entries, &count);
	tf.count = count;
	if (!err)
		err = buf_put(&c->timers, &tf, sizeof(tf));
	if (!err)
		err = buf_put(&c->timers, entries.p, entries.len);
	c->ntimers = tf.count;
	buf_free(&entries);
	return err;
}

static int collect_process_state(struct state_ctx *s)
{
	struct capture *c = s->c;
	struct ckimg_process_state_fixed f = { .fixed_size = sizeof(f) };
	pid_t tid = c->pt.threads[0].tid;
	char path[64], *text = NULL;
	struct buf groups = { 0 };
	int64_t r1 = -1, r2 = -1, r3 = -1;
	int32_t v = 0;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", c->pid);
	if (read_file(path, &text, NULL) == 0) {
		f.oom_score_adj = (int32_t)strtol(text, NULL, 10);
		f.valid |= CKIMG_PS_OOM;
	}
	free(text);
	text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/status", c->pid);
	if (read_file(path, &text, NULL) == 0) {
		const char *g = strstr(text, "\nGroups:");
		if (g) {
			char *p = (char *)g + 8, *end;
			for (;;) {
				while (*p == ' ' || *p == '\t')
					p++;
				unsigned long gid = strtoul(p, &end, 10);
				if (end == p)
					break;
				uint32_t g32 = (uint32_t)gid;
				if ((err = buf_put(&groups, &g32, 4)))
					goto out;
				f.ngroups++;
				p = end;
			}
			f.valid |= CKIMG_PS_GROUPS;
		}
	}
	pt_write_mem(c->pid, s->scr, &v, sizeof(v));
	if ((err = remote(s, tid, REMOTE_SYSCALL(__NR_prctl, PR_GET_DUMPABLE), &r1)) ||
	    (err = remote(s, tid, REMOTE_SYSCALL(__NR_prctl, PR_GET_CHILD_SUBREAPER, s->scr), &r2)) ||
	    (err = remote(s, tid, REMOTE_SYSCALL(__NR_prctl, PR_GET_THP_DISABLE), &r3)))
		goto out;
	if (r1 >= 0 && r2 == 0 && r3 >= 0 && pt_read_mem(c->pid, s->scr, &v, sizeof(v)) == (long)sizeof(v)) {
		f.dumpable = (uint32_t)r1;
		f.child_subreaper = v != 0;
		f.thp_disable = r3 != 0;
		f.valid |= CKIMG_PS_PRCTL;
		if (f.dumpable == 2)
			cap_warn("dumpable is 2 (suid_dumpable mode), which prctl cannot set: restored as 0");
	} else {
		cap_warn("prctl state (dumpable, child subreaper, THP-disable) unreadable");
	}
	/* membarrier registrations are per mm and only the process itself can ask (Linux >= 6.3;
	 * before, EINVAL: unknown, nothing recorded) */
	if ((err = remote(s, tid, REMOTE_SYSCALL(__NR_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS_, 0, 0), &r1)))
		goto out;
	if (r1 >= 0) {
		f.membarrier = (uint32_t)r1;
		f.valid |= CKIMG_PS_MEMBARRIER;
	}
	err = buf_put(&c->pstate, &f, sizeof(f));
	if (!err)
		err = buf_put(&c->pstate, groups.p, groups.len);
out:
	free(text);
	buf_free(&groups);
	return err;
}

/* Find or add a filter (dedup by parent + flags + program); returns its index or -errno. */
static long intern_filter(struct state_ctx *s, uint32_t parent, uint32_t flags, const uint64_t *insns, uint32_t n)
{
	for (size_t i = 0; i < s->nfilters; i++) {
		struct filter *f = &s->filters[i];
		if (f->h.parent == parent && f->h.flags == flags && f->h.ninsns == n &&
		    !memcmp(f->insns, insns, (size_t)n * 8))
			return (long)i;
	}
	if (s->nfilters == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		void *q = realloc(s->filters, s->cap * sizeof(*s->filters));
		if (!q)
			return -ENOMEM;
		s->filters = q;
	}
	struct filter *f = &s->filters[s->nfilters];
	f->insns = malloc((size_t)n * 8);
	if (!f->insns)
		return -ENOMEM;
	memcpy(f->insns, insns, (size_t)n * 8);
	f->h = (struct ckimg_seccomp_filter){ .parent = parent, .flags = flags, .ninsns = n };
	return (long)s->nfilters++;
}

/* The thread's filter chain, oldest first, into the shared table; *newest = its head. */
static int collect_filters(struct state_ctx *s, pid_t tid, uint32_t *newest)
{
	uint64_t *buf = malloc(CKIMG_SECCOMP_MAX_INSNS * 8);
	long depth = 0;
	uint32_t parent = CKIMG_NO_FILTER;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	while (ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)depth, NULL) > 0)
		depth++;
	if (depth == 0) {
		err = -errno;
		goto out;
	}
	for (long k = depth - 1; k >= 0; k--) {
		long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)k, buf);
		struct { uint64_t filter_off, flags; } md = { (uint64_t)k, 0 };
		if (n <= 0 || n > CKIMG_SECCOMP_MAX_INSNS) {
			err = n < 0 ? -errno : -EINVAL;
			goto out;
		}
		if (ptrace(PTRACE_SECCOMP_GET_METADATA, tid, (void *)sizeof(md), &md) < 0)
			md.flags = 0;
		long idx = intern_filter(s, parent, (uint32_t)md.flags, buf, (uint32_t)n);
		if (idx < 0) {
			err = (int)idx;
			goto out;
		}
		parent = (uint32_t)idx;
	}
	*newest = parent;
out:
	free(buf);
	return err;
}

/* /proc/PID/task/TID/status: capabilities, NoNewPrivs, Seccomp. */
static void thread_status(struct capture *c, pid_t tid, struct ckimg_thread_state_fixed *f)
{
	char path[96], *st = NULL;
	unsigned long long v[5], nnp = 0, mode = 0;
	static const char *caps[5] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };
	int ok = 1;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", c->pid, tid);
	if (read_file(path, &st, NULL))
		return;
	for (int i = 0; i < 5; i++)
		ok &= proc_status_value(st, caps[i], 16, &v[i]) == 0;
	if (ok) {
		f->cap_inheritable = v[0];
		f->cap_permitted = v[1];
		f->cap_effective = v[2];
		f->cap_bounding = v[3];
		f->cap_ambient = v[4];
		f->valid |= CKIMG_TS_CAPS;
	}
	if (proc_status_value(st, "NoNewPrivs", 10, &nnp) == 0 && nnp)
		f->flags |= CKIMG_TS_NO_NEW_PRIVS;
	if (proc_status_value(st, "Seccomp", 10, &mode) == 0) {
		f->seccomp_mode = (uint32_t)mode;
		f->valid |= CKIMG_TS_SECCOMP;
	}
	free(st);
}

/* A thread stopped inside an rseq critical section goes to its abort_ip (rseq_ip_fixup). */
static void rseq_fixup(struct capture *c, struct thread_info *t, uint64_t area)
{
	uint64_t cs_ptr = 0;
	struct { uint32_t version, flags; uint64_t start_ip, post_commit_offset, abort_ip; } cs;

	if (pt_read_mem(c->pid, area + 8, &cs_ptr, 8) != 8 || !cs_ptr)
		return;
	if (pt_read_mem(c->pid, cs_ptr, &cs, sizeof(cs)) != (long)sizeof(cs))
		return;
	if (t->regs.rip >= cs.start_ip && t->regs.rip - cs.start_ip < cs.post_commit_offset &&
	    !(t->flags & CKIMG_THREAD_IN_SYSCALL))
		t->regs.rip = cs.abort_ip;
}

/* A thread's own prctl state: results of PR_GET_PDEATHSIG (the signal in pdeath), TIMERSLACK, SECUREBITS. */
struct thread_prctl {
	int64_t pdeath_ret, slack, securebits;
	int32_t pdeath;
};

#define SCR_PDEATH 2048         /* thread i's PR_GET_PDEATHSIG int at SCR_PDEATH + 8 i */

/* Every thread's prctl state, asked of all threads at once (pt_remote_syscalls). */
static int remote_thread_prctls(struct state_ctx *s, struct thread_prctl *pr)
{
	struct capture *c = s->c;
	size_t n = c->nthreads;
	struct pt_syscall *calls = calloc(3 * n, sizeof(*calls));
	int32_t *pdeath = calloc(n, 8);
	int err = -ENOMEM;

	if (!calls || !pdeath)
		goto out;
	pt_write_mem(c->pid, s->scr + SCR_PDEATH, pdeath, n * 8);
	for (size_t i = 0; i < n; i++) {
		calls[3 * i] = REMOTE_SYSCALL(__NR_prctl, PR_GET_PDEATHSIG, s->scr + SCR_PDEATH + 8 * i);
		calls[3 * i + 1] = REMOTE_SYSCALL(__NR_prctl, PR_GET_TIMERSLACK);
		calls[3 * i + 2] = REMOTE_SYSCALL(__NR_prctl, PR_GET_SECUREBITS);
	}
	err = cap_remote_per_thread(c, calls, 3, "prctl");
	if (!err && pt_read_mem(c->pid, s->scr + SCR_PDEATH, pdeath, n * 8) != (long)(n * 8))
		err = cap_fail(-EIO, "read remote results");
	for (size_t i = 0; !err && i < n; i++)
		pr[i] = (struct thread_prctl){ calls[3 * i].ret, calls[3 * i + 1].ret, calls[3 * i + 2].ret, pdeath[2 * i] };
out:
	free(calls);
	free(pdeath);
	return err;
}

static int collect_thread_state(struct state_ctx *s, struct thread_info *t, const struct thread_prctl *pr)
{
	struct capture *c = s->c;
	struct ckimg_thread_state_fixed f = {
		.fixed_size = sizeof(f), .tid = (uint32_t)t->tid, .seccomp_filter = CKIMG_NO_FILTER,
	};
	struct rseq_config rc;
	struct sched_attr_ sa = { .size = sizeof(sa) };
	int err;

	memset(&rc, 0, sizeof(rc));
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, t->tid, (void *)sizeof(rc), &rc) > 0) {
		f.rseq_addr = rc.rseq_abi_pointer;
		f.rseq_len = rc.rseq_abi_size;
		f.rseq_sig = rc.signature;
		f.valid |= CKIMG_TS_RSEQ;
		if (f.rseq_addr)
			rseq_fixup(c, t, f.rseq_addr);
	} else {
		cap_warn("thread %d: PTRACE_GET_RSEQ_CONFIGURATION: %s: rseq registration unknown", t->tid, strerror(errno));
	}
	if (syscall(SYS_sched_getattr, t->tid, &sa, sizeof(sa), 0) == 0) {
		f.sched_policy = sa.sched_policy | ((sa.sched_flags & SCHED_FLAG_RESET_ON_FORK_) ? SCHED_RESET_ON_FORK_ : 0);
		f.sched_priority = sa.sched_priority;
		f.nice = sa.sched_nice;
		f.dl_runtime = sa.sched_runtime;
		f.dl_deadline = sa.sched_deadline;
		f.dl_period = sa.sched_period;
		f.valid |= CKIMG_TS_SCHED;
	}
	thread_status(c, t->tid, &f);
	if (f.seccomp_mode == 2) {
		uint32_t head = CKIMG_NO_FILTER;
		err = collect_filters(s, t->tid, &head);
		f.seccomp_filter = head;
		if (err == -ENOMEM)
			return err;
		if (err) {
			f.valid &= ~CKIMG_TS_SECCOMP;
			cap_warn("thread %d: seccomp filters unreadable (%s; PTRACE_SECCOMP_GET_FILTER needs CAP_SYS_ADMIN "
				 "and CONFIG_CHECKPOINT_RESTORE): the restored thread would run unconfined", t->tid, strerror(-err));
		}
	}
	if (pr->pdeath_ret == 0 && pr->slack >= 0 && pr->securebits >= 0) {
		f.pdeathsig = (uint32_t)pr->pdeath;
		f.timer_slack_ns = (uint64_t)pr->slack;
		f.securebits = (uint32_t)pr->securebits;
		f.valid |= CKIMG_TS_PRCTL;
	}
	uint64_t len = sizeof(f);
	err = buf_put(&c->tstates, &len, 8);
	if (!err)
		err = buf_put(&c->tstates, &f, sizeof(f));
	return err;
}

static int put_filters(struct state_ctx *s)
{
	struct capture *c = s->c;
	struct ckimg_seccomp_fixed fx = { sizeof(fx), (uint32_t)s->nfilters };
	int err = 0;

	if (!s->nfilters)
		return 0;
	err = buf_put(&c->seccomp, &fx, sizeof(fx));
	for (size_t i = 0; !err && i < s->nfilters; i++) {
		err = buf_put(&c->seccomp, &s->filters[i].h, sizeof(s->filters[i].h));
		if (!err)
			err = buf_put(&c->seccomp, s->filters[i].insns, (size_t)s->filters[i].h.ninsns * 8);
	}
	c->nfilters = (uint32_t)s->nfilters;
	return err;
}

int collect_state(struct capture *c)
{
	struct state_ctx s = { .c = c };
	pid_t tid = c->pt.threads[0].tid;
	int err;

	size_t scr_len = (SCR_PDEATH + c->nthreads * 8 + 4095) & ~(size_t)4095;
	struct thread_prctl *pr = calloc(c->nthreads, sizeof(*pr));
	if (!pr)
		return -ENOMEM;
	err = pt_remote_mmap(tid, c->syscall_ip, scr_len, &s.scr);
	if (err) {
		free(pr);
		return cap_fail(err, "remote mmap of a scratch page");
	}
	err = collect_timers(&s);
	if (!err)
		err = collect_process_state(&s);
	if (!err)
		err = remote_thread_prctls(&s, pr);
	for (size_t i = 0; !err && i < c->nthreads; i++)
		err = collect_thread_state(&s, &c->threads[i], &pr[i]);
	if (!err)
		err = put_filters(&s);
	free(pr);
	int e2 = pt_remote_munmap(tid, c->syscall_ip, s.scr, scr_len);
	if (!err && e2)
		err = cap_fail(e2, "remote munmap of the scratch page");
	for (size_t i = 0; i < s.nfilters; i++)
		free(s.filters[i].insns);
	free(s.filters);
	return err;
}

int put_state_records(struct capture *c, struct image *im)
{
	int err = image_record(im, CKIMG_REC_TIMERS, &c->timers, 0, 0);
	if (!err)
		err = image_record(im, CKIMG_REC_PROCESS_STATE, &c->pstate, 0, 0);
	if (!err && c->seccomp.len)
		err = image_record(im, CKIMG_REC_SECCOMP, &c->seccomp, 0, 0);
	for (size_t o = 0; !err && o + 8 <= c->tstates.len;) {
		uint64_t l;
		uint32_t tid;
		memcpy(&l, c->tstates.p + o, 8);
		memcpy(&tid, c->tstates.p + o + 8 + 4, 4);
		struct buf one = { c->tstates.p + o + 8, l, l };
		err = image_record(im, CKIMG_REC_THREAD_STATE, &one, tid, 0);
		o += 8 + l;
	}
	return err;
}
