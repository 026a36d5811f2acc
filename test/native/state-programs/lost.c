/*
 * State that cannot always come back: a parent-death signal (meaningless once `restore
 * --detach` lets the restorer, the new parent, exit) and a POSIX timer whose signal is blocked
 * so that its overrun count grows (the kernel offers no way to set it). The capture names the
 * overrun; restore --detach refuses unless --force. After a restore the program only checks
 * that its timer still runs.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include "zdtm.h"

static void on_sig(int sig)
{
	(void)sig;
}

int main(void)
{
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1 };
	struct itimerspec its = { { 0, 1000000 }, { 0, 1000000 } };
	sigset_t set;
	timer_t id;

	prctl(PR_SET_PDEATHSIG, SIGUSR1);
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGRTMIN + 1, on_sig);
	timer_create(CLOCK_MONOTONIC, &sev, &id);
	timer_settime(id, 0, &its, NULL);
	/* expiries while the signal is blocked and queued count as overruns; the count becomes
	 * visible (timer_getoverrun) once that signal is delivered: unblock once, block again */
	for (int i = 0; i < 100 && timer_getoverrun(id) < 20; i++) {
		usleep(40000);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		sigprocmask(SIG_BLOCK, &set, NULL);
	}
	if (timer_getoverrun(id) < 20)
		fail("overrun only %d", timer_getoverrun(id));
	ready();
	wait_check();
	struct itimerspec cur;
	if (timer_gettime(id, &cur) || cur.it_interval.tv_nsec != 1000000)
		fail("the timer is gone");
	return finish();
}
