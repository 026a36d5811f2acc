/*
 * A cwd that was removed (zdtm cwd01-like): the program makes a directory, enters it and
 * removes it. After restore its cwd must again be a removed directory at the same path, and
 * a relative create must fail as it did before the capture (ENOENT on a removed directory).
 */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include "zdtm.h"

int main(int argc, char **argv)
{
	char before[PATH_MAX], after[PATH_MAX];

	if (argc < 2 || mkdir(argv[1], 0700) < 0 || chdir(argv[1]) < 0 || rmdir(argv[1]) < 0) {
		fail("cannot set up %s: %s", argc > 1 ? argv[1] : "(no path)", strerror(errno));
		return 1;
	}
	if (!getcwd(before, sizeof(before)))
		snprintf(before, sizeof(before), "%s", "?");
	ready();
	wait_check();
	/* getcwd() of a removed directory fails with ENOENT; /proc/self/cwd still names it */
	ssize_t n = readlink("/proc/self/cwd", after, sizeof(after) - 1);
	after[n > 0 ? n : 0] = 0;
	char want[PATH_MAX + 16];
	snprintf(want, sizeof(want), "%s (deleted)", argv[1]);
	if (strcmp(after, want) != 0)
		fail("cwd is %s, want %s", after, want);
	if (open("made-after-restore", O_CREAT | O_WRONLY, 0600) >= 0 || errno != ENOENT)
		fail("a file could be created in the removed cwd (errno %d)", errno);
	struct stat st;
	if (stat(argv[1], &st) == 0)
		fail("%s exists again after restore", argv[1]);
	return finish();
}
