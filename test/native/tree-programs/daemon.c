/* A daemon the classic way: fork, setsid, fork again, the middle process exits; the daemon's
 * session and group are the PID of a process that is gone. With argument 1 the daemon has a
 * worker child (same session and group). The daemon prints
 * "ready DAEMON worker=W session=S" then "tick n" every 20 ms (n = 1, 2, …); the worker prints
 * nothing; it prints "ready" once the middle process is reaped. The first process waits for the
 * middle one and exits. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int workers = argc > 1 ? atoi(argv[1]) : 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	pid_t mid = fork();
	if (mid < 0)
		return 1;
	if (mid > 0) {
		int st;
		waitpid(mid, &st, 0);
		return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	}
	if (setsid() < 0)
		_exit(2);
	pid_t d = fork();
	if (d < 0)
		_exit(3);
	if (d > 0)
		_exit(0);
	pid_t w = 0;
	if (workers > 0 && (w = fork()) == 0)
		for (;;)
			pause();
	while (kill(getsid(0), 0) == 0) /* the middle process (the session's leader) is gone: reaped */
		usleep(1000);
	printf("ready %d worker=%d session=%d\n", getpid(), w, getsid(0));
	for (unsigned n = 1;; n++) {
		struct timespec ts = { 0, 20 * 1000000L };
		printf("tick %u\n", n);
		nanosleep(&ts, NULL);
	}
}
