/*
 * reaper PROGRAM ARGS...: runs PROGRAM as a child subreaper's child and reaps every process
 * re-parented to it (a copy-on-write twin after its capture ends), printing "reaped PID" on
 * stderr for each one that is not PROGRAM. Exits with PROGRAM's status once PROGRAM is gone.
 * (PID 1 on the test machine reaps nothing, so orphans need a reaper of their own.)
 */
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2 || prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		return 125;
	pid_t child = fork();
	if (child < 0)
		return 125;
	if (child == 0) {
		execv(argv[1], argv + 1);
		_exit(127);
	}
	for (;;) {
		int status;
		pid_t r = waitpid(-1, &status, __WALL);
		if (r < 0)
			return 125;
		if (r == child)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		fprintf(stderr, "reaped %d\n", (int)r);
	}
}
