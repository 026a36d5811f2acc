/*
 * Per-thread state (registers, xstate, signal state, robust list) and the state only the
 * target itself can report, read with remote syscalls: sigactions (rt_sigaction), altstacks
 * (sigaltstack), clear_child_tid (prctl PR_GET_TID_ADDRESS) and the current brk (brk(0)).
 */
#include "capture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define XSTATE_MAX (64u << 10)
/* include/linux/errno.h (kernel-internal restart codes) */
#define ERESTARTSYS           512
#define ERESTARTNOINTR        513
#define ERESTARTNOHAND        514
#define ERESTART_RESTARTBLOCK 516

/* State letters before ptrace turns them all into 't'. */
int collect_prefreeze_states(struct capture *c)
{
	char path[96], *stat;
	struct dirent *de;
	size_t cap = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", c->pid);
	DIR *d = opendir(path);
	if (!d)
		return cap_fail(errno == ENOENT ? -ESRCH : -errno, "process %d", c->pid);
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		if (tid <= 0)
			continue;
		if (c->npre == cap) {
			cap = cap ? cap * 2 : 16;
			pid_t *t = realloc(c->pre_tid, cap * sizeof(*t));
			char *s = t ? realloc(c->pre_state, cap) : NULL;
			if (t)
				c->pre_tid = t;
			if (!s) {
				closedir(d);
				return -ENOMEM;
			}
			c->pre_state = s;
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", c->pid, tid);
		char st = 'R';
		if (read_file(path, &stat, NULL) == 0) {
			char *rp = strrchr(stat, ')');
			if (rp && rp[1] == ' ' && rp[2])
				st = rp[2];
			free(stat);
		}
		c->pre_tid[c->npre] = tid;
		c->pre_state[c->npre++] = st;
	}
	closedir(d);
	return 0;
}

static uint32_t prefreeze_state(const struct capture *c, pid_t tid)
{
	for (size_t i = 0; i < c->npre; i++)
		if (c->pre_tid[i] == tid)
			return (uint32_t)(unsigned char)c->pre_state[i];
	return 'R';
}

static int in_interrupted_syscall(const struct user_regs_struct *r)
{
	long ax = (long)r->rax;
	if ((long)r->orig_rax < 0)
		return 0;
	return ax == -ERESTARTSYS || ax == -ERESTARTNOINTR || ax == -ERESTARTNOHAND ||
	       ax == -ERESTART_RESTARTBLOCK || ax == -EINTR;
}

static int one_thread(struct capture *c, pid_t tid, struct thread_info *t, uint8_t *xbuf)
{
	char path[96], *status = NULL;
	unsigned long long v;
	int err;

	t->tid = tid;
	t->state = prefreeze_state(c, tid);
	t->ss_flags = SS_DISABLE;
	err = pt_get_regs(tid, &t->regs);
	if (err)
		return cap_fail(err, "thread %d: PTRACE_GETREGS", tid);
	long xs = pt_get_xstate(tid, xbuf, XSTATE_MAX);
	if (xs < 0) {
		/* No XSAVE support in this kernel/CPU: the 512-byte FXSAVE area. */
		err = pt_get_fpregs(tid, xbuf);
		if (err)
			return cap_fail(err, "thread %d: PTRACE_GETREGSET", tid);
		xs = 512;
		t->flags |= CKIMG_THREAD_FPREGS_ONLY;
	}
	t->xstate = malloc((size_t)xs);
	if (!t->xstate)
		return -ENOMEM;
	memcpy(t->xstate, xbuf, (size_t)xs);
	t->xstate_size = (uint32_t)xs;
	err = pt_get_sigmask(tid, &t->sigmask);
	if (err)
		return cap_fail(err, "thread %d: PTRACE_GETSIGMASK", tid);
	if (tid == c->pid)
		t->flags |= CKIMG_THREAD_MAIN;
	if (in_interrupted_syscall(&t->regs))
		t->flags |= CKIMG_THREAD_IN_SYSCALL;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", c->pid, tid);
	if (read_file(path, &status, NULL) == 0) {
		if (proc_status_value(status, "SigPnd", 16, &v) == 0)
			t->pending = v;
		free(status);
	}
	uint64_t head = 0;
	size_t len = 0;
	if (syscall(SYS_get_robust_list, tid, &head, &len) == 0) {
		t->robust_list = head;
		t->robust_len = len;
	}
	return 0;
}

int collect_threads(struct capture *c)
{
	int err = 0;
	uint8_t *xbuf = aligned_alloc(64, XSTATE_MAX);

	c->threads = calloc(c->pt.nthreads, sizeof(*c->threads));
	if (!xbuf || !c->threads) {
		free(xbuf);
		return -ENOMEM;
	}
	for (size_t i = 0; !err && i < c->pt.nthreads; i++) {
		err = one_thread(c, c->pt.threads[i].tid, &c->threads[i], xbuf);
		c->nthreads = i + 1;
		if (c->pt.threads[i].group_stop)
			c->proc.flags |= CKIMG_PROCESS_STOPPED;
	}
	c->proc.thread_count = (uint32_t)c->nthreads;
	free(xbuf);
	return err;
}

/* Scratch page layout for the remote calls (addresses in the target). */
#define SCR_SIGACT   0          /* 64 × struct kernel_sigaction (32 bytes) */
#define SCR_THREADS  2048       /* per thread: stack_t (ss_sp u64, ss_flags i32, pad, ss_size u64), int * */
#define SCR_THREAD_SLOT 32

static int remote(struct capture *c, pid_t tid, struct pt_syscall sc, int64_t *ret)
{
	int err = pt_remote_syscall(tid, c->syscall_ip, &sc);
	if (err)
		return cap_fail(err, "thread %d: remote syscall %ld", tid, sc.nr);
	*ret = sc.ret;
	return 0;
}

/* Shared pending signals: the target's own, read while it is frozen. */
static void read_shared_pending(struct capture *c)
{
	char path[64], *status = NULL;
	unsigned long long v;

	snprintf(path, sizeof(path), "/proc/%d/status", c->pid);
	if (read_file(path, &status, NULL) == 0) {
		if (proc_status_value(status, "ShdPnd", 16, &v) == 0)
			c->shared_pending = v;
		free(status);
	}
}

/*
 * The signal handlers, read in thread tid of process pid with a scratch area at scr: the
 * target itself, or (copy-on-write capture, after the release) its twin, whose handlers a
 * fork copied as they were.
 */
int collect_sigactions_in(struct capture *c, pid_t pid, pid_t tid, uint64_t scr)
{
	uint64_t raw[64][4];
	uint32_t n = 0;
	int64_t ret = 0;
	int err = 0;
	char path[64], *status = NULL;
	unsigned long long cgt = ~0ull, ign = 0;

	/* Only the signals with a handler or SIG_IGN, and SIGCHLD (SA_NOCLDWAIT/SA_NOCLDSTOP
	 * matter even with SIG_DFL), are asked for: every other one is SIG_DFL, whose flags,
	 * restorer and mask have no effect. Each remote call is a round trip to the frozen
	 * target (62 of them were ~4 ms idle, ~50 ms on a loaded machine). */
	memset(raw, 0, sizeof(raw));
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (read_file(path, &status, NULL) == 0) {
		if (proc_status_value(status, "SigCgt", 16, &cgt) || proc_status_value(status, "SigIgn", 16, &ign))
			cgt = ~0ull;
		free(status);
	}
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sig != SIGCHLD && !(((cgt | ign) >> (sig - 1)) & 1))
			continue;
		err = remote(c, tid, REMOTE_SYSCALL(__NR_rt_sigaction, (uint64_t)sig, 0,
						    scr + SCR_SIGACT + (uint64_t)(sig - 1) * 32, 8), &ret);
		if (err)
			return err;
		if (ret < 0)
			return cap_fail((int)ret, "remote rt_sigaction(%d)", sig);
	}
	for (int sig = 1; sig <= 64; sig++)     /* (the others stay zero: SIG_DFL) */
		if (sig == SIGCHLD || (((cgt | ign) >> (sig - 1)) & 1))
			if (pt_read_mem(pid, scr + SCR_SIGACT + (uint64_t)(sig - 1) * 32, raw[sig - 1], 32) != 32)
				return cap_fail(-EIO, "read sigactions");

	struct ckimg_sigactions_fixed fx = { sizeof(fx), 0, c->shared_pending };
	c->sigactions.len = 0;
	err = buf_put(&c->sigactions, &fx, sizeof(fx));
	for (int sig = 1; !err && sig <= 64; sig++) {
		uint64_t *k = raw[sig - 1];  /* kernel order: handler, flags, restorer, mask */
		if (sig == SIGKILL || sig == SIGSTOP || (!k[0] && !k[1] && !k[3]))
			continue;
		struct ckimg_sigaction_entry e = { (uint32_t)sig, 0, k[0], k[1], k[2], k[3] };
		err = buf_put(&c->sigactions, &e, sizeof(e));
		n++;
	}
	if (!err)
		memcpy(c->sigactions.p + 4, &n, 4);
	c->nsigactions = n;
	return err;
}

/*
 * Each thread's alternate signal stack and clear_child_tid, asked of all threads at once
 * (pt_remote_syscalls): a JVM's 20 threads cost two rounds of stops, not forty round trips.
 * Thread i's results land in its own slot of the scratch area.
 */
static int remote_thread_states(struct capture *c, uint64_t scr)
{
	size_t n = c->nthreads;
	struct pt_syscall *calls = calloc(2 * n, sizeof(*calls));
	uint8_t *res = calloc(n, SCR_THREAD_SLOT);
	int err = -ENOMEM;

	if (!calls || !res)
		goto out;
	pt_write_mem(c->pid, scr + SCR_THREADS, res, n * SCR_THREAD_SLOT);
	for (size_t i = 0; i < n; i++) {
		uint64_t slot = scr + SCR_THREADS + i * SCR_THREAD_SLOT;
		calls[2 * i] = REMOTE_SYSCALL(__NR_sigaltstack, 0, slot);
		calls[2 * i + 1] = REMOTE_SYSCALL(__NR_prctl, PR_GET_TID_ADDRESS, slot + 24);
	}
	err = cap_remote_per_thread(c, calls, 2, "syscalls (sigaltstack, PR_GET_TID_ADDRESS)");
	if (!err && pt_read_mem(c->pid, scr + SCR_THREADS, res, n * SCR_THREAD_SLOT) != (long)(n * SCR_THREAD_SLOT))
		err = cap_fail(-EIO, "read remote results");
	for (size_t i = 0; !err && i < n; i++) {
		struct thread_info *t = &c->threads[i];
		const uint8_t *r = res + i * SCR_THREAD_SLOT;   /* stack_t: ss_sp, ss_flags, pad, ss_size */
		if (calls[2 * i].ret == 0) {
			int32_t fl;
			memcpy(&t->ss_sp, r, 8);
			memcpy(&fl, r + 8, 4);
			memcpy(&t->ss_size, r + 16, 8);
			t->ss_flags = (uint32_t)fl;
		}
		if (calls[2 * i + 1].ret == 0)  /* needs CONFIG_CHECKPOINT_RESTORE */
			memcpy(&t->clear_child_tid, r + 24, 8);
	}
out:
	free(calls);
	free(res);
	return err;
}

int collect_sigactions_and_tls(struct capture *c)
{
	uint64_t scr = 0;
	pid_t tid = c->pt.threads[0].tid;
	int64_t ret = 0;
	int err;

	err = pt_find_syscall_ip(c->pid, &c->syscall_ip);
	if (err)
		return cap_fail(err, "no syscall instruction found in the target");
	size_t scr_len = (SCR_THREADS + c->nthreads * SCR_THREAD_SLOT + 4095) & ~(size_t)4095;
	err = pt_remote_mmap(tid, c->syscall_ip, scr_len, &scr);
	if (err)
		return cap_fail(err, "remote mmap of a scratch page");
	read_shared_pending(c);
	if (!c->defer_sigactions)      /* copy-on-write: read in the twin after the release */
		err = collect_sigactions_in(c, c->pid, tid, scr);
	if (!err)
		err = remote_thread_states(c, scr);
	if (!err)
		err = remote(c, tid, REMOTE_SYSCALL(__NR_brk, 0), &ret);
	if (!err)
		c->proc.mm[5] = (uint64_t)ret;
	int e2 = pt_remote_munmap(tid, c->syscall_ip, scr, scr_len);
	if (!err && e2)
		err = cap_fail(e2, "remote munmap of the scratch page");
	return err;
}
