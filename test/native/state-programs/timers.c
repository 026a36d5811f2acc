/*
 * Interval and POSIX timers come back armed, with the same ids, clocks, signals, values and
 * targets (CRIU zdtm timers, posix_timers, pthread_timers): ITIMER_REAL/VIRTUAL/PROF, POSIX
 * timers on CLOCK_REALTIME, MONOTONIC, BOOTTIME and the process CPU clock, one SIGEV_NONE,
 * one SIGEV_THREAD_ID aimed at a second thread, a disarmed one, and a gap in the ids
 * (timer 1 deleted) so that "create in order" alone would not give the same ids.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include "zdtm.h"

#define NT 7
static timer_t ids[NT];
static const clockid_t clocks[NT] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC, CLOCK_BOOTTIME,
				      CLOCK_PROCESS_CPUTIME_ID, CLOCK_MONOTONIC, CLOCK_MONOTONIC };
static volatile sig_atomic_t hits[65];
static volatile pid_t hit_tid[65];
static volatile pid_t worker_tid;
static volatile int spin = 1;

static void on_sig(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	(void)si;
	hits[sig]++;
	hit_tid[sig] = (pid_t)syscall(SYS_gettid);
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = (pid_t)syscall(SYS_gettid);
	sigset_t none;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	while (spin)
		pause();
	return NULL;
}

static int mk(int i, int notify, int sig, pid_t tid)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = notify;
	sev.sigev_signo = sig;
	sev.sigev_value.sival_ptr = (void *)(uintptr_t)(0x1000 + i);
	if (notify == SIGEV_THREAD_ID)
		sev._sigev_un._tid = tid;
	return timer_create(clocks[i], &sev, &ids[i]);
}

static void arm(int i, long value_ms, long interval_ms)
{
	struct itimerspec its = { { interval_ms / 1000, (interval_ms % 1000) * 1000000 },
				  { value_ms / 1000, (value_ms % 1000) * 1000000 } };
	if (timer_settime(ids[i], 0, &its, NULL))
		fail("timer_settime %d: %s", i, strerror(errno));
}

int main(void)
{
	struct sigaction sa;
	pthread_t th;
	struct itimerval itv;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sig;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	for (int s = SIGRTMIN; s <= SIGRTMIN + 8; s++)
		sigaction(s, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGVTALRM, &sa, NULL);
	sigaction(SIGPROF, &sa, NULL);
	/* the main thread leaves the thread-targeted signal to the worker */
	sigemptyset(&block);
	sigaddset(&block, SIGRTMIN + 6);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	pthread_create(&th, NULL, worker, NULL);
	while (!worker_tid)
		usleep(1000);

	for (int i = 0; i < NT; i++) {
		int notify = i == 5 ? SIGEV_NONE : i == 6 ? SIGEV_THREAD_ID : SIGEV_SIGNAL;
		if (mk(i, notify, SIGRTMIN + i, worker_tid))
			fail("timer_create %d: %s", i, strerror(errno));
	}
	timer_delete(ids[2]);            /* a hole: id 2 is free from now on */
	arm(0, 300000, 300000);          /* far: must still be far after restore */
	arm(1, 400, 400);                /* periodic, fires after restore */
	arm(3, 250000, 0);
	arm(4, 200000, 0);               /* CPU clock: barely moves */
	arm(5, 600000, 0);               /* SIGEV_NONE: only its value tells */
	arm(6, 700, 500);                /* thread-directed, periodic */
	memset(&itv, 0, sizeof(itv));
	itv.it_value.tv_sec = 500;
	itv.it_interval.tv_sec = 500;
	setitimer(ITIMER_REAL, &itv, NULL);
	itv.it_value.tv_sec = 400;
	itv.it_interval.tv_sec = 0;
	setitimer(ITIMER_VIRTUAL, &itv, NULL);
	itv.it_value.tv_sec = 300;
	itv.it_interval.tv_sec = 1;
	setitimer(ITIMER_PROF, &itv, NULL);

	ready();
	wait_check();

	/* every timer id is still ours, with its clock and value */
	for (int i = 0; i < NT; i++) {
		struct itimerspec cur;
		if (i == 2) {
			if (timer_gettime(ids[2], &cur) == 0)
				fail("deleted timer 2 exists again");
			continue;
		}
		if (timer_gettime(ids[i], &cur)) {
			fail("timer %d (id %ld) is gone: %s", i, (long)(intptr_t)ids[i], strerror(errno));
			continue;
		}
		long v = cur.it_value.tv_sec;
		long want[NT] = { 300, 0, 0, 250, 200, 600, 0 };   /* seconds */
		if (want[i] && (v > want[i] || v < want[i] - 60))
			fail("timer %d: %ld s left, expected about %ld", i, v, want[i]);
		if (i == 1 && (cur.it_interval.tv_nsec != 400000000 || cur.it_interval.tv_sec))
			fail("timer 1: interval %ld.%09ld", (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
		if (i == 6 && cur.it_interval.tv_nsec != 500000000)
			fail("timer 6: interval %ld", cur.it_interval.tv_nsec);
	}
	/* the periodic ones fire after restore, the thread-directed one in the worker */
	int before1 = hits[SIGRTMIN + 1], before6 = hits[SIGRTMIN + 6];
	for (int k = 0; k < 150 && (hits[SIGRTMIN + 1] < before1 + 2 || hits[SIGRTMIN + 6] < before6 + 2); k++)
		usleep(20000);
	if (hits[SIGRTMIN + 1] < before1 + 2)
		fail("timer 1 did not fire after restore (%d)", (int)hits[SIGRTMIN + 1]);
	if (hits[SIGRTMIN + 6] < before6 + 2)
		fail("timer 6 did not fire after restore (%d)", (int)hits[SIGRTMIN + 6]);
	if (hit_tid[SIGRTMIN + 6] != worker_tid)
		fail("timer 6 signalled tid %d, not the worker %d", (int)hit_tid[SIGRTMIN + 6], (int)worker_tid);
	if (hits[SIGRTMIN] || hits[SIGRTMIN + 3] || hits[SIGRTMIN + 4] || hits[SIGRTMIN + 5])
		fail("a far timer fired");
	getitimer(ITIMER_REAL, &itv);
	if (itv.it_value.tv_sec > 500 || itv.it_value.tv_sec < 380 || itv.it_interval.tv_sec != 500)
		fail("ITIMER_REAL %ld/%ld", (long)itv.it_value.tv_sec, (long)itv.it_interval.tv_sec);
	getitimer(ITIMER_VIRTUAL, &itv);
	if (itv.it_value.tv_sec > 400 || itv.it_value.tv_sec < 390)
		fail("ITIMER_VIRTUAL %ld", (long)itv.it_value.tv_sec);
	getitimer(ITIMER_PROF, &itv);
	if (itv.it_value.tv_sec > 300 || itv.it_value.tv_sec < 290 || itv.it_interval.tv_sec != 1)
		fail("ITIMER_PROF %ld/%ld", (long)itv.it_value.tv_sec, (long)itv.it_interval.tv_sec);
	note("fired %d %d", (int)hits[SIGRTMIN + 1], (int)hits[SIGRTMIN + 6]);
	spin = 0;
	return finish();
}
