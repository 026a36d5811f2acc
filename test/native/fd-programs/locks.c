/*
 * File locks held across capture --kill → restore. argv[1]: a scratch dir. Takes an exclusive
 * flock on a, a POSIX write lock on bytes 10-29 of b, an OFD read lock on all of c; prints
 * "ready"; on "check", a forked child (another process) tries to take conflicting locks and
 * must fail, and the parent prints "ok" or "FAIL: ...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static char pa[4096], pb[4096], pc[4096];
static int a, b, c;

static int child_checks(void)
{
	int bad = 0;
	int fa = open(pa, O_RDWR), fb = open(pb, O_RDWR), fc = open(pc, O_RDWR);
	if (flock(fa, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
		printf("FAIL: the flock on a is not held\n");
		bad++;
	}
	struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	if (fcntl(fb, F_GETLK, &q) || q.l_type != F_WRLCK || q.l_start != 10 || q.l_len != 20 || q.l_pid != getppid()) {
		printf("FAIL: the POSIX lock on b: type %d start %ld len %ld pid %d\n", q.l_type, (long)q.l_start, (long)q.l_len, q.l_pid);
		bad++;
	}
	struct flock o = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	if (fcntl(fc, F_OFD_GETLK, &o) || o.l_type != F_RDLCK) {
		printf("FAIL: the OFD read lock on c is not held (%d)\n", o.l_type);
		bad++;
	}
	struct flock r = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	if (fcntl(fc, F_OFD_SETLK, &r)) {
		printf("FAIL: a second OFD read lock on c is refused: %s\n", strerror(errno));
		bad++;
	}
	fflush(stdout);
	return bad;
}

int main(int argc, char **argv)
{
	char line[64];

	if (argc < 2)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(pa, sizeof(pa), "%s/a", argv[1]);
	snprintf(pb, sizeof(pb), "%s/b", argv[1]);
	snprintf(pc, sizeof(pc), "%s/c", argv[1]);
	a = open(pa, O_RDWR | O_CREAT, 0600);
	b = open(pb, O_RDWR | O_CREAT, 0600);
	c = open(pc, O_RDWR | O_CREAT, 0600);
	struct flock w = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 20 };
	struct flock r = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	if (flock(a, LOCK_EX) || fcntl(b, F_SETLK, &w) || fcntl(c, F_OFD_SETLK, &r))
		return 3;
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "check", 5))
			continue;
		pid_t pid = fork();
		if (pid == 0)
			_exit(child_checks());
		int st;
		waitpid(pid, &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			printf("ok\n");
	}
	return 0;
}
