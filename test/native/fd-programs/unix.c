/*
 * Unix sockets with state in flight. argv[1]: a scratch dir. Sets up, prints "ready", and on
 * each "check" line verifies the state after restore, printing "ok" or "FAIL: ..." lines:
 *  - a stream socketpair with bytes half read in both directions;
 *  - a datagram and a seqpacket socketpair with queued messages (boundaries kept);
 *  - a listening stream socket on a path (backlog 7) and one on an abstract name;
 *  - a bound datagram socket with two datagrams queued from an unbound sender;
 *  - a stream socketpair shut down for writing on one end.
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

static int st[2], dg[2], sp[2], lpath, labs_, bdg, shw[2];
static char path[4096], dpath[4096], abs_name[64], gpath[4096];
static int gone_c, gone_s;   /* a connection whose listener was closed and its file unlinked */

static socklen_t addr(struct sockaddr_un *a, const char *name, int abstract)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (abstract) {
		strcpy(a->sun_path + 1, name);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	}
	strcpy(a->sun_path, name);
	return sizeof(*a);
}

static void setup(const char *dir)
{
	struct sockaddr_un a;
	char buf[64];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st))
		exit(10);
	if (write(st[0], "stream-one-two", 14) != 14 || read(st[1], buf, 7) != 7 || write(st[1], "back", 4) != 4)
		exit(11);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) || send(dg[0], "dgram-A", 7, 0) != 7 || send(dg[0], "dgram-BB", 8, 0) != 8)
		exit(12);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) || send(sp[1], "seq-1", 5, 0) != 5 || send(sp[1], "seq-22", 6, 0) != 6)
		exit(13);

	snprintf(path, sizeof(path), "%s/listen.sock", dir);
	unlink(path);
	lpath = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(lpath, (struct sockaddr *)&a, addr(&a, path, 0)) || listen(lpath, 7))
		exit(14);
	snprintf(abs_name, sizeof(abs_name), "ckimg-test-%d", getpid());
	labs_ = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(labs_, (struct sockaddr *)&a, addr(&a, abs_name, 1)) || listen(labs_, 3))
		exit(15);

	snprintf(dpath, sizeof(dpath), "%s/dgram.sock", dir);
	unlink(dpath);
	bdg = socket(AF_UNIX, SOCK_DGRAM, 0);
	socklen_t l = addr(&a, dpath, 0);
	if (bind(bdg, (struct sockaddr *)&a, l))
		exit(16);
	int snd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sendto(snd, "to-bound-1", 10, 0, (struct sockaddr *)&a, l) != 10 || sendto(snd, "to-bound-22", 11, 0, (struct sockaddr *)&a, l) != 11)
		exit(17);
	close(snd);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, shw) || write(shw[0], "last words", 10) != 10 || shutdown(shw[0], SHUT_WR))
		exit(18);

	/* a server that unlinks its socket file once its client is connected (zdtm deleted_unix_sock) */
	snprintf(gpath, sizeof(gpath), "%s/gone.sock", dir);
	unlink(gpath);
	int lg = socket(AF_UNIX, SOCK_STREAM, 0);
	gone_c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(lg, (struct sockaddr *)&a, addr(&a, gpath, 0)) || listen(lg, 1) ||
	    connect(gone_c, (struct sockaddr *)&a, addr(&a, gpath, 0)) || (gone_s = accept(lg, NULL, NULL)) < 0)
		exit(19);
	close(lg);
	if (unlink(gpath) || write(gone_c, "across", 6) != 6)
		exit(20);
}

static int recv_is(int fd, const char *want, int flags)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), flags | MSG_DONTWAIT);
	return n == (ssize_t)strlen(want) && !memcmp(buf, want, (size_t)n);
}

static void check(void)
{
	struct sockaddr_un a;
	char buf[256];
	int v;
	socklen_t l;

	fails = 0;
	CHECK(recv_is(st[1], "one-two", 0), "stream: the unread rest of the bytes");
	CHECK(recv_is(st[0], "back", 0), "stream: the bytes the other way");
	CHECK(write(st[0], "more", 4) == 4 && recv_is(st[1], "more", 0), "stream pair not connected");
	CHECK(recv_is(dg[1], "dgram-A", 0) && recv_is(dg[1], "dgram-BB", 0), "dgram pair: messages or boundaries lost");
	CHECK(recv_is(sp[0], "seq-1", 0) && recv_is(sp[0], "seq-22", 0), "seqpacket pair: messages lost");
	l = sizeof(v);
	CHECK(getsockopt(sp[0], SOL_SOCKET, SO_TYPE, &v, &l) == 0 && v == SOCK_SEQPACKET, "seqpacket type %d", v);

	l = sizeof(v);
	CHECK(getsockopt(lpath, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) == 0 && v == 1, "path socket not listening");
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&a, addr(&a, path, 0)) == 0, "connect to %s: %s", path, strerror(errno));
	int s = accept(lpath, NULL, NULL);
	CHECK(s >= 0 && write(c, "hi", 2) == 2 && read(s, buf, 2) == 2, "accepted connection does not carry data");
	close(c);
	close(s);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&a, addr(&a, abs_name, 1)) == 0, "connect to the abstract name: %s", strerror(errno));
	close(c);

	CHECK(recv_is(bdg, "to-bound-1", 0) && recv_is(bdg, "to-bound-22", 0), "bound dgram: queued datagrams lost");
	int snd = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK(sendto(snd, "x", 1, 0, (struct sockaddr *)&a, addr(&a, dpath, 0)) == 1 && recv_is(bdg, "x", 0), "bound dgram not bound to its path");
	close(snd);

	CHECK(recv_is(shw[1], "last words", 0), "shut-down pair: bytes lost");
	CHECK(read(shw[1], buf, 1) == 0, "shut-down pair: no end of file after the bytes");

	CHECK(recv_is(gone_s, "across", 0), "connection of an unlinked listener: bytes lost");
	CHECK(write(gone_s, "back", 4) == 4 && recv_is(gone_c, "back", 0), "connection of an unlinked listener: not connected");
	l = sizeof(a);
	memset(&a, 0, sizeof(a));
	CHECK(getsockname(gone_s, (struct sockaddr *)&a, &l) == 0 && !strcmp(a.sun_path, gpath), "accepted socket's name: '%s'", a.sun_path);
	struct stat sb;
	CHECK(lstat(gpath, &sb) < 0 && errno == ENOENT, "%s exists again (it was unlinked before the capture)", gpath);
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
