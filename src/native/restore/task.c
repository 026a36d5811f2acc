/*
 * Threads, credentials, registers, and letting go.
 *
 * restore_threads: every recorded thread but the main one is created by a remote clone3 in
 *   the main thread (CLONE_VM|CLONE_THREAD|..., set_tid = recorded tid, CLONE_CHILD_CLEARTID
 *   at the recorded clear_child_tid so pthread_join still wakes). PTRACE_O_TRACECLONE attaches
 *   it and it waits in a SIGSTOP stop before running a single instruction. Per thread: robust
 *   futex list, sigaltstack, (main) set_tid_address.
 * restore_creds: uids/gids per thread (they are per-thread in the kernel), after the clones
 *   (clone3 with set_tid needs CAP_SYS_ADMIN).
 * restore_finish: rlimits, then per thread the recorded registers (a syscall interrupted by
 *   the capture left for the kernel's own restart rule at the release), xstate, signal mask; the trampoline is unmapped by the main
 *   thread's very last remote call; detach everyone; re-queue pending signals (with their
 *   siginfo from SIGQUEUE, signals.c, before the registers; the masks' rest after the detach).
 */
#include <errno.h>
#include <stdarg.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include <elf.h>

#include "restore.h"

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

#define ERESTARTSYS           512
#define ERESTARTNOINTR        513
#define ERESTARTNOHAND        514
#define ERESTART_RESTARTBLOCK 516

enum { R_RAX = 10, R_ORIG_RAX = 15, R_RIP = 16 };

static int new_thread(struct restore_args *a, int img_idx)
{
	const struct img_thread *t = &a->img->threads[img_idx];
	struct rst_thread *m = &a->threads[0], *nt;
	uint64_t scratch = a->tramp + 4096;
	struct clone_args ca;
	uint64_t tid64 = t->f.tid;
	long r;
	int st;

	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
	if (t->f.clear_child_tid) {
		ca.flags |= CLONE_CHILD_CLEARTID;
		ca.child_tid = t->f.clear_child_tid;
	}
	if (!a->new_pid) {
		ca.set_tid = scratch + 512;
		ca.set_tid_size = 1;
	}
	if (rst_write(a, scratch, &ca, sizeof(ca)) || rst_write(a, scratch + 512, &tid64, 4))
		return rst_err(a, -EIO, "THREAD record #%u: cannot write to the child", t->seq);
	r = rst_rsys(a, m, SYS_clone3, scratch, sizeof(ca), 0, 0, 0, 0);
	if (r == -EEXIST)
		return rst_err(a, -EEXIST, "THREAD record #%u: TID %u is taken by another process", t->seq, t->f.tid);
	if (r <= 0)
		return rst_err(a, r < 0 ? (int)r : -EIO, "THREAD record #%u: clone3 (tid %u): %s", t->seq, t->f.tid,
			       strerror(r < 0 ? (int)-r : EIO));
	nt = &a->threads[a->nthreads++];
	nt->tid = (pid_t)r;
	nt->img_idx = img_idx;
	while (waitpid(nt->tid, &st, __WALL) < 0)
		if (errno != EINTR)
			return rst_err(a, -errno, "THREAD record #%u: waitpid: %s", t->seq, strerror(errno));
	if (!WIFSTOPPED(st))
		return rst_err(a, -ESRCH, "THREAD record #%u: the new thread died", t->seq);
	return rst_thread_attach_regs(nt);
}

static int thread_state(struct restore_args *a, struct rst_thread *rt)
{
	const struct img_thread *t = &a->img->threads[rt->img_idx];
	uint64_t scratch = a->tramp + 4096 + 1024;
	long r;

	if (rt == &a->threads[0] && t->f.clear_child_tid)
		rst_rsys(a, rt, SYS_set_tid_address, t->f.clear_child_tid, 0, 0, 0, 0, 0);
	if (t->f.robust_list) {
		r = rst_rsys(a, rt, SYS_set_robust_list, t->f.robust_list, t->f.robust_list_len, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "THREAD record #%u: set_robust_list: %s", t->seq, strerror((int)-r));
	}
	if (!(t->f.altstack_flags & SS_DISABLE) && t->f.altstack_size) {
		struct { uint64_t sp; int32_t flags; int32_t pad; uint64_t size; } ss = {
			t->f.altstack_sp, (int32_t)(t->f.altstack_flags & ~(uint32_t)SS_ONSTACK), 0,
			t->f.altstack_size };
		if (rst_write(a, scratch, &ss, sizeof(ss)))
			return rst_err(a, -EIO, "THREAD record #%u: cannot write to the child", t->seq);
		r = rst_rsys(a, rt, SYS_sigaltstack, scratch, 0, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "THREAD record #%u: sigaltstack: %s", t->seq, strerror((int)-r));
	}
	return 0;
}

int restore_threads(struct restore_args *a)
{
	struct img *img = a->img;
	int err;

	for (size_t i = 0; i < img->nthreads; i++) {
		if ((int)i == a->threads[0].img_idx)
			continue;
		if ((err = new_thread(a, (int)i)))
			return err;
	}
	for (size_t i = 0; i < a->nthreads; i++)
		if ((err = thread_state(a, &a->threads[i])))
			return err;
	rst_trace(a, "threads created");
	return 0;
}

/* Before the uid changes: setting another user's limits needs CAP_SYS_RESOURCE, which a
 * restorer in a container often lacks (prlimit(2)). */
static void restore_rlimits(struct restore_args *a)
{
	struct img *img = a->img;

	for (uint32_t i = 0; i < img->nrlimits; i++) {
		struct rlimit rl = { img->rlimits[i].cur, img->rlimits[i].max };
		if (prlimit(a->pid, (__rlimit_resource_t)img->rlimits[i].resource, &rl, NULL) < 0)
			rst_warn("RLIMITS record: resource %u: %s", img->rlimits[i].resource, strerror(errno));
	}
}

int restore_creds(struct restore_args *a)
{
	const struct ckimg_process_fixed *p = &a->img->proc.f;
	int same = 1;

	restore_rlimits(a);
	for (int i = 0; i < 4; i++)
		same &= p->uid[i] == (uint32_t)geteuid() && p->gid[i] == (uint32_t)getegid();
	if (same)
		return 0;
	rst_keepcaps(a);        /* recorded capabilities must outlive the uid change */
	for (size_t i = 0; i < a->nthreads; i++) {
		struct rst_thread *t = &a->threads[i];
		long r = rst_rsys(a, t, SYS_setresgid, p->gid[0], p->gid[1], p->gid[2], 0, 0, 0);
		if (r >= 0)
			r = rst_rsys(a, t, SYS_setfsgid, p->gid[3], 0, 0, 0, 0, 0) < 0 ? -EPERM : 0;
		if (r >= 0)
			r = rst_rsys(a, t, SYS_setresuid, p->uid[0], p->uid[1], p->uid[2], 0, 0, 0);
		if (r >= 0)
			rst_rsys(a, t, SYS_setfsuid, p->uid[3], 0, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "PROCESS record: setting uid %u gid %u: %s", p->uid[1], p->gid[1],
				       strerror((int)-r));
	}
	/* a uid change clears "dumpable"; the captured process was */
	rst_rsys(a, &a->threads[0], SYS_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0, 0);
	return 0;
}

/*
 * A thread captured inside an interrupted syscall: its registers as the kernel left them (rip
 * past the syscall, rax -ERESTART…, orig_rax the call), so that the kernel's own restart rule
 * (arch/x86/kernel/signal.c) decides when it runs on. Detaching a thread from a ptrace stop
 * always makes it pass that rule on its way out (the detach sets TIF_SIGPENDING), so: a signal
 * with a handler that is pending then (sent while we rebuilt it) interrupts the call with EINTR
 * as it would have in the original, and without one the call is made again. Rewinding the call
 * ourselves instead would run the handler first and then the call again: a pause() or
 * sigsuspend() would sleep through the very signal that was meant to end it.
 * ERESTART_RESTARTBLOCK would call restart_syscall(), whose per-task restart_block did not
 * survive: it becomes ERESTARTNOHAND (EINTR with a handler, as the kernel does for it; else
 * the original call again: a relative sleep starts over, absolute ones are exact).
 */
static void keep_restart(uint64_t *regs)
{
	int64_t rax = (int64_t)regs[R_RAX], orig = (int64_t)regs[R_ORIG_RAX];

	if (orig >= 0 && (rax == -ERESTARTSYS || rax == -ERESTARTNOINTR || rax == -ERESTARTNOHAND ||
			  rax == -ERESTART_RESTARTBLOCK)) {
		if (rax == -ERESTART_RESTARTBLOCK)
			regs[R_RAX] = (uint64_t)-ERESTARTNOHAND;
		return;
	}
	regs[R_ORIG_RAX] = (uint64_t)-1;
}

static int set_thread_regs(struct restore_args *a, struct rst_thread *rt)
{
	const struct img_thread *t = &a->img->threads[rt->img_idx];
	uint64_t regs[27];
	struct iovec iov;
	uint64_t unblockable = (1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1));
	/* --hand-over: every signal stays blocked; the tracer that takes the job over sets this */
	uint64_t mask = a->hand_over ? ~unblockable : t->f.sigmask & ~unblockable;

	rt->sigmask = t->f.sigmask & ~unblockable;
	memcpy(regs, t->regs, sizeof(regs));
	keep_restart(regs);
	if (ptrace(PTRACE_SETREGS, rt->tid, 0, regs) < 0)
		return rst_err(a, -errno, "THREAD record #%u: PTRACE_SETREGS: %s", t->seq, strerror(errno));
	if (t->xstate_size >= 512) {
		iov.iov_base = t->xstate;
		iov.iov_len = t->xstate_size;
		if ((t->f.flags & CKIMG_THREAD_FPREGS_ONLY) ||
		    ptrace(PTRACE_SETREGSET, rt->tid, NT_X86_XSTATE, &iov) < 0) {
			if (ptrace(PTRACE_SETFPREGS, rt->tid, 0, t->xstate) < 0)
				return rst_err(a, -errno, "THREAD record #%u: setting FPU state: %s", t->seq, strerror(errno));
			if (!(t->f.flags & CKIMG_THREAD_FPREGS_ONLY))
				rst_warn("THREAD record #%u: xstate of %u bytes does not fit this CPU; only x87/SSE restored",
					 t->seq, t->xstate_size);
		}
	}
	if (ptrace(PTRACE_SETSIGMASK, rt->tid, sizeof(mask), &mask) < 0)
		return rst_err(a, -errno, "THREAD record #%u: PTRACE_SETSIGMASK: %s", t->seq, strerror(errno));
	return 0;
}

int restore_finish(struct restore_args *a)
{
	struct rst_thread *m = &a->threads[0];
	long r;
	int err;

	/* the child asked for SIGKILL on our death until now (fork.c); now the recorded signal
	 * (none with --detach: we go first) */
	rst_rsys(a, m, SYS_prctl, PR_SET_PDEATHSIG, rst_main_pdeathsig(a), 0, 0, 0, 0);
	if ((err = restore_sigqueue(a)))   /* (signals.c) with their siginfo, still blocked */
		return err;
	for (size_t i = 1; i < a->nthreads; i++)
		if ((err = set_thread_regs(a, &a->threads[i])))
			return err;
	r = rst_rsys(a, m, SYS_munmap, a->tramp, RST_TRAMP_SIZE, 0, 0, 0, 0);
	if (r < 0)
		return rst_err(a, (int)r, "unmapping the trampoline: %s", strerror((int)-r));
	if ((err = set_thread_regs(a, m)))
		return err;
	rst_trace(a, "registers set");
	if (!a->hold)
		restore_release(a);
	return 0;
}

/* The lines --hand-over adds to the PID line (main.c), for every process released. */
static char *hand_over_text;
static size_t hand_over_len;

static void hand_over_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void hand_over_line(const char *fmt, ...)
{
	char line[96];
	va_list ap;
	char *grown;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || !(grown = realloc(hand_over_text, hand_over_len + n + 1)))
		return;
	hand_over_text = grown;
	memcpy(hand_over_text + hand_over_len, line, (size_t)n + 1);
	hand_over_len += (size_t)n;
}

const char *restore_hand_over_text(void)
{
	return hand_over_text ? hand_over_text : "";
}

/*
 * The point of no return: everything is in place, let it run (with its pending signals).
 * --hand-over: let it go stopped instead — a SIGSTOP queued before the detach (it cannot be
 * blocked; everything else is) puts it in a group-stop before it runs one instruction, and a
 * signal sent to it meanwhile (a scheduler's SIGTERM to every process of the job) stays
 * pending. The next tracer (ckimg-guard) seizes it, sets each thread's mask from the
 * "mask PID TID HEX" lines and continues it, holding such a signal like any later one.
 */
void restore_release(struct restore_args *a)
{
	struct img *img = a->img;

	if (a->hand_over) {
		kill(a->pid, SIGSTOP);
		for (size_t i = 0; i < a->nthreads; i++)
			hand_over_line("mask %d %d %llx\n", a->pid, a->threads[i].tid, (unsigned long long)a->threads[i].sigmask);
		if (img->proc.f.flags & CKIMG_PROCESS_STOPPED)
			hand_over_line("stopped %d\n", a->pid);
	}
	for (size_t i = 0; i < a->nthreads; i++) {
		ptrace(PTRACE_DETACH, a->threads[i].tid, 0, 0);
		a->threads[i].stopped = 0;
	}
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL)
			continue;
		if ((img->sigf.shared_pending & (1ull << (sig - 1))) && !rst_sigqueue_has(img, 0, sig))
			kill(a->pid, sig);
		for (size_t i = 0; i < a->nthreads; i++) {
			const struct img_thread *t = &img->threads[a->threads[i].img_idx];
			if ((t->f.pending & (1ull << (sig - 1))) && !rst_sigqueue_has(img, t->f.tid, sig))
				syscall(SYS_tgkill, a->pid, a->threads[i].tid, sig);
		}
	}
	if (img->proc.f.flags & CKIMG_PROCESS_STOPPED)
		kill(a->pid, SIGSTOP);
}

void rst_fill_abort(struct restore_args *a);

void restore_abort(struct restore_args *a)
{
	int st;

	rst_fill_abort(a);
	if (a->pid <= 0)
		return;
	kill(a->pid, SIGKILL);
	for (;;) {
		pid_t w = waitpid(-1, &st, __WALL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 || (w == a->pid && (WIFEXITED(st) || WIFSIGNALED(st))))
			break;
	}
	a->pid = 0;
}
