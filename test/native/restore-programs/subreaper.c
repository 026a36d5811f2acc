/* Runs argv[1..] as a child subreaper (PR_SET_CHILD_SUBREAPER), so that processes a detached
 * restore leaves behind are reaped here and not left as zombies of PID 1; exits when every
 * descendant is gone, with the status of the direct child. */
#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t child;
	int st, code = 0;

	if (argc < 2 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return 127;
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
		if (w == child)
			code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	return code;
}
