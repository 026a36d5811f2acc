/*
 * ptrace helpers shared by capture and restore: freeze/release every thread of a process,
 * register and xstate access, bulk memory access, and ONE remote-syscall primitive.
 *
 * Conventions: every function returns 0 (or a byte count) on success and -errno on failure;
 * none prints. All ptrace requests must come from the thread that seized the tracee (ptrace
 * ties a tracee to one tracer *thread*), so call these from one thread only.
 *
 * Lifecycle
 *   struct pt_process p;
 *   int err = pt_freeze(&p, pid);       // SEIZE + INTERRUPT all threads, re-scan until stable
 *   ... pt_get_regs(p.threads[i].tid, &regs) ...
 *   uint64_t ip; pt_find_syscall_ip(pid, &ip);
 *   struct pt_syscall sc = REMOTE_SYSCALL(__NR_getpid); pt_remote_syscall(tid, ip, &sc);
 *   pt_release(&p);                     // PTRACE_DETACH all; never fails; idempotent
 * pt_freeze() leaves nothing seized when it fails. Threads stay in their ptrace stop until
 * pt_release(); a process that was in job-control stop stays stopped after release.
 *
 * Remote syscall (pt_remote_syscall): runs one system call *inside* a stopped tracee thread.
 *   1. save the thread's registers and signal mask (PTRACE_GETREGS, PTRACE_GETSIGMASK);
 *   2. block every signal (PTRACE_SETSIGMASK ~0) so no handler runs on the fake register set;
 *   3. set rip = syscall_ip (the address of a `syscall` instruction, 0f 05, already mapped
 *      executable in the target: pt_find_syscall_ip() finds one in the vdso, else in another
 *      r-x mapping), rax = nr, rdi rsi rdx r10 r8 r9 = args, orig_rax = -1 (so the kernel's
 *      syscall-restart logic does not touch the injected state on resume);
 *   4. PTRACE_SYSCALL twice: the thread stops at the syscall's entry, then at its exit
 *      (SIGTRAP|0x80 stops, PTRACE_O_TRACESYSGOOD; no signal is queued or forced);
 *   5. read rax (the raw result, -errno on failure of the remote call);
 *   6. restore the saved registers and mask. The thread is left in its syscall-exit-stop
 *      until pt_release(), and an interrupted syscall of the thread (rax = -ERESTART*) is
 *      still restarted normally after release, because the original orig_rax/rax are back.
 *   An unblockable signal (SIGSTOP) that arrives during the step is suppressed and re-sent with
 *   kill() afterwards. If the thread dies (SIGKILL) the call returns -ESRCH.
 *   Pointers passed to the remote call must point into the *target's* memory: use
 *   pt_remote_mmap() for a scratch page, pt_write_mem()/pt_read_mem() to fill and read it,
 *   pt_remote_munmap() when done.
 */
#ifndef CK_PTRACE_UTIL_H
#define CK_PTRACE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct pt_thread {
	pid_t tid;
	int stop_sig;       /* WSTOPSIG of the stop we hold the thread in */
	int group_stop;     /* 1: the stop is a job-control (group) stop: SIGSTOP/SIGTSTP/... */
};

struct pt_process {
	pid_t pid;
	size_t nthreads, cap;
	struct pt_thread *threads; /* threads[0] is the main thread when it is alive */
};

/* Seize and stop every thread of pid (see above). p is zeroed first. */
int pt_freeze(struct pt_process *p, pid_t pid);
/* Detach every thread (signal 0: a held SIGTRAP stop is suppressed), free, zero p. */
void pt_release(struct pt_process *p);
/* Seize + interrupt + wait one thread (used by pt_freeze; restore may use it for a child). */
int pt_seize_one(pid_t tid, struct pt_thread *out);
/* The head of /proc/PID/stat. */
struct pt_proc_stat {
	char comm[64];
	char state;
	int ppid, pgrp, sid;
};
/* 1 and *out filled, or 0 when pid is gone or the line cannot be read. */
int pt_proc_stat(pid_t pid, struct pt_proc_stat *out);
/* The length of a /proc name (a link, a maps path) without the " (deleted)" the kernel puts
 * after a removed file's path; *deleted (may be NULL) says whether it had one. */
size_t pt_undeleted_len(const char *name, int *deleted);
/* Why the last seize timed out (-ETIMEDOUT): "thread N did not stop within …". */
const char *pt_stuck_reason(void);
/* Wait until tid is in a ptrace stop; returns the stop status via *status. */
int pt_wait_stop(pid_t tid, int *status);

int pt_get_regs(pid_t tid, struct user_regs_struct *regs);
int pt_set_regs(pid_t tid, const struct user_regs_struct *regs);
/* Full XSAVE area (NT_X86_XSTATE) into buf; returns the size the kernel wrote (> 0). */
long pt_get_xstate(pid_t tid, void *buf, size_t size);
int pt_set_xstate(pid_t tid, const void *buf, size_t size);
/* 512-byte FXSAVE area (NT_PRFPREG), the fallback when xstate is not available. */
int pt_get_fpregs(pid_t tid, void *buf512);
int pt_get_sigmask(pid_t tid, uint64_t *mask);
int pt_set_sigmask(pid_t tid, uint64_t mask);

/* Memory of the target: process_vm_readv/writev, falling back to /proc/PID/mem (which also
 * reaches PROT_NONE and read-only pages). Return bytes done (short only at an unmapped page)
 * or -errno when nothing could be transferred. */
long pt_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len);
long pt_write_mem(pid_t pid, uint64_t addr, const void *buf, size_t len);

/* Address of a `syscall` instruction in an executable mapping of pid (vdso first). */
int pt_find_syscall_ip(pid_t pid, uint64_t *ip);

struct pt_syscall {
	long nr;            /* __NR_* */
	uint64_t arg[6];    /* rdi rsi rdx r10 r8 r9 */
	int64_t ret;        /* raw rax after the call: >= 0 or -errno */
};
#define REMOTE_SYSCALL(n, ...) ((struct pt_syscall){ .nr = (n), .arg = { __VA_ARGS__ } })

/* Run sc->nr in stopped thread tid (see above). Returns 0 when the call was made (its own
 * result, possibly -errno, is in sc->ret) or -errno when it could not be made. */
int pt_remote_syscall(pid_t tid, uint64_t syscall_ip, struct pt_syscall *sc);

/*
 * Remote syscalls in several threads at once: each thread of b runs its own calls, in order,
 * with the same rules as pt_remote_syscall; the threads run side by side, so a round of stops
 * serves them all and a frozen process with many threads waits a few round trips, not one per
 * call and thread. Each b[i].err is 0 when all of its calls were made (results in their ret),
 * else -errno; returns the first such error. Scratch memory: give each thread its own slot.
 */
struct pt_remote_batch {
	pid_t tid;
	struct pt_syscall *calls;
	size_t ncalls;
	int err;
};
int pt_remote_syscalls(struct pt_remote_batch *b, size_t n, uint64_t syscall_ip);

/* Convenience wrappers over pt_remote_syscall: an anonymous private RW scratch mapping. */
int pt_remote_mmap(pid_t tid, uint64_t syscall_ip, size_t len, uint64_t *addr);
int pt_remote_munmap(pid_t tid, uint64_t syscall_ip, uint64_t addr, size_t len);

#endif /* CK_PTRACE_UTIL_H */
