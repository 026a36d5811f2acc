/*
 * SO_PEERCRED of a socketpair made by a child that has exited (CRIU zdtm sock_peercred, which
 * CRIU cannot restore): the child, with other uid/gid, makes a pair in the fd table it shares
 * with us (CLONE_FILES) and exits; both ends report the child's pid, uid and gid. A pair of
 * our own reports us. On each "check" line, after restore: the same credentials, and the pair
 * still carries bytes ("ok" or "FAIL: ..." lines).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; } } while (0)

/* the child's pair lands on these numbers of the fd table we share (not its memory) */
static const int theirs[2] = { 50, 51 };
static int ours[2];

static int child(void *arg)
{
	int p[2];
	if (setgid(4321) || setuid(1234) || socketpair(AF_UNIX, SOCK_STREAM, 0, p))
		return 1;
	if (dup2(p[0], theirs[0]) != theirs[0] || dup2(p[1], theirs[1]) != theirs[1])
		return 1;
	close(p[0]);
	close(p[1]);
	return 0;
}

static void expect_cred(int fd, pid_t pid, uid_t uid, gid_t gid, const char *what)
{
	struct ucred c;
	socklen_t l = sizeof(c);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &l) == 0, "%s: SO_PEERCRED", what);
	CHECK(c.pid == pid && c.uid == uid && c.gid == gid, "%s: SO_PEERCRED pid %d uid %u gid %u, not %d %u %u", what,
	      (int)c.pid, (unsigned)c.uid, (unsigned)c.gid, (int)pid, (unsigned)uid, (unsigned)gid);
}

int main(void)
{
	static char stack[256 * 1024];
	int st;
	char line[64], b[4];

	pid_t pid = clone(child, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || st != 0) {
		printf("FAIL: setup\n");
		return 1;
	}
	socketpair(AF_UNIX, SOCK_DGRAM, 0, ours);
	printf("ready %d\n", (int)pid);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		fails = 0;
		expect_cred(theirs[0], pid, 1234, 4321, "the child's pair, end 0");
		expect_cred(theirs[1], pid, 1234, 4321, "the child's pair, end 1");
		expect_cred(ours[0], getpid(), getuid(), getgid(), "our pair");
		CHECK(write(theirs[0], "abc", 3) == 3 && read(theirs[1], b, 3) == 3 && !memcmp(b, "abc", 3), "the pair carries no bytes");
		if (!fails)
			printf("ok\n");
		fflush(stdout);
	}
	return 0;
}
