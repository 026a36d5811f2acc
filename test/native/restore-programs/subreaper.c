/* Runs argv[1..] as a child subreaper (PR_SET_CHILD_SUBREAPER), so that processes a detached
 * restore leaves behind are reaped here and not left as zombies of PID 1; exits when every
 * descendant is gone, with the status of the direct child. When the direct child exits it
 * prints "child-exit STATUS NS" on stderr (NS: ns from fork to its exit; used by
 * bench/restore.mjs to time `restore --detach` to the moment it returns). */
#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t child;
	int st, code = 0;
	struct timespec t0, t1;

	if (argc < 2 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return 127;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	child = fork();
	if (child == 0) {
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	for (;;) {
		pid_t w = wait(&st);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		if (w == child) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			fprintf(stderr, "child-exit %d %lld\n", code,
				(long long)(t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec));
		}
	}
	return code;
}
