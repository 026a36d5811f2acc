/*
 * restore_fork: create the child with the recorded PID and let it prepare, by itself, what a
 * process can set up for itself before its memory is replaced: file descriptors at their
 * numbers, cwd, umask, personality, name, signal dispositions, and the fds restore_mm needs
 * (the image and every mapped file, on high "aux" numbers). It then maps the trampoline and
 * stops itself under PTRACE_TRACEME. Errors in the child go to a shared page, then _exit().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fds.h"
#include "ptrace_util.h"

#define CHILD_ERR_SIZE 4096

struct kernel_sigaction {
	uint64_t handler, flags, restorer, mask;
};

static void __attribute__((noreturn, format(printf, 2, 3)))
child_fail(struct restore_args *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->child_err, CHILD_ERR_SIZE, fmt, ap);
	va_end(ap);
	_exit(100);
}

/* Whether path names the same file as exe, either of them marked " (deleted)" by the kernel. */
static int same_path_but_deleted(const char *path, const char *exe)
{
	size_t lp = pt_undeleted_len(path, NULL), le = pt_undeleted_len(exe, NULL);

	return lp == le && !strncmp(path, exe, lp);
}

/*
 * What /proc/PID/exe is set from: the executable's path, or — when it had been deleted (a
 * binary replaced by an upgrade while it ran) — the copy re-created from the image's content
 * of its mapping, so that the link reads "PATH (deleted)" again.
 */
static const char *exe_source(struct restore_args *a, char *buf, size_t size)
{
	struct img *img = a->img;

	for (size_t i = 0; i < img->nfiles; i++) {
		int ci = img_content_for_file(img, &img->files[i]);
		if (ci >= 0 && same_path_but_deleted(img->files[i].path.s, img->proc.exe.s)) {
			snprintf(buf, size, "/proc/self/fd/%d", a->content_fd_base + ci);
			return buf;
		}
	}
	return img->proc.exe.s;
}

static void child_aux_fds(struct restore_args *a)
{
	struct img *img = a->img;
	char exe[64];
	int fd;

	if (dup2(img->fd, a->img_fd_child) < 0)
		child_fail(a, "cannot dup the image fd: %s", strerror(errno));
	if (a->exe_fd_child >= 0) {
		fd = open(exe_source(a, exe, sizeof(exe)), O_RDONLY | O_CLOEXEC);
		if (fd < 0 || dup2(fd, a->exe_fd_child) < 0)
			a->exe_fd_child = -1;   /* parent notices: PR_SET_MM_MAP keeps exe */
		if (fd >= 0)
			close(fd);
	}
	for (size_t i = 0; i < img->nfiles; i++) {
		int want = a->file_fd_child[i], flags = O_RDONLY;
		if (want < 0)
			continue;
		for (size_t k = 0; k < img->nareas; k++)
			if (img->areas[k].file_idx == (int)i && (img->areas[k].f.flags & CKIMG_AREA_SHARED) &&
			    (img->areas[k].f.prot & CKIMG_PROT_WRITE))
				flags = O_RDWR;
		const char *path = img->files[i].path.s;
		char content[64];
		int ci = img_content_for_file(img, &img->files[i]);
		if (ci >= 0) {          /* a deleted file or memfd: the one re-created from the image */
			snprintf(content, sizeof(content), "/proc/self/fd/%d", a->content_fd_base + ci);
			path = content;
		}
		fd = open(path, flags | O_CLOEXEC);
		if (fd < 0)
			child_fail(a, "MAPPED_FILE record #%u (%s): cannot open: %s", img->files[i].seq,
				   img->files[i].path.s, strerror(errno));
		if (dup2(fd, want) < 0)
			child_fail(a, "MAPPED_FILE record #%u: dup: %s", img->files[i].seq, strerror(errno));
		close(fd);
	}
}

static void child_signals(struct restore_args *a)
{
	struct img *img = a->img;

	for (int sig = 1; sig <= 64; sig++) {
		struct kernel_sigaction ks = { 0, 0, 0, 0 };
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		for (uint32_t i = 0; i < img->nsigs; i++)
			if ((int)img->sigs[i].signo == sig) {
				ks.handler = img->sigs[i].handler;
				ks.flags = img->sigs[i].flags;
				ks.restorer = img->sigs[i].restorer;
				ks.mask = img->sigs[i].mask;
			}
		if (syscall(SYS_rt_sigaction, sig, &ks, NULL, 8) < 0)
			child_fail(a, "SIGACTIONS record: signal %d: %s", sig, strerror(errno));
	}
}

/*
 * glibc registered an rseq area for us inside our TLS. Once restore_mm unmaps it, every
 * return to user mode would make the kernel fail to update it and force SIGSEGV: unregister.
 * The registration length must match; glibc has used __rseq_size and 32.
 */
static void child_rseq_off(void)
{
	if (__rseq_size == 0)
		return;
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	if (syscall(SYS_rseq, area, __rseq_size, 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG) < 0)
		syscall(SYS_rseq, area, 32, 1, RSEQ_SIG);
}

/* The kernel names a removed directory "PATH (deleted)". Returns 1 and PATH in out when cwd is
 * such a name and nothing is at PATH now. */
static int cwd_is_deleted(const char *cwd, char *out, size_t n)
{
	int deleted;
	size_t len = pt_undeleted_len(cwd, &deleted);
	struct stat st;

	if (!deleted || len >= n || stat(cwd, &st) == 0)
		return 0;
	memcpy(out, cwd, len);
	out[len] = 0;
	return 1;
}

/* The process's cwd. One that had been removed comes back removed: an empty directory is made
 * (at its old path where that is free, else in /tmp), entered and removed again, so getcwd()
 * and relative paths behave as they did before the capture. */
static void child_chdir(struct restore_args *a)
{
	const char *cwd = a->img->proc.cwd.s;
	char path[4096];

	if (!cwd[0] || chdir(cwd) == 0)
		return;
	if (!cwd_is_deleted(cwd, path, sizeof(path)))
		child_fail(a, "PROCESS record: cwd %s: %s", cwd, strerror(errno));
	if (mkdir(path, 0755) < 0) {
		snprintf(path, sizeof(path), "/tmp/.ckimg-cwd-XXXXXX");
		if (!mkdtemp(path))
			child_fail(a, "PROCESS record: cwd %s: cannot make a directory to stand for it: %s",
				   cwd, strerror(errno));
	}
	if (chdir(path) < 0 || rmdir(path) < 0)
		child_fail(a, "PROCESS record: cwd %s: %s: %s", cwd, path, strerror(errno));
}

/* In the new process, still running our code: what it sets up for itself (fds, cwd, umask,
 * personality, name, signal dispositions, aux fds, trampoline). Returns only on success. */
void restore_child_setup(struct restore_args *a)
{
	struct img *img = a->img;
	const struct ckimg_process_fixed *p = &img->proc.f;
	void *t;

	if (restore_contents_child(a, a->child_err, CHILD_ERR_SIZE))
		_exit(100);
	child_aux_fds(a);
	if (!a->fds_shared && restore_fds_child(a, a->child_err, CHILD_ERR_SIZE))
		_exit(100);
	if (p->umask != 0xFFFFFFFFu)
		umask(p->umask & 0777);
	if (personality(p->personality) < 0)
		child_fail(a, "PROCESS record: personality 0x%x: %s", p->personality, strerror(errno));
	prctl(PR_SET_NAME, img->proc.comm.s);
	child_chdir(a);
	child_signals(a);

	t = mmap((void *)a->tramp, RST_TRAMP_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (t != (void *)a->tramp)
		child_fail(a, "cannot map the trampoline at %#llx: %s", (unsigned long long)a->tramp,
			   strerror(errno));
	((uint8_t *)t)[0] = 0x0f;       /* syscall */
	((uint8_t *)t)[1] = 0x05;
	((uint8_t *)t)[2] = 0xcc;       /* int3: never reached (we stop at syscall exit) */

	child_rseq_off();
}

void restore_child_fail(struct restore_args *a, const char *what, int err)
{
	child_fail(a, "%s: %s", what, strerror(err));
}

static void __attribute__((noreturn)) child_main(struct restore_args *a)
{
	const struct ckimg_process_fixed *p = &a->img->proc.f;
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (p->sid == p->pid && !a->new_pid && !a->shell_job)
		setsid();       /* a shell job stays in our session: that is where our terminal is */
	else if (p->pgid == p->pid && !a->new_pid)
		setpgid(0, 0);
	restore_child_setup(a);
	if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
		child_fail(a, "PTRACE_TRACEME: %s", strerror(errno));
	syscall(SYS_kill, syscall(SYS_getpid), SIGSTOP);
	/* The parent rebuilds us from here; reaching this line means it let us go. */
	child_fail(a, "resumed before the restore finished");
}

/* Lowest [addr, addr+len) at or above `from` that meets none of the given ranges. */
static uint64_t find_gap(uint64_t from, uint64_t len, uint64_t (*r)[2], size_t n)
{
	uint64_t addr = from;
	int moved = 1;

	while (moved) {
		moved = 0;
		for (size_t i = 0; i < n; i++)
			if (addr < r[i][1] && addr + len > r[i][0]) {
				addr = (r[i][1] + 0xfff) & ~0xfffull;
				moved = 1;
			}
	}
	return addr;
}

/* Recorded areas plus what this process (and so the child at birth) has mapped. */
static size_t busy_ranges(struct restore_args *a, uint64_t (**out)[2])
{
	size_t n = 0, cap = a->img->nareas + 256;
	uint64_t (*r)[2] = malloc(cap * sizeof(*r));
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];

	if (!r)
		return 0;
	for (size_t i = 0; i < a->img->nareas; i++) {
		r[n][0] = a->img->areas[i].f.start;
		r[n][1] = a->img->areas[i].f.end;
		n++;
	}
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		if (sscanf(line, "%llx-%llx", &s, &e) != 2)
			continue;
		if (n == cap) {
			cap *= 2;
			void *nr = realloc(r, cap * sizeof(*r));
			if (!nr)
				break;
			r = nr;
		}
		/* keep a guard page either side */
		r[n][0] = s > 0x1000 ? s - 0x1000 : 0;
		r[n][1] = e + 0x1000;
		n++;
	}
	if (f)
		fclose(f);
	*out = r;
	return n;
}

/* Before any fork: where the trampoline goes, the fd numbers the child uses for itself, the
 * fd limit, the shared page for the child's error message. */
int restore_fork_prepare(struct restore_args *a)
{
	struct img *img = a->img;
	uint64_t (*busy)[2] = NULL;
	size_t nbusy;
	int max_fd = 2;
	struct rlimit rl;

	nbusy = busy_ranges(a, &busy);
	a->tramp = find_gap(0x100000, RST_TRAMP_SIZE, busy, nbusy);
	{
		/* room to park vdso/vvar while they move: 64 pages, clear of everything */
		uint64_t (*b2)[2] = realloc(busy, (nbusy + 1) * sizeof(*busy));
		if (b2) {
			busy = b2;
			busy[nbusy][0] = a->tramp;
			busy[nbusy][1] = a->tramp + RST_TRAMP_SIZE + 0x1000;
			a->park = find_gap(0x10000000, 64 * 4096, busy, nbusy + 1);
		}
	}
	free(busy);

	for (size_t i = 0; i < img->nfds; i++)
		if ((int)img->fds[i].f.fd > max_fd)
			max_fd = (int)img->fds[i].f.fd;
	a->hi_fd = max_fd + 64;
	a->img_fd_child = a->hi_fd;
	a->exe_fd_child = img->proc.exe.s[0] == '/' ? a->hi_fd + 1 : -1;
	for (size_t i = 0; i < img->nfiles; i++)
		if (a->file_fd_child[i] >= 0)
			a->file_fd_child[i] = a->hi_fd + 2 + (int)i;
	a->content_fd_base = a->hi_fd + 2 + (int)img->nfiles;   /* below the scratch numbers (fds.c) */
	a->contents_made = 1;   /* from the fork on, the child may have created --deleted-dir files */
	{
		char gone[4096];
		if (cwd_is_deleted(img->proc.cwd.s, gone, sizeof(gone)))
			rst_warn("PROCESS record: cwd %s had been removed; the process gets an empty, removed "
				 "directory as its cwd again", gone);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rlim_t need = (rlim_t)(a->hi_fd + 4 + (int)img->nfiles + (int)img->ncontents + 16) +
			      restore_fds_scratch_need(img);
		if (rl.rlim_cur < need) {
			rl.rlim_cur = need;
			if (rl.rlim_max < need)
				rl.rlim_max = need;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}

	a->child_err = mmap(NULL, CHILD_ERR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (a->child_err == MAP_FAILED)
		return rst_err(a, -errno, "mmap: %s", strerror(errno));
	a->child_err[0] = 0;
	return 0;
}

/* The process is stopped under our ptrace: its threads table, the main thread's registers. */
int restore_fork_adopt(struct restore_args *a)
{
	struct img *img = a->img;

	a->threads = calloc(img->nthreads, sizeof(*a->threads));
	if (!a->threads)
		return -ENOMEM;
	a->threads[0].tid = a->pid;
	for (size_t i = 0; i < img->nthreads; i++)
		if (img->threads[i].f.tid == img->proc.f.pid)
			a->threads[0].img_idx = (int)i;
	a->nthreads = 1;
	return rst_thread_attach_regs(&a->threads[0]);
}

/* Why clone3 finds pid taken, for the error: a process that runs, a zombie nobody has reaped,
 * or — a PID stays in use while it names a process group or session — a process (often a
 * zombie) still in the group or session it names. */
void rst_pid_holder(pid_t pid, char *out, size_t n)
{
	struct pt_proc_stat st;

	if (pt_proc_stat(pid, &st)) {
		if (st.state == 'Z')
			snprintf(out, n, "process %d (%s) is a zombie its parent %d has not reaped", pid, st.comm, st.ppid);
		else
			snprintf(out, n, "process %d (%s) runs", pid, st.comm);
		return;
	}
	snprintf(out, n, "in use by a thread or a process group or session");
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int other = atoi(e->d_name);
		if (other <= 0 || !pt_proc_stat(other, &st) || (st.pgrp != pid && st.sid != pid))
			continue;
		snprintf(out, n, "it is still the %s id of process %d (%s%s%d)",
			 st.pgrp == pid ? "process group" : "session", other, st.comm,
			 st.state == 'Z' ? ", a zombie not yet reaped by its parent " : ", child of ", st.ppid);
		break;
	}
	if (d)
		closedir(d);
}

int restore_fork(struct restore_args *a)
{
	struct img *img = a->img;
	struct clone_args ca;
	int st, err;
	pid_t pid, want = (pid_t)img->proc.f.pid;

	if ((err = restore_fork_prepare(a)))
		return err;
	fflush(NULL);
	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	if (!a->new_pid) {
		ca.set_tid = (uint64_t)(uintptr_t)&want;
		ca.set_tid_size = 1;
	}
	pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0) {
		if (errno == EEXIST) {
			char who[160];
			rst_pid_holder(want, who, sizeof(who));
			return rst_err(a, -EEXIST, "PROCESS record: PID %d is taken: %s; wait for it to go, "
				       "or use --new-pid", want, who);
		}
		return rst_err(a, -errno, "PROCESS record: clone3 with PID %d: %s", want, strerror(errno));
	}
	if (pid == 0)
		child_main(a);
	a->pid = pid;

	while (waitpid(pid, &st, __WALL) < 0)
		if (errno != EINTR)
			return rst_err(a, -errno, "waitpid: %s", strerror(errno));
	if (!WIFSTOPPED(st)) {
		a->pid = 0;     /* already reaped */
		if (a->child_err[0])
			return rst_err(a, -EIO, "%s", a->child_err);
		return rst_err(a, -EIO, "the restored child died during setup (status 0x%x)", st);
	}
	/* SUSPEND_SECCOMP: seccomp state is installed early (state.c) and must not filter the
	 * remote calls that follow; threads cloned later inherit the options. */
	a->seccomp_suspended = ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE |
				      PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP) == 0;
	if (!a->seccomp_suspended && ptrace(PTRACE_SETOPTIONS, pid, 0,
		   PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE | PTRACE_O_TRACESYSGOOD) < 0)
		return rst_err(a, -errno, "PTRACE_SETOPTIONS: %s", strerror(errno));
	return restore_fork_adopt(a);
}
