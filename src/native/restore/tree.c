/*
 * Restore of a process tree (format 1.2, FORMAT.md "Process trees").
 *
 * Every process is rebuilt by the same steps as a single process (fork.c, mm.c, task.c …); what
 * this file adds is who creates whom. Before any fork, ckimg-restore opens each process's
 * records, checks them, and makes the objects that several processes share but no one of them
 * can make for the others (a pipe between siblings: `a | b`). Then it clones the root with its
 * PID; each new process, still running our code,
 *   1. joins its session / process group (setsid, setpgid; a member waits until its leader's
 *      group exists). A session or group whose leader has exited (every daemon: fork, setsid,
 *      fork; a shell job whose leader is gone) is led again by a placeholder, as CRIU does: a
 *      helper process cloned with the leader's PID calls setsid (and clones the session's
 *      members that were reparented to their parent) or setpgid(0, 0), stays until every
 *      process has joined, then exits and is reaped by whoever cloned it; members it cloned
 *      are reparented to their recorded parent, a child subreaper meanwhile,
 *   2. keeps a copy of each open file description it shares with its parent (inherited, as
 *      fork gave it: one offset, one listening socket for a pre-fork server's workers),
 *   3. sets up its own fds, cwd, signal dispositions … (restore_child_setup),
 *   4. clones its children with their PIDs (clone3 set_tid), each doing the same, and its
 *      zombies (a child that exits at once with the recorded status and is not waited for),
 *   5. says it is ready (one int on a pipe) and waits, all signals blocked.
 * ckimg-restore then seizes every process, rebuilds memory, threads and state from outside
 * with ptrace, and lets them all run in one loop. On any failure every process is killed and
 * reaped (ckimg-restore is a child subreaper meanwhile) and the error names the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crc32.h"
#include "fds.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PIPE_TAG 0x70697065u    /* 'pipe', as pipes.c */
#define PTY_TAG 0x70747970u     /* 'ptyp', as tty.c */
#define UNIX_TAG 0x756e6978u    /* 'unix', as sk-unix.c */
#define READY_TIMEOUT_MS 120000

static struct {
	struct restore_args *root;
	const struct ckimg_tree_entry *e;   /* root->img->tree */
	uint32_t n;
	struct img *imgs;                   /* per entry (root: root->img) */
	struct restore_args **args;         /* per entry, NULL for zombies */
	int fd_base, ready_wr, ready_rd;
	struct rst_obj *objs;
	size_t nobjs;
	struct tree_shm {           /* one shared-memory object (AREA kind SHMEM, SHARED) */
		uint32_t dev_major, dev_minor;
		uint64_t inode, size;
		int fd;
	} *shm;
	size_t nshm;
	int *content_fds;           /* files made once for several processes (make_shared_contents) */
	size_t ncontent_fds;
	int new_pid;                /* --new-pid: every process gets a fresh PID */
	volatile pid_t *live;       /* per entry, the PID it runs as (a page every process shares) */
	struct tree_helper {        /* a placeholder leader of a session or group whose leader is gone */
		uint32_t id;            /* the recorded sid / pgid it stands for */
		int session;            /* setsid (a session and its group), else setpgid(0, 0) */
		int32_t creator;        /* the entry that clones it; -1: ckimg-restore (for the root) */
	} *helpers;
	uint32_t nhelpers;
	int32_t *born_of;           /* per entry: the session helper that clones it, or -1 */
	int32_t *join_helper;       /* per entry: the helper whose group it joins, or -1 */
	/* shared by every process (one mapping): */
	atomic_int *joined;         /* entries past step 1 */
	atomic_int *made;           /* per entry: its own session / group exists (step 1 done) */
	atomic_int *ready;          /* per entry: it has made its children (step 5) */
	atomic_int *hstate;         /* per helper: 0 not yet, 1 leads its group, -1 could not be made */
	volatile pid_t *hpid;       /* per helper: its PID once cloned */
	struct tree_ctty {          /* per entry: a session leader whose terminal is a tree pty */
		int fd;                 /* the slave (a tree fd), -1 if none */
		uint32_t index, fg;     /* pty number, recorded foreground group (0: unknown) */
	} *ctty;
} T;

/* The PID process i runs as: its recorded one, or with --new-pid what the kernel gave it
 * (0 while not known). */
static pid_t live_pid(uint32_t i)
{
	return T.new_pid ? T.live[i] : (pid_t)T.e[i].pid;
}

static pid_t live_pid_of(uint32_t pid)
{
	for (uint32_t i = 0; i < T.n; i++)
		if (T.e[i].pid == pid)
			return live_pid(i);
	return 0;
}

static int is_zombie(uint32_t i)
{
	return (T.e[i].flags & CKIMG_TREE_ZOMBIE) != 0;
}

static int load_shared_runs(struct restore_args *a, uint32_t i);

static long clone_with_pid_flags(pid_t want, uint64_t flags)
{
	struct clone_args ca;

	memset(&ca, 0, sizeof(ca));
	ca.flags = flags;
	ca.exit_signal = SIGCHLD;
	if (!T.new_pid) {
		ca.set_tid = (uint64_t)(uintptr_t)&want;
		ca.set_tid_size = 1;
	}
	return syscall(SYS_clone3, &ca, sizeof(ca));
}

static long clone_with_pid(pid_t want)
{
	return clone_with_pid_flags(want, 0);
}

/* A zombie: exit at once as recorded; the parent (our code) does not wait for it. */
static void __attribute__((noreturn)) become_zombie(uint32_t status)
{
	if (WIFSIGNALED(status)) {
		struct rlimit none = { 0, 0 };
		sigset_t s;
		setrlimit(RLIMIT_CORE, &none);
		signal(WTERMSIG(status), SIG_DFL);
		sigemptyset(&s);
		sigaddset(&s, WTERMSIG(status));
		sigprocmask(SIG_UNBLOCK, &s, NULL);
		raise(WTERMSIG(status));
	}
	_exit(WEXITSTATUS(status));
}

static void flag_set(atomic_int *p, int v)
{
	atomic_store(p, v);
	syscall(SYS_futex, p, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void joined_one(void)
{
	atomic_fetch_add(T.joined, 1);
	syscall(SYS_futex, T.joined, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Wait until *p >= want (at most READY_TIMEOUT_MS); the value seen. */
static int wait_at_least(atomic_int *p, int want)
{
	uint64_t deadline = rst_now_ns() + (uint64_t)READY_TIMEOUT_MS * 1000000ull;
	int v;

	while ((v = atomic_load(p)) < want && rst_now_ns() < deadline) {
		struct timespec ts = { 0, 50 * 1000000L };
		syscall(SYS_futex, p, FUTEX_WAIT, v, &ts, NULL, 0);
	}
	return v;
}

/* Wait until *p is not 0 (a made flag or a helper state); the value seen. */
static int wait_set(atomic_int *p)
{
	uint64_t deadline = rst_now_ns() + (uint64_t)READY_TIMEOUT_MS * 1000000ull;
	int v;

	while ((v = atomic_load(p)) == 0 && rst_now_ns() < deadline) {
		struct timespec ts = { 0, 50 * 1000000L };
		syscall(SYS_futex, p, FUTEX_WAIT, 0, &ts, NULL, 0);
	}
	return v;
}

static int entry_of(uint32_t pid)
{
	for (uint32_t k = 0; k < T.n; k++)
		if (T.e[k].pid == pid)
			return (int)k;
	return -1;
}

static int parent_of(uint32_t i)
{
	return i == 0 ? -1 : entry_of(T.e[i].ppid);
}

static int is_descendant(uint32_t k, uint32_t i)
{
	for (int p = parent_of(k); p >= 0; p = parent_of((uint32_t)p))
		if ((uint32_t)p == i)
			return 1;
	return 0;
}

static void __attribute__((noreturn)) process_main(uint32_t i, int32_t via);
static void pty_take_ctty(uint32_t i);
static void pty_foreground(uint32_t i);

/* A placeholder leader (see the top of the file): lead, clone the members it stands for,
 * stay until every process has joined its group, exit. */
static void __attribute__((noreturn)) helper_main(uint32_t h)
{
	const struct tree_helper *hp = &T.helpers[h];
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	T.hpid[h] = (pid_t)syscall(SYS_getpid);
	flag_set(&T.hstate[h], (hp->session ? setsid() : setpgid(0, 0)) < 0 ? -1 : 1);
	for (uint32_t c = 0; c < T.n; c++) {
		if (T.born_of[c] != (int32_t)h)
			continue;
		fflush(NULL);
		long pid = clone_with_pid((pid_t)T.e[c].pid);
		if (pid < 0) {
			char what[96];
			snprintf(what, sizeof(what), "creating process %u with its PID (clone3 set_tid) in session %u",
				 T.e[c].pid, hp->id);
			restore_child_fail(T.args[c], what, errno);
		}
		if (pid == 0)
			process_main(c, (int32_t)h);
		if (T.new_pid)
			T.live[c] = (pid_t)pid;
	}
	wait_at_least(T.joined, (int)T.n);
	_exit(0);
}

/* Clone helper h (from its creator); its PID, or -1 (errno set, the helper marked failed:
 * its members are created by the creator and stay in the creator's session / group). */
static long spawn_helper(uint32_t h)
{
	fflush(NULL);
	long pid = clone_with_pid((pid_t)T.helpers[h].id);
	if (pid == 0)
		helper_main(h);
	if (pid < 0) {
		int e = errno;
		flag_set(&T.hstate[h], -1);
		errno = e;
		return -1;
	}
	T.hpid[h] = (pid_t)pid;
	return pid;
}

static int32_t add_helper(uint32_t id, int session, int32_t creator)
{
	for (uint32_t h = 0; h < T.nhelpers; h++)
		if (T.helpers[h].id == id && T.helpers[h].session == session && T.helpers[h].creator == creator)
			return (int32_t)h;
	struct tree_helper *n = realloc(T.helpers, (T.nhelpers + 1) * sizeof(*n));
	if (!n)
		return -1;
	T.helpers = n;
	T.helpers[T.nhelpers] = (struct tree_helper){ id, session, creator };
	return (int32_t)T.nhelpers++;
}

/*
 * Which sessions and groups need a placeholder leader (FORMAT.md "Process trees"), as CRIU
 * plans them: a process whose session is neither its own, nor its parent's (for the root: ours),
 * nor led by a process of the tree, is cloned by a session helper with that sid (one per parent
 * and session; the parent is a child subreaper meanwhile, so that the process comes back to it);
 * a process whose group is neither its own, nor the one it is born into, nor led by a process
 * of the tree or a session helper, joins a group helper it (the first such member) clones.
 * A helper whose PID is taken (the old session still has members, or another process has the
 * PID) is not made and its members stay where they are born. Zombies get no helpers. With
 * --new-pid the root stays in our session and group, as a single process does, and helpers
 * get fresh PIDs: sessions and groups keep their shape, with new ids.
 */
static int plan_helpers(void)
{
	uint32_t our_sid = (uint32_t)getsid(0), our_pgrp = (uint32_t)getpgrp();

	T.born_of = malloc(T.n * sizeof(*T.born_of));
	T.join_helper = malloc(T.n * sizeof(*T.join_helper));
	if (!T.born_of || !T.join_helper)
		return -ENOMEM;
	for (uint32_t i = 0; i < T.n; i++)
		T.born_of[i] = T.join_helper[i] = -1;
	for (uint32_t i = 0; i < T.n; i++) {
		const struct ckimg_tree_entry *e = &T.e[i];
		int p = parent_of(i);
		int32_t h;
		if (is_zombie(i) || (i == 0 && T.new_pid) || e->sid == e->pid || (p < 0 && i > 0))
			continue;
		uint32_t sid = i == 0 ? our_sid : T.e[p].sid, pgid = i == 0 ? our_pgrp : T.e[p].pgid;
		if (e->sid != sid && entry_of(e->sid) < 0 && !(i == 0 && T.root->shell_job)) {
			if ((h = add_helper(e->sid, 1, p)) < 0)
				return -ENOMEM;
			T.born_of[i] = h;
			pgid = e->sid;
		}
		if (e->pgid == e->pid || e->pgid == pgid || entry_of(e->pgid) >= 0)
			continue;
		h = -1;
		for (uint32_t k = 0; k < T.nhelpers && h < 0; k++)
			if (T.helpers[k].id == e->pgid && (!T.helpers[k].session || T.helpers[k].id == e->sid))
				h = (int32_t)k;
		if (h < 0 && (h = add_helper(e->pgid, 0, (int32_t)i)) < 0)
			return -ENOMEM;
		T.join_helper[i] = h;
	}
	size_t len = (1 + 2 * (size_t)T.n + 2 * (size_t)T.nhelpers) * sizeof(int);
	int *sh = mmap(NULL, (len + 4095) & ~(size_t)4095, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return rst_err(T.root, -errno, "mmap: %s", strerror(errno));
	T.joined = (atomic_int *)sh;
	T.made = (atomic_int *)sh + 1;
	T.ready = (atomic_int *)sh + 1 + T.n;
	T.hstate = (atomic_int *)sh + 1 + 2 * T.n;
	T.hpid = (volatile pid_t *)(sh + 1 + 2 * T.n + T.nhelpers);
	for (uint32_t h = 0; h < T.nhelpers; h++) {
		char what[128];
		snprintf(what, sizeof(what), "tree: placeholder leader %u of a %s, cloned by %u", T.helpers[h].id,
			 T.helpers[h].session ? "session" : "group",
			 T.helpers[h].creator < 0 ? 0 : T.e[T.helpers[h].creator].pid);
		rst_trace(T.root, what);
	}
	return 0;
}

/* Join the group led by tree entry k (made by now, or soon: it is not our descendant). */
static void join_leader(uint32_t k)
{
	if (wait_set(&T.made[k]) && live_pid(k) > 0 && live_pid(k) != getpgrp())
		setpgid(0, live_pid(k));
}

/* Step 1: session and group. Returns a leader to join after our children are made (a group
 * led by a descendant), else -1. */
static int join_session(uint32_t i)
{
	const struct ckimg_tree_entry *e = &T.e[i];
	struct restore_args *a = T.args[i];
	int later = -1;

	if (i == 0 && T.new_pid) {
		/* as a single process with --new-pid: in our session and group */
	} else if (e->sid == e->pid && !(i == 0 && a && a->shell_job)) {
		setsid();       /* a shell job stays in our session: our terminal is there */
	} else if (e->pgid == e->pid) {
		setpgid(0, 0);
	} else if (T.join_helper[i] >= 0) {
		uint32_t h = (uint32_t)T.join_helper[i];
		if (T.helpers[h].creator == (int32_t)i && !T.hpid[h] && atomic_load(&T.hstate[h]) == 0)
			spawn_helper(h);
		if (wait_set(&T.hstate[h]) == 1 && T.hpid[h] != getpgrp())
			setpgid(0, T.hpid[h]);
	} else {
		int k = entry_of(e->pgid);
		if (k >= 0 && (k > 0 || !T.new_pid)) {
			if (is_descendant((uint32_t)k, i))
				later = k;
			else if (!is_zombie(i) || (uint32_t)k < i)
				join_leader((uint32_t)k);
		}
		/* a group or session outside the tree: the one inherited (ckimg-restore's) */
	}
	flag_set(&T.made[i], 1);
	if (later < 0)
		joined_one();
	return later;
}

/* Step 2: copies of the descriptions shared with the parent, above every number in use. */
static void keep_inherited(struct restore_args *a)
{
	int above = T.fd_base + 2 + 2 * (int)T.nobjs + 8;

	for (size_t k = 0; k < a->ninh; k++) {
		int fd = fcntl(a->inh_fd[k], F_DUPFD_CLOEXEC, above);
		if (fd < 0)
			restore_child_fail(a, "keeping a description shared with the parent", errno);
		a->inh_fd[k] = fd;
	}
}

static int is_aux_fd(const struct restore_args *a, int fd)
{
	if (fd == a->img_fd_child || fd == a->exe_fd_child)
		return 1;
	for (size_t i = 0; i < a->img->nfiles; i++)
		if (a->file_fd_child[i] == fd)
			return 1;
	return fd >= a->content_fd_base && fd < a->content_fd_base + (int)a->img->ncontents;
}

static int by_fd(const void *x, const void *y)
{
	return ((const struct tree_shm *)x)->fd - ((const struct tree_shm *)y)->fd;
}

/* The tree's fds but the shared-memory objects: mm.c maps those (then closes every aux fd). */
static void close_tree_fds(void)
{
	unsigned lo = (unsigned)T.fd_base;

	for (size_t k = 0; k < T.nshm; k++) {       /* T.shm is sorted by fd */
		if ((unsigned)T.shm[k].fd > lo)
			syscall(SYS_close_range, lo, (unsigned)T.shm[k].fd - 1, 0);
		lo = (unsigned)T.shm[k].fd + 1;
	}
	syscall(SYS_close_range, lo, ~0u, 0);
}

/* Process i, cloned by its parent or (via >= 0) by session helper `via`. */
static void __attribute__((noreturn)) process_main(uint32_t i, int32_t via)
{
	struct restore_args *a = T.args[i];
	sigset_t all;
	int subreaper = 0;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (via < 0)            /* (a helper's child would get it when the helper exits) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (T.new_pid)
		T.live[i] = (pid_t)syscall(SYS_getpid);
	if (i > 0) {
		/* the parent's trampoline came with fork; ours may want the same address */
		for (uint32_t p = 0; p < T.n; p++)
			if (T.e[p].pid == T.e[i].ppid && T.args[p])
				munmap((void *)T.args[p]->tramp, RST_TRAMP_SIZE);
	}
	int later = join_session(i);
	if (T.ctty && T.ctty[i].fd >= 0)
		pty_take_ctty(i);
	if (a->fds_shared) {    /* the parent's table, set up: nothing inherited to keep or close */
		a->ninh = 0;
		restore_child_setup(a);
	} else {
		keep_inherited(a);
		restore_child_setup(a);
		for (size_t k = 0; k < a->ninh; k++)
			close(a->inh_fd[k]);
		/* what the parent left in the numbers above ours that are not our aux fds */
		for (int fd = a->hi_fd; fd < T.fd_base; fd++)
			if (!is_aux_fd(a, fd))
				close(fd);
	}
	/* Step 4: children, then zombies, in TREE order */
	for (uint32_t c = 1; c < T.n; c++) {
		if (T.e[c].ppid != T.e[i].pid)
			continue;
		int32_t h = T.born_of[c];
		if (h >= 0 && atomic_load(&T.hstate[h]) >= 0) {
			/* a session whose leader is gone: its helper clones c, then exits; c comes back
			 * to us, a child subreaper until then */
			if (!T.hpid[h]) {
				if (!subreaper)
					subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
				spawn_helper((uint32_t)h);
			}
			if (T.hpid[h] > 0)
				continue;
		}
		fflush(NULL);
		/* one cwd, root and umask with us again (FORMAT.md TREE flags; ours are set by now) */
		uint64_t share = !is_zombie(c) && (T.e[c].flags & CKIMG_TREE_SHARES_FS) ? CLONE_FS : 0;
		if (T.args[c] && T.args[c]->fds_shared)
			share |= CLONE_FILES;   /* one fd table: ours, set up by now (plan_files) */
		long pid = clone_with_pid_flags((pid_t)T.e[c].pid, share);
		if (pid < 0) {
			char what[96];
			snprintf(what, sizeof(what), "creating child %u with its PID (clone3 set_tid)", T.e[c].pid);
			restore_child_fail(a, what, errno == EEXIST ? EEXIST : errno);
		}
		if (pid == 0) {
			if (is_zombie(c)) {
				if (T.new_pid)
					T.live[c] = (pid_t)syscall(SYS_getpid);
				join_session(c);
				become_zombie(T.e[c].exit_status);
			}
			process_main(c, -1);
		}
		if (T.new_pid)
			T.live[c] = (pid_t)pid;
		if (is_zombie(c)) {
			siginfo_t si;
			while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
				;
		}
	}
	if (later >= 0) {       /* a group one of our descendants leads */
		join_leader((uint32_t)later);
		joined_one();
	}
	/* the helpers we cloned leave once every process has joined its group */
	for (uint32_t h = 0; h < T.nhelpers; h++) {
		int st;
		if (T.helpers[h].creator == (int32_t)i && T.hpid[h] > 0)
			while (waitpid(T.hpid[h], &st, __WALL) < 0 && errno == EINTR)
				;
	}
	if (subreaper)
		prctl(PR_SET_CHILD_SUBREAPER, 0);       /* the recorded value comes with the state */
	if (via >= 0) {         /* the helper that cloned us is gone: our parent is the recorded one */
		uint64_t deadline = rst_now_ns() + (uint64_t)READY_TIMEOUT_MS * 1000000ull;
		while (getppid() == T.hpid[via] && rst_now_ns() < deadline) {
			struct timespec ts = { 0, 1000000L };
			nanosleep(&ts, NULL);
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	}
	{       /* the SIGCHLD of our zombies and helpers is not one the process had pending */
		sigset_t chld;
		struct timespec zero = { 0, 0 };
		sigemptyset(&chld);
		sigaddset(&chld, SIGCHLD);
		while (sigtimedwait(&chld, NULL, &zero) > 0)
			;
	}
	if (T.ctty && T.ctty[i].fd >= 0)
		pty_foreground(i);
	/* Step 5 */
	if (write(T.ready_wr, &i, sizeof(i)) != sizeof(i))
		restore_child_fail(a, "telling ckimg-restore it is ready", errno);
	flag_set(&T.ready[i], 1);
	/* the tree's fds are in our table; a child sharing it needs them until it is ready, and the
	 * first process of a table closes them for all */
	for (uint32_t c = 1; c < T.n; c++)
		if (T.e[c].ppid == T.e[i].pid && T.args[c] && T.args[c]->fds_shared)
			wait_set(&T.ready[c]);
	if (!a->fds_shared)
		close_tree_fds();
	for (;;)
		syscall(SYS_pause);
}

/* Per process: its records, checked, and a restore_args of its own. */
static int open_processes(void)
{
	struct restore_args *r = T.root;

	T.imgs = calloc(T.n, sizeof(*T.imgs));
	T.args = calloc(T.n, sizeof(*T.args));
	if (!T.imgs || !T.args)
		return -ENOMEM;
	for (uint32_t i = 0; i < T.n; i++) {
		struct restore_args *a;
		int err;
		if (is_zombie(i))
			continue;
		if (T.e[i].pid == r->img->tree_root) {
			a = r;
		} else {
			a = calloc(1, sizeof(*a));
			if (!a)
				return -ENOMEM;
			err = img_open_process(&T.imgs[i], r->image_path, T.e[i].pid);
			if (!err)
				err = img_chain_open(&T.imgs[i]);   /* incremental: its parents' pages */
			if (err)
				return rst_err(r, err, "process %u: %s", T.e[i].pid, T.imgs[i].err);
			a->img = &T.imgs[i];
			a->image_path = r->image_path;
			a->detach = r->detach;
			a->hand_over = r->hand_over;
			a->force = r->force;
			a->lazy = r->lazy;
			a->verbose = r->verbose;
			a->no_verify = r->no_verify;
			a->thp = r->thp;
			a->strict = r->strict;
			a->new_pid = r->new_pid;
			a->deleted_dir = r->deleted_dir;
			a->t0 = r->t0;
			a->tty_fd = -1;
		}
		a->tree_entry = &T.e[i];
		a->hold = 1;
		T.args[i] = a;
		if ((err = restore_check_files(a)) || (err = restore_fds_check(a)) || (err = restore_state_check(a)) ||
		    (err = restore_check_fd_files(a)) || (a == r && (err = restore_tty_prepare(a))) ||
		    (err = restore_fork_prepare(a)) || (err = load_shared_runs(a, i)))
			return err;
	}
	return 0;
}

static int aux_end(const struct restore_args *a)
{
	return a->hi_fd + 2 + (int)a->img->nfiles + (int)a->img->ncontents;
}

/*
 * fd tables shared with the parent (TREE flag SHARES_FILES): the parent clones the process with
 * CLONE_FILES once its own fds are in place, and the process sets none up (they are the
 * parent's). Every sharer keeps its aux fds (image, mapped files, contents) on numbers of its
 * own, above those of the sharers before it (and above the first one's scratch numbers), and
 * mm.c closes only those; the last sharer rebuilt (TREE order) closes everything above its own
 * hi_fd: the tree's fds the others left open for it. A process a session helper clones cannot
 * share its parent's table: it gets a copy (restore_tree warns).
 */
static int plan_files(void)
{
	int *owner = malloc(T.n * sizeof(*owner)), *next = calloc(T.n, sizeof(*next));
	int32_t *last = malloc(T.n * sizeof(*last));

	if (!owner || !next || !last) {
		free(owner);
		free(next);
		free(last);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < T.n; i++) {
		struct restore_args *a = T.args[i];
		int p = parent_of(i);
		owner[i] = (int)i;
		last[i] = -1;
		if (!a)
			continue;
		if (p >= 0 && T.args[p] && (T.e[i].flags & CKIMG_TREE_SHARES_FILES) && T.born_of[i] < 0) {
			int o = owner[p], hi = next[o] > a->hi_fd ? next[o] : a->hi_fd, d = hi - a->hi_fd;
			owner[i] = o;
			a->fds_shared = 1;
			a->hi_fd = hi;
			a->img_fd_child += d;
			if (a->exe_fd_child >= 0)
				a->exe_fd_child += d;
			for (size_t k = 0; k < a->img->nfiles; k++)
				if (a->file_fd_child[k] >= 0)
					a->file_fd_child[k] += d;
			a->content_fd_base += d;
			next[o] = aux_end(a) + 4;
			last[o] = (int32_t)i;
		} else {
			next[i] = a->hi_fd + 4 + (int)a->img->nfiles + (int)a->img->ncontents + 16 +
				  (int)restore_fds_scratch_need(a->img) + 16;
		}
	}
	for (uint32_t i = 0; i < T.n; i++)      /* all but the last of a table close only theirs */
		if (T.args[i] && last[owner[i]] >= 0 && last[owner[i]] != (int32_t)i)
			T.args[i]->aux_close_end = aux_end(T.args[i]);
	free(owner);
	free(next);
	free(last);
	return 0;
}

/* Fds from T.fd_base on are the tree's: above every number any process uses for itself. */
static int place_tree_fds(void)
{
	int base = 0;
	size_t total_fds = 0;
	struct rlimit rl;

	for (uint32_t i = 0; i < T.n; i++) {
		struct restore_args *a = T.args[i];
		if (!a)
			continue;
		int need = a->hi_fd + 4 + (int)a->img->nfiles + (int)a->img->ncontents + 16 +
			   (int)restore_fds_scratch_need(a->img) + 16;
		if (need > base)
			base = need;
		total_fds += a->img->nfds;
	}
	T.fd_base = base + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rlim_t want = (rlim_t)T.fd_base + 64 + 4 * total_fds;
		if (rl.rlim_cur < want) {
			rl.rlim_cur = want;
			if (rl.rlim_max < want)
				rl.rlim_max = want;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				return rst_err(T.root, -errno, "raising the open-file limit to %llu: %s",
					       (unsigned long long)want, strerror(errno));
		}
	}
	for (uint32_t i = 0; i < T.n; i++)
		if (T.args[i]) {
			T.args[i]->tree_fd_base = T.fd_base;
			/* each process dups its image fd after its parent has closed what it does not use */
			int fd = fcntl(T.args[i]->img->fd, F_DUPFD_CLOEXEC, T.fd_base);
			if (fd < 0)
				return rst_err(T.root, -errno, "moving the image fd above %d: %s", T.fd_base, strerror(errno));
			close(T.args[i]->img->fd);
			T.args[i]->img->fd = fd;
		}
	return 0;
}

static int up_high(int fd)
{
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, T.fd_base);
	close(fd);
	return moved;
}

/* The next free slot of the tree's objects (T.objs grows by 16), NULL without memory. */
static struct rst_obj *tree_obj_slot(void)
{
	if (T.nobjs % 16 == 0) {
		struct rst_obj *n = realloc(T.objs, (T.nobjs + 16) * sizeof(*n));
		if (!n)
			return NULL;
		T.objs = n;
	}
	return &T.objs[T.nobjs];
}

/* The slot's two fds, just made, become an object of the tree: moved above T.fd_base, out of
 * the way of every fd number a process restores, and every process told. */
static int tree_obj_add(struct rst_obj *o, uint32_t tag, uint64_t id, const char *what)
{
	o->tag = tag;
	o->id = id;
	o->priv = NULL;
	o->given = 0;
	o->fd[0] = up_high(o->fd[0]);
	o->fd[1] = up_high(o->fd[1]);
	if (o->fd[0] < 0 || o->fd[1] < 0)
		return rst_err(T.root, -EMFILE, "moving a shared %s above fd %d", what, T.fd_base);
	T.nobjs++;
	for (uint32_t i = 0; i < T.n; i++)
		if (T.args[i]) {
			T.args[i]->tree_objs = T.objs;
			T.args[i]->ntree_objs = T.nobjs;
		}
	return 0;
}

static int is_anon_pipe(const struct img_fd *d)
{
	return d->f.kind == CKIMG_FD_FIFO && strncmp(d->path.s, "pipe:[", 6) == 0;
}

/* A pipe between processes is made once, here, with the bytes the first holder recorded. */
static int make_shared_objects(void)
{
	for (uint32_t i = 0; i < T.n; i++) {
		if (!T.args[i])
			continue;
		struct img *img = T.args[i]->img;
		for (size_t k = 0; k < img->nfds; k++) {
			const struct img_fd *d = &img->fds[k];
			int elsewhere = 0, known = 0;
			if (!is_anon_pipe(d))
				continue;
			for (size_t o = 0; o < T.nobjs; o++)
				known |= T.objs[o].tag == PIPE_TAG && T.objs[o].id == d->f.inode;
			for (uint32_t j = 0; !known && j < T.n; j++)
				for (size_t m = 0; j != i && T.args[j] && m < T.args[j]->img->nfds; m++)
					elsewhere |= is_anon_pipe(&T.args[j]->img->fds[m]) &&
						     T.args[j]->img->fds[m].f.inode == d->f.inode;
			if (known || !elsewhere)
				continue;
			struct rst_obj *o = tree_obj_slot();
			if (!o)
				return -ENOMEM;
			const char *step;
			int err = rst_pipe_make(img, d->f.inode, o->fd, &step);
			if (err)
				return rst_err(T.root, err, "process %u: FD record #%u (fd %u, %s): %s: %s", T.e[i].pid,
					       d->seq, d->f.fd, d->path.s, step, strerror(-err));
			if ((err = tree_obj_add(o, PIPE_TAG, d->f.inode, "pipe")))
				return err;
		}
	}
	return 0;
}

/* ---- unix socket pairs between processes (sk-unix.c sets each end up) ----
 * A socketpair whose ends are recorded in different processes (made before a fork, each side
 * closing the other's end: a parent and its helper child) is made once, here; each holder's
 * unix_open takes its end from it (fd[0] the lower inode's) and writes its queue back. */

static int known_obj(uint32_t tag, uint64_t id)
{
	for (size_t o = 0; o < T.nobjs; o++)
		if (T.objs[o].tag == tag && T.objs[o].id == id)
			return 1;
	return 0;
}

/* Does a process other than i hold socket `inode`, recorded as the peer of `peer`? */
static int pair_end_elsewhere(uint32_t i, uint64_t inode, uint64_t peer)
{
	uint64_t back;

	for (uint32_t j = 0; j < T.n; j++)
		if (j != i && T.args[j] && rst_unix_pair_peer(T.args[j]->img, inode, &back) && back == peer)
			return 1;
	return 0;
}

static int make_shared_socketpairs(void)
{
	for (uint32_t i = 0; i < T.n; i++) {
		const struct img *img = T.args[i] ? T.args[i]->img : NULL;
		for (size_t k = 0; img && k < img->nfds; k++) {
			const struct img_fd *d = &img->fds[k];
			uint64_t peer;
			if (d->f.kind != CKIMG_FD_SOCKET || !rst_unix_pair_peer(img, d->f.inode, &peer))
				continue;
			uint64_t lo = d->f.inode < peer ? d->f.inode : peer;
			if (known_obj(UNIX_TAG, lo) || !pair_end_elsewhere(i, peer, d->f.inode))
				continue;
			struct rst_obj *o = tree_obj_slot();
			if (!o)
				return -ENOMEM;
			const char *step;
			int fd[2], err = rst_unix_pair_make(img, d->f.inode, fd, &step);
			if (err)
				return rst_err(T.root, err, "process %u: FD record #%u (fd %u, unix socket %llu, peer in another "
					       "process): %s: %s", T.e[i].pid, d->seq, d->f.fd, (unsigned long long)d->f.inode,
					       step, strerror(-err));
			o->fd[0] = fd[d->f.inode == lo ? 0 : 1];
			o->fd[1] = fd[d->f.inode == lo ? 1 : 0];
			if ((err = tree_obj_add(o, UNIX_TAG, lo, "socket pair")))
				return err;
		}
	}
	return 0;
}

/* ---- pty pairs between processes (tty.c makes the pair) ----
 * A pty whose master one process of the tree holds and whose slave another (a tmux or screen
 * server and its panes' shells, `script`, expect, sshd) is made once, here: both ends are tree
 * fds every process inherits, and each holder's fds take their end (tty.c tree_pty). The
 * leader of a session whose controlling terminal was that slave takes it again right after its
 * setsid (pty_take_ctty), and once the groups exist, the recorded foreground group gets it
 * (pty_foreground; ckimg-restore checks it in pty_check_foreground). */

static const struct img_tty *pty_end(uint32_t index, uint32_t flag, uint32_t skip, uint32_t *who)
{
	for (uint32_t j = 0; j < T.n; j++) {
		if (!T.args[j] || j == skip)
			continue;
		const struct img *img = T.args[j]->img;
		for (size_t k = 0; k < img->nttys; k++)
			if (img->ttys[k].f.index == index && (img->ttys[k].f.flags & flag)) {
				if (who)
					*who = j;
				return &img->ttys[k];
			}
	}
	return NULL;
}

static int known_pty(uint32_t index)
{
	for (size_t o = 0; o < T.nobjs; o++)
		if (T.objs[o].tag == PTY_TAG && T.objs[o].id == index)
			return 1;
	return 0;
}

/* The session that had pty `index` (slot o of T.objs) as controlling terminal: its leader. */
static void plan_ctty(uint32_t index, int fd)
{
	for (uint32_t j = 0; j < T.n; j++) {
		const struct img *img = T.args[j] ? T.args[j]->img : NULL;
		for (size_t k = 0; img && k < img->nttys; k++) {
			const struct img_tty *t = &img->ttys[k];
			if (t->f.index != index || !(t->f.flags & CKIMG_TTY_CONTROLLING) || !(t->f.flags & CKIMG_TTY_PTY_SLAVE))
				continue;
			int l = entry_of(t->f.sid);
			if (l < 0 || !T.args[l] || T.e[l].sid != T.e[l].pid || (l == 0 && (T.root->shell_job || T.new_pid))) {
				rst_warn("pty %u was the controlling terminal of session %u, whose leader is %s; the "
					 "processes get its fds but no controlling terminal", index, t->f.sid,
					 l < 0 ? "not in the tree" : l == 0 ? "the root, kept in our session" :
					 "not a process restored here");
				return;
			}
			T.ctty[l].fd = fd;
			T.ctty[l].index = index;
			T.ctty[l].fg = t->f.fg_pgrp;
			return;
		}
	}
}

static int make_shared_ptys(void)
{
	T.ctty = calloc(T.n, sizeof(*T.ctty));
	if (!T.ctty)
		return -ENOMEM;
	for (uint32_t i = 0; i < T.n; i++)
		T.ctty[i].fd = -1;
	for (uint32_t i = 0; i < T.n; i++) {
		const struct img *img = T.args[i] ? T.args[i]->img : NULL;
		for (size_t k = 0; img && k < img->nttys; k++) {
			const struct img_tty *m = &img->ttys[k];
			uint32_t sj = 0;
			if (!(m->f.flags & CKIMG_TTY_PTY_MASTER) || m->f.index == CKIMG_TTY_NONE || known_pty(m->f.index))
				continue;
			/* a slave in another process (or ours, when another process holds an end too) */
			const struct img_tty *sl = pty_end(m->f.index, CKIMG_TTY_PTY_SLAVE, i, &sj);
			if (!sl && (m->f.flags & CKIMG_TTY_PAIRED) &&
			    pty_end(m->f.index, CKIMG_TTY_PTY_MASTER, i, NULL))
				sl = pty_end(m->f.index, CKIMG_TTY_PTY_SLAVE, UINT32_MAX, &sj);
			if (!sl) {
				if (m->f.flags & CKIMG_TTY_PAIRED)
					continue;       /* both ends ours alone: tty.c makes the pair */
				if (!T.args[i]->force)
					return rst_err(T.root, -EXDEV, "process %u: TTY record #%u: fd %u is a pty master (pty %u) "
						       "whose slave no process of the tree held; it cannot be reconnected "
						       "(--force gives it a new pty)", T.e[i].pid, m->seq, m->f.fd, m->f.index);
				rst_warn("process %u: fd %u, a pty master whose slave no process of the tree held, gets a "
					 "new pty", T.e[i].pid, m->f.fd);
				continue;
			}
			struct rst_obj *o = tree_obj_slot();
			if (!o)
				return -ENOMEM;
			const char *step;
			int err = rst_pty_make(m, sl, o->fd, &step);
			if (err)
				return rst_err(T.root, err, "process %u: TTY record #%u (fd %u, pty %u, slave in process %u): "
					       "making the pty pair again: %s: %s", T.e[i].pid, m->seq, m->f.fd, m->f.index,
					       T.e[sj].pid, step, strerror(-err));
			if ((err = tree_obj_add(o, PTY_TAG, m->f.index, "pty")))
				return err;
			plan_ctty(m->f.index, o->fd[1]);
		}
	}
	return 0;
}

/* In session leader i, right after its setsid: its terminal again. */
static void pty_take_ctty(uint32_t i)
{
	if (ioctl(T.ctty[i].fd, TIOCSCTTY, 0) < 0) {
		char what[96];
		snprintf(what, sizeof(what), "making pty %u its controlling terminal again (TIOCSCTTY)", T.ctty[i].index);
		restore_child_fail(T.args[i], what, errno);
	}
}

/* The PID of the process group recorded as `pgid` once it exists, or 0. */
static pid_t pty_group(uint32_t pgid)
{
	int k = entry_of(pgid);
	if (k >= 0)
		return wait_set(&T.made[k]) ? live_pid((uint32_t)k) : 0;
	for (uint32_t h = 0; h < T.nhelpers; h++)
		if (T.helpers[h].id == pgid)
			return wait_set(&T.hstate[h]) == 1 ? T.hpid[h] : 0;
	return 0;
}

/* In session leader i, its children made: the recorded foreground group (SIGTTOU is blocked,
 * so a leader in the background may set it). Checked from outside by pty_check_foreground. */
static void pty_foreground(uint32_t i)
{
	pid_t pg = T.ctty[i].fg ? pty_group(T.ctty[i].fg) : 0;
	if (pg > 0)
		tcsetpgrp(T.ctty[i].fd, pg);
}

static void pty_check_foreground(void)
{
	for (uint32_t i = 0; T.ctty && i < T.n; i++) {
		char path[64], line[512];
		long tpgid = 0;
		FILE *f;
		if (T.ctty[i].fd < 0 || !T.ctty[i].fg)
			continue;
		pid_t want = entry_of(T.ctty[i].fg) >= 0 ? live_pid((uint32_t)entry_of(T.ctty[i].fg)) : (pid_t)T.ctty[i].fg;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)live_pid(i));
		if ((f = fopen(path, "re"))) {
			const char *p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
			if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %ld", &tpgid) != 1)
				tpgid = 0;
			fclose(f);
		}
		if (tpgid != want)
			rst_warn("process %u: the foreground group of its terminal (pty %u) is %ld, not %u as recorded "
				 "(that group could not be made again)", T.e[i].pid, T.ctty[i].index, tpgid, T.ctty[i].fg);
	}
}

static int is_shared_memory(const struct img_area *ar)
{
	return ar->f.kind == CKIMG_KIND_SHMEM && (ar->f.flags & CKIMG_AREA_SHARED) && ar->f.inode;
}

/* A shmem object of `size` bytes like the one MAP_SHARED|MAP_ANONYMOUS makes (it shows as
 * "/dev/zero (deleted)" in maps, so a later capture sees shared anonymous memory again): the
 * file behind such a mapping, opened through /proc/self/map_files (CAP_SYS_ADMIN or
 * CAP_CHECKPOINT_RESTORE); a memfd where that is not allowed. */
static int make_shmem_object(uint64_t size)
{
	char path[96];
	int fd = -1;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (m != MAP_FAILED) {
		snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)(uintptr_t)m,
			 (unsigned long)((uintptr_t)m + size));
		fd = open(path, O_RDWR | O_CLOEXEC);
		munmap(m, size);
	}
	if (fd < 0) {
		fd = (int)syscall(SYS_memfd_create, "ckimg-shmem", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
			close(fd);
			fd = -1;
		}
	}
	return fd;
}

/*
 * Shared memory held by several processes (FORMAT.md "Process trees", shared memory): one
 * object per (dev, inode), as large as the largest offset any area maps, made here and
 * inherited by every process; each sharer's areas map it (mm.c), and each process's stored
 * pages of it (the writer stored every page once) land in the one object.
 */
static int make_shared_memory(void)
{
	size_t cap = 0;

	for (uint32_t i = 0; i < T.n; i++) {
		for (size_t k = 0; T.args[i] && k < T.args[i]->img->nareas; k++) {
			const struct img_area *ar = &T.args[i]->img->areas[k];
			uint64_t end = ar->f.file_offset + (ar->f.end - ar->f.start);
			size_t o = 0;
			if (!is_shared_memory(ar))
				continue;
			while (o < T.nshm && !(T.shm[o].inode == ar->f.inode && T.shm[o].dev_major == ar->f.dev_major &&
					       T.shm[o].dev_minor == ar->f.dev_minor))
				o++;
			if (o == T.nshm) {
				if (T.nshm == cap) {
					cap = cap ? cap * 2 : 8;
					struct tree_shm *n = realloc(T.shm, cap * sizeof(*n));
					if (!n)
						return -ENOMEM;
					T.shm = n;
				}
				T.shm[T.nshm++] = (struct tree_shm){ ar->f.dev_major, ar->f.dev_minor, ar->f.inode, 0, -1 };
			}
			if (end < ar->f.file_offset)
				return rst_err(T.root, -EBADMSG, "process %u: AREA record #%u: file_offset %#llx overflows",
					       T.e[i].pid, ar->seq, (unsigned long long)ar->f.file_offset);
			if (end > T.shm[o].size)
				T.shm[o].size = end;
		}
	}
	for (size_t o = 0; o < T.nshm; o++) {
		int fd = make_shmem_object(T.shm[o].size);
		if (fd < 0 || (fd = up_high(fd)) < 0)
			return rst_err(T.root, -errno, "making shared memory %u:%u inode %llu (%llu bytes): %s",
				       T.shm[o].dev_major, T.shm[o].dev_minor, (unsigned long long)T.shm[o].inode,
				       (unsigned long long)T.shm[o].size, strerror(errno));
		T.shm[o].fd = fd;
	}
	for (uint32_t i = 0; i < T.n; i++)
		for (size_t k = 0; T.args[i] && k < T.args[i]->img->nareas; k++) {
			struct img_area *ar = &T.args[i]->img->areas[k];
			for (size_t o = 0; is_shared_memory(ar) && o < T.nshm; o++)
				if (T.shm[o].inode == ar->f.inode && T.shm[o].dev_major == ar->f.dev_major &&
				    T.shm[o].dev_minor == ar->f.dev_minor)
					ar->shared_fd = T.shm[o].fd;
		}
	qsort(T.shm, T.nshm, sizeof(*T.shm), by_fd);
	return 0;
}

/*
 * A file whose content the image holds (memfd, deleted file: FILE_CONTENT) that several
 * processes hold is one file again: made and filled here once, from the first holder's records,
 * inherited by all, and each holder's restore_contents_child takes it instead of making its own
 * (so a MAP_SHARED write or an fd write in one is seen by the others).
 */
static int make_shared_contents(void)
{
	struct { uint32_t dev_major, dev_minor; uint64_t inode; int fd; } *made = NULL;
	size_t nmade = 0;
	int err = 0;

	for (uint32_t i = 0; !err && i < T.n; i++) {
		struct restore_args *a = T.args[i];
		if (!a || !a->img->ncontents)
			continue;
		a->content_tree_fd = calloc(a->img->ncontents, sizeof(int));
		if (!a->content_tree_fd) {
			err = -ENOMEM;
			break;
		}
		for (size_t ci = 0; !err && ci < a->img->ncontents; ci++) {
			const struct ckimg_file_content_fixed *f = &a->img->contents[ci].f;
			int holders = 0;
			for (size_t m = 0; m < nmade; m++)
				if (made[m].inode == f->inode && made[m].dev_major == f->dev_major && made[m].dev_minor == f->dev_minor)
					a->content_tree_fd[ci] = made[m].fd;
			for (uint32_t j = i + 1; !a->content_tree_fd[ci] && j < T.n; j++)
				for (size_t k = 0; T.args[j] && k < T.args[j]->img->ncontents; k++) {
					const struct ckimg_file_content_fixed *g = &T.args[j]->img->contents[k].f;
					holders += g->inode == f->inode && g->dev_major == f->dev_major && g->dev_minor == f->dev_minor;
				}
			if (a->content_tree_fd[ci] || !holders)
				continue;
			void *n = realloc(made, (nmade + 1) * sizeof(*made));
			if (!n) {
				err = -ENOMEM;
				break;
			}
			made = n;
			char eb[512] = "";
			int fd = restore_content_make(a, ci, eb, sizeof(eb));
			if (fd >= 0 && (fd = up_high(fd)) < 0)
				fd = -errno;
			if (fd < 0) {
				err = rst_err(T.root, fd, "process %u: %s", T.e[i].pid, eb[0] ? eb : strerror(-fd));
				break;
			}
			int *keep = realloc(T.content_fds, (T.ncontent_fds + 1) * sizeof(int));
			if (!keep) {
				close(fd);
				err = -ENOMEM;
				break;
			}
			T.content_fds = keep;
			T.content_fds[T.ncontent_fds++] = fd;
			made[nmade].dev_major = f->dev_major;
			made[nmade].dev_minor = f->dev_minor;
			made[nmade].inode = f->inode;
			made[nmade++].fd = fd;
			a->content_tree_fd[ci] = fd;
		}
	}
	free(made);
	return err;
}

/* Descriptions a process shares with its parent (same tree-wide FD file_id): inherited. */
static int plan_inheritance(void)
{
	for (uint32_t i = 1; i < T.n; i++) {
		struct restore_args *a = T.args[i], *p = NULL;
		if (!a)
			continue;
		for (uint32_t j = 0; j < i; j++)
			if (T.e[j].pid == T.e[i].ppid)
				p = T.args[j];
		if (!p)
			continue;
		a->inh_id = calloc(a->img->nfds + 1, sizeof(*a->inh_id));
		a->inh_fd = calloc(a->img->nfds + 1, sizeof(*a->inh_fd));
		if (!a->inh_id || !a->inh_fd)
			return -ENOMEM;
		for (size_t k = 0; k < a->img->nfds; k++) {
			uint32_t id = a->img->fds[k].f.file_id;
			int dup = 0;
			for (size_t m = 0; m < a->ninh; m++)
				dup |= a->inh_id[m] == id;
			for (size_t m = 0; id && !dup && m < p->img->nfds; m++)
				if (p->img->fds[m].f.file_id == id) {
					a->inh_id[a->ninh] = id;
					a->inh_fd[a->ninh++] = (int)p->img->fds[m].f.fd;
					break;
				}
		}
	}
	return 0;
}

/* Every process reports ready (or writes its error on its shared page and exits). */
static int wait_ready(void)
{
	uint32_t live = 0, got = 0;
	char *ready = calloc(T.n, 1);
	uint64_t deadline = rst_now_ns() + (uint64_t)READY_TIMEOUT_MS * 1000000ull;

	if (!ready)
		return -ENOMEM;
	for (uint32_t i = 0; i < T.n; i++)
		live += T.args[i] != NULL;
	while (got < live) {
		struct pollfd p = { .fd = T.ready_rd, .events = POLLIN };
		uint32_t idx;
		int st;
		if (poll(&p, 1, 100) > 0) {
			ssize_t r = read(T.ready_rd, &idx, sizeof(idx));
			if (r == sizeof(idx) && idx < T.n && !ready[idx]) {
				ready[idx] = 1;
				got++;
				continue;
			}
		}
		for (uint32_t i = 0; i < T.n; i++)
			if (T.args[i] && T.args[i]->child_err[0]) {
				free(ready);
				return rst_err(T.root, -EIO, "process %u: %s", T.e[i].pid, T.args[i]->child_err);
			}
		if (waitpid(T.root->pid, &st, WNOHANG) == T.root->pid) {
			free(ready);
			T.root->pid = 0;
			return rst_err(T.root, -EIO, "the restored root %u died while its tree was being made (status 0x%x)",
				       T.e[0].pid, st);
		}
		if (rst_now_ns() > deadline) {
			free(ready);
			return rst_err(T.root, -ETIMEDOUT, "the tree's processes were not all made after %d s",
				       READY_TIMEOUT_MS / 1000);
		}
	}
	free(ready);
	return 0;
}

/* Take a ready process (blocked in pause, signals blocked) under our ptrace. */
static int seize(struct restore_args *a, pid_t pid)
{
	int st;
	long opts = PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE | PTRACE_O_TRACESYSGOOD;

	a->pid = pid;
	a->seccomp_suspended = ptrace(PTRACE_SEIZE, pid, 0, opts | PTRACE_O_SUSPEND_SECCOMP) == 0;
	if (!a->seccomp_suspended && ptrace(PTRACE_SEIZE, pid, 0, opts) < 0)
		return rst_err(a, -errno, "PTRACE_SEIZE: %s", strerror(errno));
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0)
		return rst_err(a, -errno, "PTRACE_INTERRUPT: %s", strerror(errno));
	for (;;) {
		pid_t w = waitpid(pid, &st, __WALL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return rst_err(a, -errno, "waitpid: %s", strerror(errno));
		if (WIFSTOPPED(st))
			break;
		return rst_err(a, -EIO, "died before it was taken (status 0x%x)", st);
	}
	return restore_fork_adopt(a);
}

/* SHARED_PAGES of process i (FORMAT.md "Process trees"), checked, into a->shared. */
static int load_shared_runs(struct restore_args *a, uint32_t i)
{
	struct img *img = a->img;

	for (uint64_t k = 0; k < img->nents; k++) {
		const struct ckimg_index_entry *e = &img->ents[k];
		struct { uint32_t fixed_size, count, parent_pid, reserved; } f;
		uint8_t *pl;
		if (e->type != CKIMG_REC_SHARED_PAGES || img->owners[k] != img->owner)
			continue;
		if (a->shared || e->payload_length < sizeof(f) || e->payload_length > CKIMG_MAX_METADATA_PAYLOAD)
			return rst_err(a, -EBADMSG, "BAD_FIELD: SHARED_PAGES at offset %llu: a second one, or %llu bytes",
				       (unsigned long long)e->offset, (unsigned long long)e->payload_length);
		int err = img_read_payload(img, e, &pl);
		if (err == -EBADMSG)
			return rst_err(a, err, "BAD_CHECKSUM: SHARED_PAGES at offset %llu", (unsigned long long)e->offset);
		if (err)
			return err;
		memcpy(&f, pl, sizeof(f));
		if (f.fixed_size < sizeof(f) || f.fixed_size > e->payload_length ||
		    f.count > (e->payload_length - f.fixed_size) / 16 || f.parent_pid != T.e[i].ppid || i == 0) {
			free(pl);
			return rst_err(a, -EBADMSG, "BAD_FIELD: SHARED_PAGES at offset %llu: %u runs, parent %u (TREE: %u)",
				       (unsigned long long)e->offset, f.count, f.parent_pid, T.e[i].ppid);
		}
		a->shared = calloc(f.count + 1, sizeof(*a->shared));
		if (!a->shared) {
			free(pl);
			return -ENOMEM;
		}
		for (uint32_t r = 0; r < f.count; r++) {
			struct rst_shared_run *run = &a->shared[r];
			memcpy(&run->start, pl + f.fixed_size + r * 16, 8);
			memcpy(&run->pages, pl + f.fixed_size + r * 16 + 8, 4);
			memcpy(&run->area_id, pl + f.fixed_size + r * 16 + 12, 4);
			int ai = img_area_by_id(img, run->area_id);
			if (ai < 0 || run->pages == 0 || run->start < img->areas[ai].f.start ||
			    run->start + (uint64_t)run->pages * 4096 > img->areas[ai].f.end) {
				free(pl);
				return rst_err(a, -EBADMSG, "BAD_FIELD: SHARED_PAGES at offset %llu: run %u is not inside area %u",
					       (unsigned long long)e->offset, r, run->area_id);
			}
		}
		a->nshared = f.count;
		free(pl);
	}
	return 0;
}

static int in_premapped(const struct restore_args *a, uint64_t addr)
{
	for (size_t i = 0; i < a->img->nareas; i++) {
		const struct img_area *ar = &a->img->areas[i];
		if (ar->premapped == 2 && addr >= ar->f.start && addr < ar->f.end)
			return 1;
	}
	return 0;
}

/*
 * Shared pages that did not come by inheritance (premap below) are copied from the parent's
 * memory as restored (the parent is rebuilt first and has not run yet).
 */
static int fill_shared_pages(struct restore_args *a, uint32_t i)
{
	uint8_t *buf = NULL;
	int err = 0, mem = -1;
	char path[64];

	for (size_t r = 0; r < a->nshared && !err; r++) {
		const struct rst_shared_run *run = &a->shared[r];
		if (in_premapped(a, run->start))
			continue;       /* already the parent's pages, shared */
		if (mem < 0) {
			snprintf(path, sizeof(path), "/proc/%d/mem", live_pid_of(T.e[i].ppid));
			mem = open(path, O_RDONLY | O_CLOEXEC);
			buf = malloc(1 << 20);
			if (mem < 0 || !buf) {
				err = rst_err(a, mem < 0 ? -errno : -ENOMEM, "reading the parent's memory: %s", strerror(errno));
				break;
			}
		}
		for (uint64_t off = 0; off < (uint64_t)run->pages * 4096 && !err; off += 1 << 20) {
			size_t n = (uint64_t)run->pages * 4096 - off < (1u << 20) ? (size_t)((uint64_t)run->pages * 4096 - off) : 1u << 20;
			if (pread(mem, buf, n, (off_t)(run->start + off)) != (ssize_t)n)
				err = rst_err(a, -EIO, "SHARED_PAGES: page %#llx of parent %u cannot be read",
					      (unsigned long long)(run->start + off), T.e[i].ppid);
			else if ((err = rst_write(a, run->start + off, buf, n)))
				rst_err(a, err, "SHARED_PAGES: page %#llx cannot be written: %s",
					(unsigned long long)(run->start + off), strerror(-err));
		}
	}
	if (mem >= 0)
		close(mem);
	free(buf);
	return err;
}

/* An inherited area: pages neither stored by this process nor shared with its parent were
 * zero (or never touched) here; they hold the parent's bytes now: MADV_DONTNEED them. */
int rst_tree_zero_unshared(struct restore_args *a, const struct img_area *ar)
{
	struct img *img = a->img;
	uint64_t npages = (ar->f.end - ar->f.start) / 4096;
	uint8_t *keep = calloc(npages + 1, 1);
	long r = 0;

	if (!keep)
		return -ENOMEM;
	for (size_t c = 0; c < img->nchunks; c++) {
		const struct img_chunk *ch = &img->chunks[c];
		if (&img->areas[ch->area_idx] != ar)
			continue;
		for (uint32_t p = 0; p < ch->span_pages; p++)   /* (an inherited chunk: its take mask) */
			if ((ch->bitmap[p / 8] & (1u << (p % 8))) && (!ch->take || (ch->take[p / 8] & (1u << (p % 8)))))
				keep[(ch->first_page - ar->f.start) / 4096 + p] = 1;
	}
	for (size_t k = 0; k < a->nshared; k++)
		if (a->shared[k].area_id == ar->f.area_id)
			memset(keep + (a->shared[k].start - ar->f.start) / 4096, 1, a->shared[k].pages);
	for (uint64_t p = 0; p < npages && r >= 0;) {
		if (keep[p]) {
			p++;
			continue;
		}
		uint64_t q = p;
		while (q < npages && !keep[q])
			q++;
		r = rst_rsys(a, &a->threads[0], SYS_madvise, ar->f.start + p * 4096, (q - p) * 4096, MADV_DONTNEED, 0, 0, 0);
		p = q;
	}
	free(keep);
	return r < 0 ? rst_err(a, (int)r, "AREA record #%u: MADV_DONTNEED: %s", ar->seq, strerror((int)-r)) : 0;
}

static int plain_private_anon(const struct img_area *ar)
{
	return ar->f.kind == CKIMG_KIND_ANON && !(ar->f.flags & (CKIMG_AREA_SHARED | CKIMG_AREA_GROWSDOWN)) &&
	       ar->file_idx < 0;
}

static int is_leaf(uint32_t i)
{
	for (uint32_t c = 1; c < T.n; c++)
		if (T.e[c].ppid == T.e[i].pid && !is_zombie(c))
			return 0;
	return 1;
}

/* Fill a premapped area (mapped in us, ckimg-restore) with process a's stored pages: worker
 * threads take its chunks in turn, each checked (CRC) and decompressed straight into place. */
struct premap_fill {
	struct restore_args *a;
	const struct img_area *ar;
	size_t *chunks, nchunks, maxp, maxr;
	atomic_size_t next;
	atomic_int failed;
	pthread_mutex_t lock;
	char err[256];
};

static void *premap_worker(void *arg)
{
	struct premap_fill *f = arg;
	struct img *img = f->a->img;
	uint8_t *p = malloc(f->maxp + 1), *r = malloc(f->maxr + 1);
	char eb[256];

	for (size_t k; p && r && !atomic_load(&f->failed) && (k = atomic_fetch_add(&f->next, 1)) < f->nchunks;) {
		const struct img_chunk *ch = &img->chunks[f->chunks[k]];
		const uint8_t *data;
		/* a chunk an incremental image inherits (chain.c): read from the ancestor, only
		 * the pages of its take mask written */
		if (img_read_chunk(ch->src ? ch->src : img, ch, p, r, &data, eb, sizeof(eb))) {
			pthread_mutex_lock(&f->lock);
			if (!atomic_exchange(&f->failed, 1))
				snprintf(f->err, sizeof(f->err), "%s", eb);
			pthread_mutex_unlock(&f->lock);
			break;
		}
		/* pages allocated in one call per run, not one fault each (costly in a VM) */
#define WRITES(b) ((ch->bitmap[(b) / 8] & (1u << ((b) % 8))) && (!ch->take || (ch->take[(b) / 8] & (1u << ((b) % 8)))))
		for (uint32_t b = 0, e; b < ch->span_pages; b = e) {
			if (!WRITES(b)) {
				e = b + 1;
				continue;
			}
			for (e = b + 1; e < ch->span_pages && WRITES(e); e++)
				;
			madvise((void *)(uintptr_t)(ch->first_page + (uint64_t)b * 4096), (size_t)(e - b) * 4096, MADV_POPULATE_WRITE);
		}
		for (uint32_t b = 0, n = 0; b < ch->span_pages; b++)
			if (ch->bitmap[b / 8] & (1u << (b % 8))) {
				if (WRITES(b))
					memcpy((void *)(uintptr_t)(ch->first_page + (uint64_t)b * 4096), data + (size_t)n * 4096, 4096);
				n++;
			}
#undef WRITES
	}
	if (!p || !r)
		atomic_store(&f->failed, 1);
	free(p);
	free(r);
	return NULL;
}

static int fill_premap(struct restore_args *a, const struct img_area *ar)
{
	struct img *img = a->img;
	struct premap_fill f = { .a = a, .ar = ar };
	pthread_t th[16];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nth = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (int)ncpu, started = 0;

	f.chunks = malloc((img->nchunks + 1) * sizeof(*f.chunks));
	if (!f.chunks)
		return -ENOMEM;
	for (size_t c = 0; c < img->nchunks; c++)
		if (&img->areas[img->chunks[c].area_idx] == ar) {
			f.chunks[f.nchunks++] = c;
			if (img->chunks[c].payload_length > f.maxp)
				f.maxp = img->chunks[c].payload_length;
			if ((size_t)img->chunks[c].stored_pages * 4096 > f.maxr)
				f.maxr = (size_t)img->chunks[c].stored_pages * 4096;
		}
	pthread_mutex_init(&f.lock, NULL);
	if ((size_t)nth > f.nchunks)
		nth = f.nchunks ? (int)f.nchunks : 1;
	for (int i = 1; i < nth; i++)
		if (pthread_create(&th[started], NULL, premap_worker, &f) == 0)
			started++;
	premap_worker(&f);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(f.chunks);
	pthread_mutex_destroy(&f.lock);
	if (atomic_load(&f.failed))
		return rst_err(a, f.err[0] ? -EBADMSG : -ENOMEM, "%s", f.err[0] ? f.err : "out of memory for page buffers");
	return 0;
}

/*
 * Pages shared copy-on-write between a parent and its children, shared again: an area of the
 * parent whose pages leaf children share is mapped here, in ckimg-restore, at its address,
 * and filled before the root is cloned; every process of the tree inherits it through its
 * fork, the parent and those children keep it (mm.c leaves premapped areas alone), the others
 * unmap it. A range that ckimg-restore itself uses cannot be premapped: its pages are copied.
 */
static int premap_shared_areas(uint64_t (**ranges)[2], size_t *nranges)
{
	size_t cap = 0;

	*ranges = NULL;
	*nranges = 0;
	for (uint32_t i = 0; i < T.n; i++) {
		struct restore_args *pa = T.args[i];
		if (!pa)
			continue;
		for (size_t k = 0; k < pa->img->nareas; k++) {
			struct img_area *ar = &pa->img->areas[k];
			int sharers = 0, clash = 0;
			if (!plain_private_anon(ar))
				continue;
			for (size_t q = 0; q < *nranges; q++)
				clash |= ar->f.start < (*ranges)[q][1] && ar->f.end > (*ranges)[q][0];
			for (uint32_t c = 1; !clash && c < T.n; c++) {
				struct restore_args *ca = T.args[c];
				if (!ca || T.e[c].ppid != T.e[i].pid || !is_leaf(c))
					continue;
				for (size_t m = 0; m < ca->img->nareas; m++) {
					struct img_area *cr = &ca->img->areas[m];
					int used = 0;
					if (cr->f.start != ar->f.start || cr->f.end != ar->f.end || !plain_private_anon(cr))
						continue;
					for (size_t s = 0; s < ca->nshared; s++)
						used |= ca->shared[s].area_id == cr->f.area_id;
					if (used) {
						cr->premapped = 2;
						sharers++;
					}
				}
			}
			if (!sharers)
				continue;
			void *m = mmap((void *)(uintptr_t)ar->f.start, ar->f.end - ar->f.start, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
			if (m != (void *)(uintptr_t)ar->f.start) {
				if (m != MAP_FAILED)
					munmap(m, ar->f.end - ar->f.start);
				for (uint32_t c = 1; c < T.n; c++)      /* we use that range: copy instead */
					for (size_t q = 0; T.args[c] && T.e[c].ppid == T.e[i].pid && q < T.args[c]->img->nareas; q++)
						if (T.args[c]->img->areas[q].f.start == ar->f.start)
							T.args[c]->img->areas[q].premapped = 0;
				continue;
			}
			ar->premapped = 1;
			if (*nranges == cap) {
				cap = cap ? cap * 2 : 8;
				void *n = realloc(*ranges, cap * sizeof(**ranges));
				if (!n)
					return -ENOMEM;
				*ranges = n;
			}
			(*ranges)[*nranges][0] = ar->f.start;
			(*ranges)[*nranges][1] = ar->f.end;
			(*nranges)++;
			int err = fill_premap(pa, ar);
			if (err)
				return err;
		}
	}
	return 0;
}

static int rebuild(struct restore_args *a, uint32_t i)
{
	int err;
	if ((err = restore_mm(a)) || (err = restore_threads(a)) || (err = restore_mm_wait(a)) ||
	    (err = fill_shared_pages(a, i)) ||
	    (err = restore_state_early(a)) || (err = restore_creds(a)) || (err = restore_fd_files_report(a)) ||
	    (a == T.root && (err = restore_tty_parent(a))) || (err = restore_state(a)) || (err = restore_finish(a)))
		return err;
	return 0;
}

/* Kill every process of the tree and reap them all (we are their subreaper meanwhile). */
static void abort_all(void)
{
	int st;

	for (uint32_t i = 0; i < T.n; i++)   /* (an unknown one dies with its parent: PDEATHSIG) */
		if (live_pid(i) > 0)
			kill(live_pid(i), SIGKILL);
	for (uint32_t h = 0; h < T.nhelpers; h++)
		if (T.hpid[h] > 0)
			kill(T.hpid[h], SIGKILL);
	for (uint32_t i = 0; i < T.n; i++)
		if (T.args[i])
			restore_contents_abort(T.args[i]);
	for (;;) {
		pid_t w = waitpid(-1, &st, __WALL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
	}
	T.root->pid = 0;
}

int restore_tree(struct restore_args *r)
{
	int p[2], err;

	memset(&T, 0, sizeof(T));
	T.root = r;
	T.e = r->img->tree;
	T.n = r->img->ntree;
	T.new_pid = r->new_pid;
	if (T.new_pid) {
		T.live = mmap(NULL, ((size_t)T.n * sizeof(pid_t) + 4095) & ~(size_t)4095, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (T.live == MAP_FAILED)
			return rst_err(r, -errno, "mmap: %s", strerror(errno));
	}
	if ((err = open_processes()) || (err = plan_helpers()) || (err = plan_files()) || (err = place_tree_fds()) ||
	    (err = make_shared_objects()) || (err = make_shared_socketpairs()) || (err = make_shared_ptys()) || (err = make_shared_memory()) || (err = make_shared_contents()) ||
	    (err = plan_inheritance()))
		return err;
	rst_trace(r, "tree: records checked, shared objects made");
	if ((err = restore_sysv_make(r))) {
		restore_sysv_abort();
		return err;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return rst_err(r, -errno, "pipe: %s", strerror(errno));
	T.ready_rd = p[0];
	T.ready_wr = up_high(p[1]);
	prctl(PR_SET_CHILD_SUBREAPER, 1);   /* orphans of a failed restore come to us */
	uint64_t (*premaps)[2] = NULL;
	size_t npremaps = 0;
	if ((err = premap_shared_areas(&premaps, &npremaps))) {
		for (size_t k = 0; k < npremaps; k++)
			munmap((void *)(uintptr_t)premaps[k][0], premaps[k][1] - premaps[k][0]);
		free(premaps);
		return err;
	}
	rst_trace(r, "tree: shared copy-on-write areas premapped");
	fflush(NULL);
	long pid = -1, helper = -1;
	if (T.born_of[0] >= 0) {        /* the root's session leader is gone: a helper clones it */
		helper = spawn_helper((uint32_t)T.born_of[0]);
		pid = helper;
	}
	if (helper < 0)
		pid = clone_with_pid((pid_t)T.e[0].pid);
	if (pid != 0) {         /* the tree has them now (or nobody will) */
		for (size_t k = 0; k < npremaps; k++)
			munmap((void *)(uintptr_t)premaps[k][0], premaps[k][1] - premaps[k][0]);
		free(premaps);
		for (size_t k = 0; k < T.nshm; k++)
			close(T.shm[k].fd);
		for (size_t k = 0; k < T.ncontent_fds; k++)
			close(T.content_fds[k]);
		/* our copy of a pty would hide its hangup, of a socket pair the peer's close, of a
		 * pipe its end of file (a reader of the tree would wait for it for ever) */
		for (size_t k = 0; k < T.nobjs; k++)
			for (int e = 0; (T.objs[k].tag == PTY_TAG || T.objs[k].tag == UNIX_TAG || T.objs[k].tag == PIPE_TAG) && e < 2; e++)
				close(T.objs[k].fd[e]);
	}
	if (pid < 0) {
		err = errno;
		if (err == EEXIST) {
			char who[160];
			rst_pid_holder((pid_t)T.e[0].pid, who, sizeof(who));
			return rst_err(r, -err, "PROCESS record: PID %u is taken: %s; wait for it to go, or use --new-pid",
				       T.e[0].pid, who);
		}
		return rst_err(r, -err, "PROCESS record: clone3 with PID %u: %s", T.e[0].pid, strerror(err));
	}
	if (pid == 0)
		process_main(0, -1);
	r->pid = helper > 0 ? (pid_t)T.e[0].pid : (pid_t)pid;  /* (no root helper with --new-pid) */
	if (T.new_pid)
		T.live[0] = (pid_t)pid;
	close(T.ready_wr);
	err = wait_ready();
	if (!err && helper > 0) {       /* every process has joined: the helper leaves */
		int st;
		while (waitpid((pid_t)helper, &st, __WALL) < 0 && errno == EINTR)
			;
	}
	for (uint32_t i = 1; !err && i < T.n; i++) {
		uint32_t f = T.e[i].flags;
		if (is_zombie(i))
			continue;
		if (T.args[i] && T.args[i]->fds_shared)
			f &= ~CKIMG_TREE_SHARES_FILES;
		if (f & (CKIMG_TREE_SHARES_FILES | CKIMG_TREE_SHARES_SIGHAND))
			rst_warn("process %u shared its %s with its parent %u; it has a copy now", T.e[i].pid,
				 (f & CKIMG_TREE_SHARES_FILES) && (f & CKIMG_TREE_SHARES_SIGHAND) ? "fd table and signal handlers" :
				 f & CKIMG_TREE_SHARES_FILES ? "fd table" : "signal handlers (they need one memory too: "
				 "CLONE_VM)", T.e[i].ppid);
		if ((f & CKIMG_TREE_SHARES_FS) && T.born_of[i] >= 0 && T.hpid[T.born_of[i]] > 0)
			rst_warn("process %u shared its cwd, root and umask with its parent %u; cloned by the leader of "
				 "its session, it has a copy now", T.e[i].pid, T.e[i].ppid);
	}
	for (uint32_t h = 0; !err && h < T.nhelpers; h++)
		if (atomic_load(&T.hstate[h]) < 0)
			rst_warn("the %s %u, whose leader had exited, could not be made again (its PID is taken); its "
				 "members stay in the %s they are born into", T.helpers[h].session ? "session" : "process group",
				 T.helpers[h].id, T.helpers[h].session ? "session" : "group");
	if (!err)
		pty_check_foreground();
	rst_trace(r, "tree: every process made");
	for (uint32_t i = 0; !err && i < T.n; i++)
		if (T.args[i] && (err = seize(T.args[i], live_pid(i))) == 0)
			err = rebuild(T.args[i], i);
	if (err) {
		/* name the process (the root's own messages already say which record) */
		for (uint32_t i = 0; i < T.n; i++) {
			struct restore_args *a = T.args[i];
			if (a && a != r && a->err[0]) {
				snprintf(r->err, sizeof(r->err), "process %u: %.700s", T.e[i].pid, a->err);
				break;
			}
		}
		abort_all();
		restore_sysv_abort();
		return err;
	}
	restore_sysv_finish();
	for (uint32_t i = 0; i < T.n; i++)      /* all at once */
		if (T.args[i])
			restore_release(T.args[i]);
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	r->pid = live_pid(0);
	return 0;
}

static int pid_free(uint32_t pid)
{
	return pid && kill((pid_t)pid, 0) < 0 && errno == ESRCH && kill(-(pid_t)pid, 0) < 0 && errno == ESRCH;
}

int restore_tree_of_one(struct restore_args *a)
{
	struct img *img = a->img;
	const struct ckimg_process_fixed *p = &img->proc.f;

	if (img->tree || a->new_pid)
		return 0;
	if (!(p->sid != p->pid && p->sid != (uint32_t)getsid(0) && pid_free(p->sid)) &&
	    !(p->pgid != p->pid && p->pgid != (uint32_t)getpgrp() && pid_free(p->pgid)))
		return 0;
	img->tree = calloc(1, sizeof(*img->tree));
	if (!img->tree)
		return 0;
	*img->tree = (struct ckimg_tree_entry){ .pid = p->pid, .ppid = p->ppid, .pgid = p->pgid, .sid = p->sid,
						 .thread_count = (uint32_t)img->nthreads };
	img->ntree = 1;
	img->tree_root = p->pid;
	return 1;
}

int restore_tree_check(struct restore_args *r, int (*check_one)(struct restore_args *))
{
	const struct ckimg_tree_entry *e = r->img->tree;

	for (uint32_t i = 0; i < r->img->ntree; i++) {
		struct restore_args a;
		struct img img;
		int ret;
		if (e[i].flags & CKIMG_TREE_ZOMBIE) {
			printf("ok: pid %u, a zombie (exit status 0x%x)\n", e[i].pid, e[i].exit_status);
			continue;
		}
		memset(&a, 0, sizeof(a));
		a.image_path = r->image_path;
		a.img = &img;
		if (img_open_process(&img, r->image_path, e[i].pid) || img_chain_open(&img)) {
			rst_log_error("process %u: %s", e[i].pid, img.err);
			return 2;
		}
		ret = check_one(&a);
		img_close(&img);
		if (ret)
			return ret;
	}
	return 0;
}
