/*
 * Remote system calls in the child being restored, without signals.
 *
 * common/ptrace_util's pt_remote_syscall() single-steps over a `syscall` found in the vdso and
 * puts the registers back; restore needs something different: the vdso moves and our own
 * code is unmapped, the child must create threads (clone3 event stops in the middle of a
 * call) and nothing may force a signal on it (a forced SIGTRAP on a blocked signal resets
 * that signal's handler to SIG_DFL, see force_sig_info_to_task()). So:
 *
 *   rip = trampoline (a page holding `0f 05` = syscall), rax = nr, args in rdi rsi rdx r10 r8
 *   r9, orig_rax = -1; PTRACE_SYSCALL -> syscall-entry-stop; PTRACE_SYSCALL -> (event stops
 *   for clone, passed through) -> syscall-exit-stop; read rax.
 *
 * With PTRACE_O_TRACESYSGOOD syscall stops report SIGTRAP|0x80, so they are never confused
 * with a real SIGTRAP. The thread stays in its syscall-exit-stop between calls; the final
 * registers are set there and the thread detached, so the trampoline can be unmapped by the
 * very last call.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "restore.h"

static pid_t last_clone_tid;

pid_t rst_last_clone_tid(void)
{
	return last_clone_tid;
}

int rst_thread_attach_regs(struct rst_thread *t)
{
	struct user_regs_struct r;

	if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) < 0)
		return -errno;
	memcpy(t->base_regs, &r, sizeof(r));
	t->stopped = 1;
	return 0;
}

/* Resume with PTRACE_SYSCALL until the next syscall stop; pass event stops through,
 * suppress any signal. Returns 0 or -errno (-ESRCH: the thread died). */
static int to_syscall_stop(pid_t tid)
{
	int st;

	for (;;) {
		if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
			return -errno;
		for (;;) {
			pid_t w = waitpid(tid, &st, __WALL);
			if (w == tid)
				break;
			if (w < 0 && errno != EINTR)
				return -errno;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return -ESRCH;
		if (!WIFSTOPPED(st))
			continue;
		if (WSTOPSIG(st) == (SIGTRAP | 0x80))
			return 0;
		if ((st >> 16) == PTRACE_EVENT_CLONE) {
			unsigned long msg = 0;
			ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg);
			last_clone_tid = (pid_t)msg;
		}
		/* other event or signal stop: resume, dropping the signal */
	}
}

long rst_rsys(struct restore_args *a, struct rst_thread *t, long nr, uint64_t a1, uint64_t a2,
	      uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6)
{
	struct user_regs_struct r;
	int err;

	memcpy(&r, t->base_regs, sizeof(r));
	r.rip = a->tramp;
	r.rax = (unsigned long long)nr;
	r.orig_rax = (unsigned long long)-1;
	r.rdi = a1;
	r.rsi = a2;
	r.rdx = a3;
	r.r10 = a4;
	r.r8 = a5;
	r.r9 = a6;
	r.eflags &= ~0x100ull;          /* no TF */
	if (ptrace(PTRACE_SETREGS, t->tid, 0, &r) < 0)
		return -errno;
	err = to_syscall_stop(t->tid);  /* entry */
	if (err)
		return err;
	err = to_syscall_stop(t->tid);  /* exit */
	if (err)
		return err;
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) < 0)
		return -errno;
	return (long)r.rax;
}

/* Write into the child: process_vm_writev, else /proc/PID/mem (reaches read-only pages). */
int rst_write(struct restore_args *a, uint64_t addr, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)addr, len };
	ssize_t n = process_vm_writev(a->pid, &l, 1, &r, 1, 0);
	char path[64];
	int fd;

	if (n == (ssize_t)len)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/mem", a->pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pwrite(fd, buf, len, (off_t)addr);
	close(fd);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

/* Read a 32-bit value back from the child (a remote call's output). */
int rst_read_i32(struct restore_args *a, uint64_t addr, int32_t *out)
{
	struct iovec l = { out, 4 }, r = { (void *)addr, 4 };
	return process_vm_readv(a->pid, &l, 1, &r, 1, 0) == 4 ? 0 : -EIO;
}
