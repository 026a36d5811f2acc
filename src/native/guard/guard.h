/* ckimg-guard: the job's tracer under `ckimg run` (see main.c for the protocol). */
#ifndef CKIMG_GUARD_H
#define CKIMG_GUARD_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#define GUARD_MAX_TASKS 4096

struct guard_task {
	pid_t tid;
	int stopped;            /* in a ptrace-stop we have not resumed (release only) */
	int pending_sig;        /* a signal to hand over at detach */
};

struct guard {
	char hold[NSIG];        /* signals held back from the job */
	int pass[NSIG];         /* how many of each to let through (deliver) */
	struct guard_task task[GUARD_MAX_TASKS];
	size_t ntask;
	pid_t main_pid;
	int main_status;
	int main_done;
	int debug;              /* CKIMG_DEBUG=1: every wait status on stderr */
	pid_t watch;            /* a capturer that will seize the job and let it go on: retrace after */
	int watch_seen;         /* it has been seen tracing the job */
	int watch_nice;         /* the capturer's nice value once it has let the job go (0: as is) */
	int swallow_cont;       /* SIGCONTs the guard sent itself (hand-over): not the job's to see */
};

/* What ckimg-restore --hand-over says of one restored thread: its recorded signal mask. */
struct guard_mask {
	pid_t pid, tid;
	unsigned long long mask;
	int stopped;            /* its process was recorded stopped: it stays so */
};

void guard_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int guard_seize(struct guard *g, pid_t tid);
int guard_seize_job(struct guard *g);
int guard_reap(struct guard *g);
void guard_end_job(struct guard *g);
void guard_kill_job(struct guard *g);
void guard_release(struct guard *g);
void guard_deliver(struct guard *g, pid_t pid, int sig);
int guard_watch_step(struct guard *g);
int guard_adopt_stopped(struct guard *g, const struct guard_mask *m, size_t n);

#endif
