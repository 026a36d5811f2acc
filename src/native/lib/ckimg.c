/*
 * libckimg: ckimg_checkpoint() (see ckimg.h). A process cannot ptrace its own threads, so a
 * forked ckimg-capture freezes it — and its descendants: the capturer takes the process tree
 * below its target, leaving out itself — while the calling thread waits for that child. The
 * wait is what tells the two worlds apart: the original reaps its capturer; a process restored
 * from the image has no such child (its waitpid fails with ECHILD), so it knows it is the
 * restore. No descriptor is open across the capture (the image must not hold a pipe to a dead
 * helper).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckimg.h"

#ifndef CKIMG_CAPTURE_DEFAULT
#define CKIMG_CAPTURE_DEFAULT "ckimg-capture"
#endif

/* SIGKILL every process below pid (children of each of its threads, depth first); 1 if any. */
static int kill_descendants(pid_t pid, int depth)
{
	char path[64];
	struct dirent *e;
	int any = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (depth > 64 || !(d = opendir(path)))
		return 0;
	while ((e = readdir(d))) {
		char cpath[320];
		FILE *f;
		int child;

		if (e->d_name[0] == '.')
			continue;
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", (int)pid, e->d_name);
		if (!(f = fopen(cpath, "re")))
			continue;
		while (fscanf(f, "%d", &child) == 1) {
			kill_descendants(child, depth + 1);
			kill(child, SIGKILL);
			any = 1;
		}
		fclose(f);
	}
	closedir(d);
	return any;
}

/*
 * CKIMG_EXIT: the processes of the image end with the caller. Its descendants are killed and
 * its own children reaped (theirs go to a subreaper or init), pass after pass until it has no
 * child left, not even a zombie (/proc lists those too): one forked meanwhile is found by the
 * next pass.
 */
static void end_descendants(void)
{
	while (kill_descendants(getpid(), 0))
		while (waitpid(-1, NULL, __WALL) < 0 && errno == EINTR)
			;
}

int ckimg_checkpoint(const char *path, unsigned flags)
{
	const char *bin = getenv("CKIMG_CAPTURE_BIN");
	char pidtext[24];
	int gate[2], st, devnull;
	pid_t child, w;
	char dummy;

	if (!path || !*path || (flags & ~CKIMG_EXIT)) {
		errno = EINVAL;
		return -1;
	}
	if (!bin || !*bin)
		bin = CKIMG_CAPTURE_DEFAULT;
	snprintf(pidtext, sizeof(pidtext), "%d", (int)getpid());
	if (pipe2(gate, O_CLOEXEC) < 0)
		return -1;
	child = fork();
	if (child < 0) {
		int e = errno;
		close(gate[0]);
		close(gate[1]);
		errno = e;
		return -1;
	}
	if (child == 0) {
		/*
		 * the calling process, its threads and its descendants (the capturer leaves itself
		 * out). CKIMG_EXIT: stop-and-copy, the tree frozen until the image is complete — it
		 * ends right after, so the copy-on-write capture's short freeze buys nothing, and its
		 * processes would run on meanwhile.
		 */
		char *argv[] = { (char *)bin, pidtext, "-o", (char *)path, NULL, NULL };
		if (flags & CKIMG_EXIT)
			argv[4] = "--no-cow";
		/* wait until the parent allowed us to trace it (Yama) and closed its end of the gate */
		close(gate[1]);
		while (read(gate[0], &dummy, 1) < 0 && errno == EINTR)
			;
		devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);       /* the capturer's JSON summary */
		execv(bin, argv);
		_exit(127);
	}
	prctl(PR_SET_PTRACER, child, 0, 0, 0);      /* EINVAL without Yama: nothing to allow */
	close(gate[0]);
	close(gate[1]);
	do
		w = waitpid(child, &st, 0);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == ECHILD ? 1 : -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		/* CKIMG_EXIT: the image is durable; nothing of ours may run (or flush) past it */
		if (flags & CKIMG_EXIT) {
			end_descendants();
			_exit(0);
		}
		return 0;
	}
	errno = WIFEXITED(st) && WEXITSTATUS(st) == 127 ? ENOENT : EIO;
	return -1;
}
