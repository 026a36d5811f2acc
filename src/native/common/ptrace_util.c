/*
 * ptrace helpers: freeze/release, registers, memory, remote syscall. See ptrace_util.h for the
 * contract; man 2 ptrace (PTRACE_SEIZE, PTRACE_INTERRUPT, "Group-stop", "Signal-delivery-stop").
 */
#include "ptrace_util.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif
#ifndef PTRACE_GETSIGMASK
#define PTRACE_GETSIGMASK 0x420a
#define PTRACE_SETSIGMASK 0x420b
#endif

static int is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

int pt_wait_stop(pid_t tid, int *status)
{
	for (;;) {
		pid_t r = waitpid(tid, status, __WALL);
		if (r == tid)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -errno : -ECHILD;
	}
	if (WIFEXITED(*status) || WIFSIGNALED(*status))
		return -ESRCH;
	return WIFSTOPPED(*status) ? 0 : -EINVAL;
}

size_t pt_undeleted_len(const char *name, int *deleted)
{
	static const char mark[] = " (deleted)";
	size_t n = strlen(name), k = sizeof(mark) - 1;
	int d = n > k && !strcmp(name + n - k, mark);

	if (deleted)
		*deleted = d;
	return d ? n - k : n;
}

int pt_proc_stat(pid_t pid, struct pt_proc_stat *out)
{
	char path[64], buf[512];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	/* "pid (comm) state ppid pgrp session ...": comm may hold ')' and spaces */
	char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
	if (n <= 0 || !open_paren || !close_paren || close_paren < open_paren ||
	    sscanf(close_paren + 1, " %c %d %d %d", &out->state, &out->ppid, &out->pgrp, &out->sid) != 4)
		return 0;
	snprintf(out->comm, sizeof(out->comm), "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
	return 1;
}

/* Why the last freeze gave up (pt_stuck_reason), for the caller's error line. */
static char stuck_reason[256];

const char *pt_stuck_reason(void)
{
	return stuck_reason;
}

/* A thread that does not stop: in vfork() (the parent waits, unstoppable, until a child that
 * shares its memory execs or exits) or in an uninterruptible kernel wait. */
static void explain_stuck(pid_t tid, unsigned ms)
{
	char path[96], buf[512], wchan[64] = "?";
	char state = '?';
	struct pt_proc_stat st;
	int fd;
	ssize_t n;

	if (pt_proc_stat(tid, &st))
		state = st.state;
	snprintf(path, sizeof(path), "/proc/%d/wchan", tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, wchan, sizeof(wchan) - 1);
		close(fd);
		wchan[n > 0 ? n : 0] = 0;
	}
	/* a vfork child: one of our children whose memory is ours (KCMP_VM) */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", tid, tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		for (char *p = buf, *end; *p; p = end) {
			long child = strtol(p, &end, 10);
			if (end == p)
				break;
			if (child > 0 && syscall(SYS_kcmp, tid, (pid_t)child, 0 /* KCMP_VM */, 0, 0) == 0) {
				snprintf(stuck_reason, sizeof(stuck_reason),
					 "thread %d did not stop within %u ms: it is in vfork() until its child %ld, "
					 "which shares its memory, execs or exits", tid, ms, child);
				return;
			}
		}
	}
	snprintf(stuck_reason, sizeof(stuck_reason), "thread %d did not stop within %u ms (state %c, in %s)",
		 tid, ms, state, wchan[0] ? wchan : "?");
}

/* How long a thread may take to stop: $CKIMG_FREEZE_TIMEOUT_MS, else 10 s. */
static unsigned freeze_timeout_ms(void)
{
	const char *e = getenv("CKIMG_FREEZE_TIMEOUT_MS");
	long v = e ? strtol(e, NULL, 10) : 0;
	return v > 0 ? (unsigned)v : 10000;
}

/* waitpid for a stop of tid, giving up after the freeze timeout: polled, with a sleep that
 * starts at 20 µs (a thread stops within microseconds) and doubles up to 5 ms. */
static int wait_stop_bounded(pid_t tid, int *status)
{
	unsigned limit = freeze_timeout_ms();
	struct timespec t0, now, nap = { 0, 20000 };

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(tid, status, __WALL | WNOHANG);
		if (r == tid)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		clock_gettime(CLOCK_MONOTONIC, &now);
		unsigned ms = (unsigned)((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (ms >= limit) {
			explain_stuck(tid, ms);
			return -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < 5000000)
			nap.tv_nsec *= 2;
	}
	if (WIFEXITED(*status) || WIFSIGNALED(*status))
		return -ESRCH;
	return WIFSTOPPED(*status) ? 0 : -EINVAL;
}

/*
 * Wait for the PTRACE_EVENT_STOP that PTRACE_INTERRUPT asked for. A signal-delivery-stop can
 * come first (the signal was already being delivered): hand the signal back, as the thread
 * would have got it anyway, and wait again; the interrupt trap follows before user mode.
 * A thread that never stops (vfork, a hung kernel wait) ends the wait with -ETIMEDOUT and
 * pt_stuck_reason() says why.
 */
static int wait_interrupt_stop(pid_t tid, struct pt_thread *out)
{
	int status, err;

	for (;;) {
		err = wait_stop_bounded(tid, &status);
		if (err)
			return err;
		if ((status >> 16) == PTRACE_EVENT_STOP) {
			out->tid = tid;
			out->stop_sig = WSTOPSIG(status);
			out->group_stop = is_stop_signal(WSTOPSIG(status));
			return 0;
		}
		if (ptrace(PTRACE_CONT, tid, 0, (void *)(long)WSTOPSIG(status)) < 0)
			return -errno;
	}
}

int pt_seize_one(pid_t tid, struct pt_thread *out)
{
	int err;

	/* TRACESYSGOOD: remote syscalls stop at syscall entry/exit, never with a real SIGTRAP.
	 * SUSPEND_SECCOMP (needs CAP_SYS_ADMIN): a seccomp-confined target still runs the
	 * remote calls; without the capability, seize plainly. */
	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP)) < 0 &&
	    ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0)
		return -errno;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
		err = -errno;
		goto detach;
	}
	err = wait_interrupt_stop(tid, out);
	if (err)
		goto detach;
	return 0;
detach:
	ptrace(PTRACE_DETACH, tid, 0, 0);
	return err;
}

static int have_tid(const struct pt_process *p, pid_t tid)
{
	for (size_t i = 0; i < p->nthreads; i++)
		if (p->threads[i].tid == tid)
			return 1;
	return 0;
}

static int add_thread(struct pt_process *p, const struct pt_thread *t)
{
	if (p->nthreads == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct pt_thread *n = realloc(p->threads, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		p->threads = n;
		p->cap = cap;
	}
	p->threads[p->nthreads++] = *t;
	return 0;
}

/* A zombie leader (main thread called pthread_exit) never reports a ptrace stop. */
static int thread_is_zombie(pid_t pid, pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* One pass over /proc/PID/task: seize the threads not seized yet. *added counts them. */
static int seize_new_threads(struct pt_process *p, int *added)
{
	char path[64];
	struct dirent *de;
	int err = 0;

	*added = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", p->pid);
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		struct pt_thread t;
		if (tid <= 0 || have_tid(p, tid) || thread_is_zombie(p->pid, tid))
			continue;
		err = pt_seize_one(tid, &t);
		if (err == -ESRCH && tid != p->pid) {
			err = 0; /* exited meanwhile */
			continue;
		}
		if (err)
			break;
		err = add_thread(p, &t);
		if (err) {
			ptrace(PTRACE_DETACH, tid, 0, 0);
			break;
		}
		(*added)++;
	}
	closedir(d);
	return err;
}

int pt_freeze(struct pt_process *p, pid_t pid)
{
	int added, err;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	/* Threads born while we stop the others show up in the next pass; a pass that seizes
	 * nothing new means every thread is stopped and none can clone any more. */
	do {
		err = seize_new_threads(p, &added);
		if (err)
			goto fail;
	} while (added);
	if (p->nthreads == 0) {
		err = -ESRCH;
		goto fail;
	}
	for (size_t i = 1; i < p->nthreads; i++) /* main thread first */
		if (p->threads[i].tid == pid) {
			struct pt_thread t = p->threads[0];
			p->threads[0] = p->threads[i];
			p->threads[i] = t;
		}
	return 0;
fail:
	pt_release(p);
	return err;
}

void pt_release(struct pt_process *p)
{
	for (size_t i = 0; i < p->nthreads; i++)
		ptrace(PTRACE_DETACH, p->threads[i].tid, 0, 0);
	free(p->threads);
	memset(p, 0, sizeof(*p));
}

int pt_get_regs(pid_t tid, struct user_regs_struct *regs)
{
	return ptrace(PTRACE_GETREGS, tid, 0, regs) < 0 ? -errno : 0;
}

int pt_set_regs(pid_t tid, const struct user_regs_struct *regs)
{
	return ptrace(PTRACE_SETREGS, tid, 0, regs) < 0 ? -errno : 0;
}

long pt_get_xstate(pid_t tid, void *buf, size_t size)
{
	struct iovec iov = { buf, size };
	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov) < 0)
		return -errno;
	return (long)iov.iov_len; /* the kernel trims iov_len to what it wrote */
}

int pt_set_xstate(pid_t tid, const void *buf, size_t size)
{
	struct iovec iov = { (void *)buf, size };
	return ptrace(PTRACE_SETREGSET, tid, (void *)NT_X86_XSTATE, &iov) < 0 ? -errno : 0;
}

int pt_get_fpregs(pid_t tid, void *buf512)
{
	struct iovec iov = { buf512, 512 };
	return ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRFPREG, &iov) < 0 ? -errno : 0;
}

int pt_get_sigmask(pid_t tid, uint64_t *mask)
{
	return ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(*mask), mask) < 0 ? -errno : 0;
}

int pt_set_sigmask(pid_t tid, uint64_t mask)
{
	return ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(mask), &mask) < 0 ? -errno : 0;
}

static long proc_mem_io(pid_t pid, uint64_t addr, void *buf, size_t len, int write)
{
	char path[64];
	size_t done = 0;
	long err = 0;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	int fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done, (off_t)(addr + done))
				  : pread(fd, (char *)buf + done, len - done, (off_t)(addr + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	close(fd);
	return done ? (long)done : err;
}

long pt_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)addr, len };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
	if (n == (ssize_t)len)
		return n;
	if (n < 0)
		n = 0;
	long m = proc_mem_io(pid, addr + n, (char *)buf + n, len - n, 0);
	if (m < 0)
		return n ? n : m;
	return n + m;
}

long pt_write_mem(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)addr, len };
	ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);
	if (n == (ssize_t)len)
		return n;
	if (n < 0)
		n = 0;
	long m = proc_mem_io(pid, addr + n, (char *)buf + n, len - n, 1);
	if (m < 0)
		return n ? n : m;
	return n + m;
}

static int search_syscall_insn(pid_t pid, uint64_t start, uint64_t end, uint64_t *ip)
{
	size_t len = end - start;
	int err = -ENOENT;

	if (len > (16u << 20))
		len = 16u << 20;
	unsigned char *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	long n = pt_read_mem(pid, start, buf, len);
	for (long i = 0; i + 1 < n; i++)
		if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
			*ip = start + (uint64_t)i;
			err = 0;
			break;
		}
	free(buf);
	return err;
}

int pt_find_syscall_ip(pid_t pid, uint64_t *ip)
{
	char path[64], line[4096];
	int err = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	/* Pass 0: the vdso (tiny, always there); pass 1: any other r-x mapping (libc has many). */
	for (int pass = 0; pass < 2 && err; pass++) {
		FILE *f = fopen(path, "re");
		if (!f)
			return -errno;
		while (err && fgets(line, sizeof(line), f)) {
			unsigned long long s, e;
			char perms[8];
			if (sscanf(line, "%llx-%llx %7s", &s, &e, perms) != 3 || perms[2] != 'x')
				continue;
			int vdso = strstr(line, "[vdso]") != NULL;
			if ((pass == 0) != vdso || strstr(line, "[vsyscall]"))
				continue;
			err = search_syscall_insn(pid, s, e, ip);
		}
		fclose(f);
	}
	return err;
}

/* Point saved registers r at call sc (step 3 above). */
static void load_call(struct user_regs_struct *r, uint64_t syscall_ip, const struct pt_syscall *sc)
{
	r->rip = syscall_ip;
	r->rax = (unsigned long long)sc->nr;
	r->orig_rax = (unsigned long long)-1;
	r->rdi = sc->arg[0];
	r->rsi = sc->arg[1];
	r->rdx = sc->arg[2];
	r->r10 = sc->arg[3];
	r->r8 = sc->arg[4];
	r->r9 = sc->arg[5];
}

struct batch_thread {
	struct user_regs_struct saved;
	uint64_t saved_mask;
	size_t next;            /* the call under way */
	int stops;              /* its syscall stops seen: 2 = made */
	int other_sig;
	int saved_ok, running;
};

/* Set thread t up for its next call and let it go to the call's first stop. */
static int batch_start_call(struct pt_remote_batch *b, struct batch_thread *t, uint64_t syscall_ip)
{
	struct user_regs_struct r = t->saved;

	load_call(&r, syscall_ip, &b->calls[t->next]);
	t->stops = 0;
	int err = pt_set_regs(b->tid, &r);
	if (!err && ptrace(PTRACE_SYSCALL, b->tid, 0, 0) < 0)
		err = -errno;
	return err;
}

/*
 * A call is made with PTRACE_SYSCALL to its entry stop, again to its exit stop. Not
 * PTRACE_SINGLESTEP: the single-step trap is a *forced* SIGTRAP, and forcing a signal the
 * thread blocks (we block all) resets its handler to SIG_DFL (force_sig_info_to_task), so a
 * program's SIGTRAP handler would be lost by merely being captured. Syscall stops report
 * SIGTRAP|0x80 (TRACESYSGOOD) and queue nothing. A signal-delivery-stop in between is noted,
 * suppressed and re-sent afterwards; event stops are passed through. Here: thread t stopped;
 * count the stop, collect a made call's result, start the next call or finish.
 */
static int batch_step(struct pt_remote_batch *b, struct batch_thread *t, uint64_t syscall_ip)
{
	int status, err = pt_wait_stop(b->tid, &status);

	if (err)
		return err;
	int sig = WSTOPSIG(status), event = status >> 16;
	if (sig == (SIGTRAP | 0x80))
		t->stops++;
	else if (event == 0)
		t->other_sig = sig;     /* suppressed now, re-sent at the end */
	if (t->stops < 2)
		return ptrace(PTRACE_SYSCALL, b->tid, 0, 0) < 0 ? -errno : 0;
	struct user_regs_struct r;
	err = pt_get_regs(b->tid, &r);
	if (err)
		return err;
	b->calls[t->next].ret = (int64_t)r.rax;
	if (++t->next == b->ncalls) {
		t->running = 0;
		return 0;
	}
	return batch_start_call(b, t, syscall_ip);
}

int pt_remote_syscalls(struct pt_remote_batch *b, size_t n, uint64_t syscall_ip)
{
	struct batch_thread *ts = calloc(n ? n : 1, sizeof(*ts));
	size_t running = 0;
	int first = 0;

	if (!ts)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct batch_thread *t = &ts[i];
		b[i].err = 0;
		if (!b[i].ncalls)
			continue;
		int err = pt_get_regs(b[i].tid, &t->saved);
		if (!err)
			err = pt_get_sigmask(b[i].tid, &t->saved_mask);
		if (!err)
			t->saved_ok = 1;
		if (!err)
			err = pt_set_sigmask(b[i].tid, ~0ULL);
		if (!err)
			err = batch_start_call(&b[i], t, syscall_ip);
		if (err)
			b[i].err = err;
		else
			t->running = 1, running++;
	}
	/* Rounds: each running thread is waited for in turn while the others run on. */
	while (running) {
		for (size_t i = 0; i < n; i++) {
			if (!ts[i].running)
				continue;
			int err = batch_step(&b[i], &ts[i], syscall_ip);
			if (err) {
				b[i].err = err;
				ts[i].running = 0;
			}
			if (!ts[i].running)
				running--;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct batch_thread *t = &ts[i];
		if (t->saved_ok && b[i].err != -ESRCH) {
			int e1 = pt_set_regs(b[i].tid, &t->saved), e2 = pt_set_sigmask(b[i].tid, t->saved_mask);
			if (!b[i].err)
				b[i].err = e1 ? e1 : e2;
		}
		if (t->other_sig)
			kill(b[i].tid, t->other_sig);
		if (b[i].err && !first)
			first = b[i].err;
	}
	free(ts);
	return first;
}

int pt_remote_syscall(pid_t tid, uint64_t syscall_ip, struct pt_syscall *sc)
{
	struct pt_remote_batch b = { .tid = tid, .calls = sc, .ncalls = 1 };

	return pt_remote_syscalls(&b, 1, syscall_ip);
}

int pt_remote_mmap(pid_t tid, uint64_t syscall_ip, size_t len, uint64_t *addr)
{
	struct pt_syscall sc = REMOTE_SYSCALL(__NR_mmap, 0, len, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0);
	int err = pt_remote_syscall(tid, syscall_ip, &sc);
	if (err)
		return err;
	if (sc.ret < 0 && sc.ret > -4096)
		return (int)sc.ret;
	*addr = (uint64_t)sc.ret;
	return 0;
}

int pt_remote_munmap(pid_t tid, uint64_t syscall_ip, uint64_t addr, size_t len)
{
	struct pt_syscall sc = REMOTE_SYSCALL(__NR_munmap, addr, len);
	int err = pt_remote_syscall(tid, syscall_ip, &sc);
	return err ? err : (int)sc.ret;
}
