/* Unix socket pairs between a parent and its child (made before the fork, each side closing
 * the other's end, as a parent and its helper child do), with messages in flight both ways.
 *   parent: prints "ready PARENT CHILD", then waits for a "check" line on stdin; then tells the
 *           child to go (a pipe), reads what the child had queued (message boundaries kept),
 *           the child's answer, then end of file (nothing else holds the child's end), checks
 *           its end's SO_SNDBUF and SO_PASSCRED, and prints "ok" or "FAIL: ..." lines.
 *   child:  on "go", reads what the parent had queued, answers on the stream pair, prints
 *           "child ok" or "FAIL: ..." lines, closes its ends and exits.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const int types[3] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
static const char *const tname[3] = { "stream", "dgram", "seqpacket" };
static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; } } while (0)

/* Two messages `who`-1 and `who`-2 went on each pair: a stream reads them as one run of
 * bytes, the others one message per read. */
static void read_queued(int sk[3], const char *who)
{
	char want1[16], want2[16], buf[64];
	snprintf(want1, sizeof(want1), "%s-1", who);
	snprintf(want2, sizeof(want2), "%s-2", who);
	for (int t = 0; t < 3; t++) {
		ssize_t n = recv(sk[t], buf, sizeof(buf) - 1, MSG_DONTWAIT);
		buf[n > 0 ? n : 0] = 0;
		if (types[t] == SOCK_STREAM) {
			char both[40];
			snprintf(both, sizeof(both), "%s%s", want1, want2);
			CHECK(n > 0 && strcmp(buf, both) == 0, "%s: %s's bytes: got %zd '%s'", tname[t], who, n, buf);
			continue;
		}
		CHECK(n > 0 && strcmp(buf, want1) == 0, "%s: %s's first message: got %zd '%s'", tname[t], who, n, buf);
		n = recv(sk[t], buf, sizeof(buf) - 1, MSG_DONTWAIT);
		buf[n > 0 ? n : 0] = 0;
		CHECK(n > 0 && strcmp(buf, want2) == 0, "%s: %s's second message: got %zd '%s'", tname[t], who, n, buf);
	}
}

static void send_two(int sk[3], const char *who)
{
	char m[16];
	for (int t = 0; t < 3; t++)
		for (int k = 1; k <= 2; k++) {
			snprintf(m, sizeof(m), "%s-%d", who, k);
			if (send(sk[t], m, strlen(m), 0) != (ssize_t)strlen(m))
				exit(3);
		}
}

int main(void)
{
	int pair[3][2], mine[3], theirs[3], go[2];
	char line[64], c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int t = 0; t < 3; t++)
		if (socketpair(AF_UNIX, types[t], 0, pair[t]) < 0)
			return 1;
	if (pipe(go) < 0)
		return 1;
	pid_t child = fork();
	if (child == 0) {
		for (int t = 0; t < 3; t++) {
			close(pair[t][0]);
			theirs[t] = pair[t][1];
		}
		close(go[1]);
		send_two(theirs, "child");
		if (read(go[0], &c, 1) != 1)
			return 4;
		read_queued(theirs, "parent");
		CHECK(send(theirs[0], "answer", 6, 0) == 6, "answer");
		if (!fails)
			printf("child ok\n");
		for (int t = 0; t < 3; t++)
			close(theirs[t]);
		return 0;
	}
	for (int t = 0; t < 3; t++) {
		close(pair[t][1]);
		mine[t] = pair[t][0];
	}
	close(go[0]);
	int sndbuf = 48 * 1024, one = 1;
	setsockopt(mine[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(mine[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	socklen_t sl = sizeof(sndbuf);
	getsockopt(mine[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl);
	send_two(mine, "parent");
	/* the child's messages are queued before we say ready */
	for (int t = 0; t < 3; t++) {
		char b[16];
		while (recv(mine[t], b, sizeof(b), MSG_PEEK | (types[t] == SOCK_STREAM ? MSG_WAITALL : 0)) <
		       (types[t] == SOCK_STREAM ? 14 : 7))
			usleep(1000);
	}
	printf("ready %d %d\n", (int)getpid(), (int)child);
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "check", 5))
			continue;
		fails = 0;
		read_queued(mine, "child");
		if (write(go[1], "g", 1) != 1)
			return 5;
		char buf[16] = { 0 };
		ssize_t n = recv(mine[0], buf, 6, MSG_WAITALL);
		CHECK(n == 6 && memcmp(buf, "answer", 6) == 0, "the child's answer: %zd '%s'", n, buf);
		n = recv(mine[0], buf, sizeof(buf), 0);
		CHECK(n == 0, "no end of file once the child closed its end (%zd)", n);
		int v = 0;
		sl = sizeof(v);
		CHECK(getsockopt(mine[0], SOL_SOCKET, SO_SNDBUF, &v, &sl) == 0 && v == sndbuf, "SO_SNDBUF %d, was %d", v, sndbuf);
		sl = sizeof(v);
		CHECK(getsockopt(mine[1], SOL_SOCKET, SO_PASSCRED, &v, &sl) == 0 && v == 1, "SO_PASSCRED lost");
		int st;
		CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
		if (!fails)
			printf("ok\n");
	}
	return 0;
}
