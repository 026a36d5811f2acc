/*
 * Unix sockets in states between the usual ones (as CRIU's zdtm tests use them). argv[1]: a
 * scratch dir. Sets up, prints "ready", and on each "check" line verifies, printing "ok" or
 * "FAIL: ..." lines:
 *  - a listener (its socket file chmod 0640) with two connections not yet accepted: one whose
 *    client is ours (fd kept, so accept() gives a socket connected to it) and one whose client
 *    was closed (accept() gives a socket at end of file); the client is opened before the
 *    listener, so its fd number is lower;
 *  - a stream pair whose other end was closed after writing (the bytes, then end of file);
 *  - two datagram clients connected to one bound server of ours (messages queued at it);
 *  - a datagram socket bound and connected to itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; } } while (0)

static int client, lsn, orphan, srv, cl1, cl2, self;
static char lpath[4096], spath[4096], selfpath[4096];

static socklen_t addr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "%s", name);
	return sizeof(*a);
}

static void setup(const char *dir)
{
	struct sockaddr_un a;
	int p[2];

	client = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(lpath, sizeof(lpath), "%s/backlog.sock", dir);
	unlink(lpath);
	lsn = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(lsn, (struct sockaddr *)&a, addr(&a, lpath)) || listen(lsn, 5) || chmod(lpath, 0640))
		exit(10);
	if (connect(client, (struct sockaddr *)&a, addr(&a, lpath)))
		exit(11);
	int gone = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(gone, (struct sockaddr *)&a, addr(&a, lpath)))
		exit(12);
	close(gone);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) || write(p[1], "before close", 12) != 12)
		exit(13);
	close(p[1]);
	orphan = p[0];

	snprintf(spath, sizeof(spath), "%s/server.sock", dir);
	unlink(spath);
	srv = socket(AF_UNIX, SOCK_DGRAM, 0);
	cl1 = socket(AF_UNIX, SOCK_DGRAM, 0);
	cl2 = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(srv, (struct sockaddr *)&a, addr(&a, spath)) || connect(cl1, (struct sockaddr *)&a, addr(&a, spath)) ||
	    connect(cl2, (struct sockaddr *)&a, addr(&a, spath)) || send(cl1, "from-1", 6, 0) != 6 || send(cl2, "from-2", 6, 0) != 6)
		exit(14);

	snprintf(selfpath, sizeof(selfpath), "%s/self.sock", dir);
	unlink(selfpath);
	self = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(self, (struct sockaddr *)&a, addr(&a, selfpath)) || connect(self, (struct sockaddr *)&a, addr(&a, selfpath)) ||
	    send(self, "to-me", 5, 0) != 5)
		exit(15);
}

static int recv_is(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	return n == (ssize_t)strlen(want) && !memcmp(buf, want, (size_t)n);
}

static void check(void)
{
	struct stat st;
	char buf[64];

	fails = 0;
	CHECK(stat(lpath, &st) == 0 && (st.st_mode & 07777) == 0640, "socket file mode %o", (unsigned)(st.st_mode & 07777));
	/* the waiting connections, oldest first: ours, then the closed one */
	int s1 = accept4(lsn, NULL, NULL, SOCK_NONBLOCK);
	CHECK(s1 >= 0, "accept (our client): %s", strerror(errno));
	CHECK(s1 >= 0 && write(client, "hello", 5) == 5 && recv_is(s1, "hello"), "the accepted socket is not connected to our client");
	CHECK(s1 >= 0 && write(s1, "back", 4) == 4 && recv_is(client, "back"), "our client does not get what the accepted socket writes");
	int s2 = accept4(lsn, NULL, NULL, SOCK_NONBLOCK);
	CHECK(s2 >= 0, "accept (closed client): %s", strerror(errno));
	CHECK(s2 >= 0 && read(s2, buf, sizeof(buf)) == 0, "the closed client's connection is not at end of file");
	fcntl(lsn, F_SETFL, fcntl(lsn, F_GETFL) | O_NONBLOCK);
	CHECK(accept4(lsn, NULL, NULL, SOCK_NONBLOCK) < 0 && errno == EAGAIN, "a third connection waited");

	CHECK(recv_is(orphan, "before close"), "closed pair: bytes lost");
	CHECK(read(orphan, buf, 1) == 0, "closed pair: no end of file after the bytes");

	CHECK(recv_is(srv, "from-1") && recv_is(srv, "from-2"), "bound server: queued datagrams lost");
	CHECK(send(cl1, "again", 5, 0) == 5 && recv_is(srv, "again"), "client 1 is not connected to the server");
	CHECK(send(cl2, "again2", 6, 0) == 6 && recv_is(srv, "again2"), "client 2 is not connected to the server");

	CHECK(recv_is(self, "to-me"), "self-connected: queued datagram lost");
	CHECK(send(self, "again", 5, 0) == 5 && recv_is(self, "again"), "self-connected socket is not connected to itself");
	if (!fails)
		printf("ok\n");
}

int main(int argc, char **argv)
{
	char line[64];

	if (argc < 2)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup(argv[1]);
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin))
		if (!strncmp(line, "check", 5))
			check();
	return 0;
}
