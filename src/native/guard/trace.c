/*
 * The guard's ptrace half: seize the job's threads and processes, handle their stops (hold
 * back the held signals, keep group-stops, follow forks and clones), release them all for a
 * capture and take them back afterwards.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guard.h"

#define SEIZE_OPTIONS (PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE)

static struct guard_task *find_task(struct guard *g, pid_t tid)
{
	for (size_t i = 0; i < g->ntask; i++)
		if (g->task[i].tid == tid)
			return &g->task[i];
	return NULL;
}

static struct guard_task *add_task(struct guard *g, pid_t tid)
{
	struct guard_task *t = find_task(g, tid);

	if (t)
		return t;
	if (g->ntask == GUARD_MAX_TASKS)
		return NULL;
	t = &g->task[g->ntask++];
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	return t;
}

static void drop_task(struct guard *g, pid_t tid)
{
	struct guard_task *t = find_task(g, tid);

	if (t)
		*t = g->task[--g->ntask];
}

int guard_seize(struct guard *g, pid_t tid)
{
	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)SEIZE_OPTIONS) < 0)
		return errno == EPERM && find_task(g, tid) ? 0 : -1;
	add_task(g, tid);
	return 0;
}

/* Every thread of pid, then (as far as /proc/…/children tells) every process below it. */
static void seize_tree(struct guard *g, pid_t pid, int depth)
{
	char path[64];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d))) {
		pid_t tid = atoi(e->d_name);
		char cpath[96];
		FILE *f;
		int child;

		if (tid <= 0)
			continue;
		guard_seize(g, tid);
		if (depth > 64)
			continue;
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%d/children", pid, tid);
		if (!(f = fopen(cpath, "r")))
			continue;
		while (fscanf(f, "%d", &child) == 1)
			seize_tree(g, child, depth + 1);
		fclose(f);
	}
	closedir(d);
}

int guard_seize_job(struct guard *g)
{
	memset(g->pass, 0, sizeof(g->pass));
	seize_tree(g, g->main_pid, 0);
	return find_task(g, g->main_pid) ? 0 : -1;
}

static int is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/*
 * One wait status. `releasing`: leave the task stopped and note a signal to hand over at
 * detach instead of resuming it. Returns 1 when the job's main process has ended.
 */
static int handle_status(struct guard *g, pid_t tid, int st, int releasing)
{
	struct guard_task *t;
	int event, sig;
	unsigned long msg;

	if (g->debug) {
		siginfo_t si = { 0 };
		if (WIFSTOPPED(st) && (st >> 16) == 0 && ptrace(PTRACE_GETSIGINFO, tid, 0, &si) == 0)
			fprintf(stderr, "ckimg-guard: tid %d status 0x%x%s (signal %d from pid %d code %d)\n", tid, st, releasing ? " (releasing)" : "", si.si_signo, si.si_pid, si.si_code);
		else
			fprintf(stderr, "ckimg-guard: tid %d status 0x%x%s\n", tid, st, releasing ? " (releasing)" : "");
	}
	if (WIFEXITED(st) || WIFSIGNALED(st)) {
		drop_task(g, tid);
		if (tid == g->main_pid) {
			g->main_status = st;
			g->main_done = 1;
		}
		return g->main_done;
	}
	if (!WIFSTOPPED(st))
		return 0;
	if (!(t = add_task(g, tid))) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return 0;
	}
	event = st >> 16;
	sig = WSTOPSIG(st);
	if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK || event == PTRACE_EVENT_CLONE) {
		if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg) == 0 && add_task(g, (pid_t)msg) && releasing)
			ptrace(PTRACE_INTERRUPT, (pid_t)msg, 0, 0);
		sig = 0;
	} else if (event == PTRACE_EVENT_STOP) {
		if (is_stop_signal(sig) && !releasing) {
			ptrace(PTRACE_LISTEN, tid, 0, 0);       /* a group-stop stays a stop */
			return 0;
		}
		sig = 0;
	} else if (event != 0) {
		sig = 0;
	} else if (sig == SIGCONT && g->swallow_cont > 0) {
		g->swallow_cont--;
		sig = 0;
	} else if (g->hold[sig]) {
		if (g->pass[sig] > 0) {
			g->pass[sig]--;
		} else {
			guard_event("held %d %d", sig, tid);
			sig = 0;
		}
	}
	if (releasing) {
		t->stopped = 1;
		if (sig)
			t->pending_sig = sig;
		return 0;
	}
	ptrace(PTRACE_CONT, tid, 0, (void *)(long)sig);
	return 0;
}

int guard_reap(struct guard *g)
{
	int st;
	pid_t tid;

	while ((tid = waitpid(-1, &st, __WALL | WNOHANG)) > 0)
		if (handle_status(g, tid, st, 0))
			return 1;
	if (tid < 0 && errno == ECHILD && !g->main_done) {
		/* nothing left to wait for: the main process is neither our child nor traced */
		g->main_status = 0;
		g->main_done = 1;
	}
	return g->main_done;
}

/* SIGKILL pid and every process below it (children first found, then theirs). */
static void kill_tree(pid_t pid, int depth);

void guard_kill_job(struct guard *g)
{
	for (size_t i = 0; i < g->ntask; i++)
		kill(g->task[i].tid, SIGKILL);
	kill_tree(g->main_pid, 0);
}

static void kill_tree(pid_t pid, int depth)
{
	char path[64];
	DIR *d;
	struct dirent *e;

	if (pid != getpid())
		kill(pid, SIGKILL);
	if (depth > 64)
		return;
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d))) {
		char cpath[96];
		FILE *f;
		int child;

		if (atoi(e->d_name) <= 0)
			continue;
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%d/children", pid, atoi(e->d_name));
		if (!(f = fopen(cpath, "r")))
			continue;
		while (fscanf(f, "%d", &child) == 1)
			kill_tree(child, depth + 1);
		fclose(f);
	}
	closedir(d);
}

/*
 * The job is over: kill whatever of it is left and reap it all. As child subreaper the guard
 * inherits every orphan of the job; if it exited first, they would go to the next subreaper or
 * to PID 1, which may never reap them, and their zombies would keep the PIDs a restore needs.
 * A killed parent's children are ours before its own status is, so ECHILD means nothing is left.
 */
void guard_end_job(struct guard *g)
{
	int st;
	pid_t tid;

	for (size_t i = 0; i < g->ntask; i++)
		kill(g->task[i].tid, SIGKILL);
	g->ntask = 0;
	for (;;) {
		kill_tree(getpid(), 0);
		tid = waitpid(-1, &st, __WALL);
		if (tid < 0 && errno == EINTR)
			continue;
		if (tid < 0)
			break;
		if (tid == g->main_pid && !g->main_done) {
			g->main_status = st;
			g->main_done = 1;
		}
	}
}

/* Stop every task (interrupt), then detach each, handing over a signal that arrived meanwhile. */
void guard_release(struct guard *g)
{
	int st;
	pid_t tid;

	for (size_t i = 0; i < g->ntask; i++) {
		g->task[i].stopped = 0;
		g->task[i].pending_sig = 0;
		if (ptrace(PTRACE_INTERRUPT, g->task[i].tid, 0, 0) < 0 && errno == ESRCH)
			g->task[i].stopped = -1;        /* gone: its exit status follows */
	}
	for (;;) {
		size_t waiting = 0;
		for (size_t i = 0; i < g->ntask; i++)
			waiting += g->task[i].stopped == 0;
		if (!waiting)
			break;
		tid = waitpid(-1, &st, __WALL);
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		handle_status(g, tid, st, 1);
	}
	for (size_t i = 0; i < g->ntask; i++)
		if (g->task[i].stopped > 0)
			ptrace(PTRACE_DETACH, g->task[i].tid, 0, (void *)(long)g->task[i].pending_sig);
	g->ntask = 0;
}

void guard_deliver(struct guard *g, pid_t pid, int sig)
{
	if (find_task(g, pid))
		g->pass[sig]++;
	kill(pid, sig);
}

/*
 * Every thread of pid to nice value `nice` (nice is per thread; threads it starts later inherit
 * it from their creator). The capturer's work after the freeze — reading its twin, hashing,
 * compressing, writing — then yields the CPU to the job it checkpoints.
 */
static void renice_threads(pid_t pid, int nice)
{
	char path[64];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d)))
		if (atoi(e->d_name) > 0)
			setpriority(PRIO_PROCESS, (id_t)atoi(e->d_name), nice);
	closedir(d);
}

/* The job's main thread's tracer (TracerPid in /proc/PID/status), -1 when it cannot be read. */
static pid_t tracer_of(pid_t pid)
{
	char path[64], line[256];
	pid_t tracer = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "TracerPid: %d", &tracer) == 1)
			break;
	fclose(f);
	return tracer;
}

/*
 * While a capture that lets the job run on (not --kill) is under way: once the capturer has
 * seized the job and let it go again (a copy-on-write capture releases it after the freeze and
 * reads the memory from its twin for seconds more), trace the job again at once, so that a
 * signal meant for it is held back during the rest of the capture too, not only after the
 * capturer has exited. Threads the capturer still holds are skipped (EPERM); `attach` after the
 * capture takes them. Returns 1 while there is more to watch for.
 */
int guard_watch_step(struct guard *g)
{
	pid_t tracer;

	if (!g->watch || g->main_done)
		return g->watch = 0;
	if (kill(g->watch, 0) < 0 && errno == ESRCH)
		return g->watch = 0;            /* the capturer is gone: attach follows */
	tracer = tracer_of(g->main_pid);
	if (tracer < 0)
		return g->watch = 0;
	if (!g->watch_seen) {
		g->watch_seen = tracer == g->watch;
		return 1;
	}
	if (tracer != 0)
		return 1;
	guard_seize_job(g);
	if (g->watch_nice > 0)
		renice_threads(g->watch, g->watch_nice);
	g->watch = 0;
	return 0;
}

static const struct guard_mask *mask_of(const struct guard_mask *m, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].tid == tid)
			return &m[i];
	return NULL;
}

/*
 * Take over a job that ckimg-restore --hand-over let go stopped, every signal blocked (a
 * SIGSTOP queued before its detach: the job runs no instruction before this). Seize every
 * thread; each reports the group-stop (or, seized before it took the SIGSTOP, that SIGSTOP:
 * let through, it becomes the group-stop), and gets its recorded mask while still stopped.
 * Then SIGCONT (its delivery swallowed: the guard's, not the job's) and resume. A signal sent
 * to the job during the restore or the hand-over is pending, and is held like any later one.
 */
int guard_adopt_stopped(struct guard *g, const struct guard_mask *m, size_t n)
{
	int st;

	seize_tree(g, g->main_pid, 0);
	if (!find_task(g, g->main_pid))
		return -1;
	for (size_t i = 0; i < g->ntask;) {
		struct guard_task *t = &g->task[i];
		const struct guard_mask *gm;
		pid_t tid = t->tid, w;
		int sig;

		while ((w = waitpid(tid, &st, __WALL)) < 0 && errno == EINTR)
			;
		if (w < 0) {
			drop_task(g, tid);
			continue;
		}
		if (!WIFSTOPPED(st)) {
			if (handle_status(g, tid, st, 0))
				return -1;      /* the main process is gone */
			if (find_task(g, tid))
				i++;
			continue;
		}
		sig = WSTOPSIG(st);
		if ((st >> 16) == 0 && sig == SIGSTOP) {
			ptrace(PTRACE_CONT, tid, 0, (void *)(long)SIGSTOP);
			continue;       /* wait again: the group-stop follows */
		}
		t->pending_sig = (st >> 16) == 0 ? sig : 0;
		if ((gm = mask_of(m, n, tid)) && ptrace(PTRACE_SETSIGMASK, tid, sizeof(gm->mask), &gm->mask) < 0)
			return -1;
		i++;
	}
	for (size_t i = 0; i < n; i++) {
		if (m[i].stopped || (i > 0 && m[i].pid == m[i - 1].pid))
			continue;
		if (kill(m[i].pid, SIGCONT) == 0)
			g->swallow_cont++;
	}
	for (size_t i = 0; i < g->ntask; i++) {
		const struct guard_mask *gm = mask_of(m, n, g->task[i].tid);
		if (gm && gm->stopped)
			ptrace(PTRACE_LISTEN, g->task[i].tid, 0, 0);
		else
			ptrace(PTRACE_CONT, g->task[i].tid, 0, (void *)(long)g->task[i].pending_sig);
		g->task[i].pending_sig = 0;
	}
	return 0;
}
