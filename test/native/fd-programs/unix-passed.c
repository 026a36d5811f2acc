/*
 * Files in flight (SCM_RIGHTS) that restore sends again. argv[1]: a scratch dir. Sets up,
 * prints "ready", and on each "check" line receives the messages and verifies the files they
 * carry, printing "ok" or "FAIL: ..." lines:
 *  - a datagram pair: message 1 carries the read end of a pipe the process closed (its write
 *    end is still held: the received end reads what is written to it, and the bytes that
 *    waited in the pipe); message 2 carries no file; message 3 carries two files: the same
 *    pipe's read end again and its (held) write end;
 *  - a stream pair: "head", then "tail" with two files (a read gets "headtail" and the files,
 *    as before the capture: a stream read glues the bytes and stops after the files): one is a regular file opened, seeked to 5
 *    and closed (it comes back at offset 5), and one of the process's own fds (the same open
 *    file description: a seek on one moves the other).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; } } while (0)

static int dg[2], st[2], pw, own;
static char dir[4096];

static int send_with(int sk, const char *data, const int *fds, int n)
{
	union { struct cmsghdr h; char b[CMSG_SPACE(4 * sizeof(int))]; } ctl;
	struct iovec iov = { (void *)data, strlen(data) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	}
	return sendmsg(sk, &mh, 0) == (ssize_t)strlen(data) ? 0 : -1;
}

/* One message: its bytes (NUL-terminated) and up to 4 files; returns the byte count. */
static int recv_with(int sk, char *data, size_t len, int *fds, int *n)
{
	union { struct cmsghdr h; char b[CMSG_SPACE(4 * sizeof(int))]; } ctl;
	struct iovec iov = { data, len - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
	ssize_t r = recvmsg(sk, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	*n = 0;
	data[r > 0 ? r : 0] = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); r >= 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds + *n, CMSG_DATA(cm), k * sizeof(int));
			*n += k;
		}
	return (int)r;
}

static void setup(void)
{
	int p[2], f, fds[2];
	char path[4200];

	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) || socketpair(AF_UNIX, SOCK_STREAM, 0, st) || pipe(p))
		exit(1);
	/* message 1: the pipe's read end, closed here; bytes wait in the pipe */
	if (write(p[1], "waiting", 7) != 7 || send_with(dg[0], "pipe", &p[0], 1))
		exit(1);
	pw = p[1];
	if (send_with(dg[0], "plain", NULL, 0))
		exit(1);
	/* message 3: the read end again and the write end the process keeps */
	fds[0] = p[0];
	fds[1] = p[1];
	if (send_with(dg[0], "two", fds, 2))
		exit(1);
	close(p[0]);

	snprintf(path, sizeof(path), "%s/passed.txt", dir);
	f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || write(f, "0123456789", 10) != 10 || lseek(f, 5, SEEK_SET) != 5)
		exit(1);
	snprintf(path, sizeof(path), "%s/own.txt", dir);
	own = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (own < 0 || write(own, "abcdefgh", 8) != 8 || lseek(own, 2, SEEK_SET) != 2)
		exit(1);
	fds[0] = f;
	fds[1] = own;
	if (write(st[0], "head", 4) != 4 || send_with(st[0], "tail", fds, 2))
		exit(1);
	close(f);
}

static void check(void)
{
	char buf[64];
	int fds[4], n, r;

	fails = 0;
	r = recv_with(dg[1], buf, sizeof(buf), fds, &n);
	CHECK(r == 4 && !strcmp(buf, "pipe") && n == 1, "dgram message 1: %d bytes '%s', %d files", r, buf, n);
	if (n == 1) {
		char in[16] = { 0 };
		CHECK(read(fds[0], in, 7) == 7 && !memcmp(in, "waiting", 7), "passed pipe end: waiting bytes '%s'", in);
		CHECK(write(pw, "more", 4) == 4 && read(fds[0], in, 4) == 4 && !memcmp(in, "more", 4),
		      "passed pipe end is not the read end of the held pipe");
		close(fds[0]);
	}
	r = recv_with(dg[1], buf, sizeof(buf), fds, &n);
	CHECK(r == 5 && !strcmp(buf, "plain") && n == 0, "dgram message 2: %d bytes '%s', %d files", r, buf, n);
	r = recv_with(dg[1], buf, sizeof(buf), fds, &n);
	CHECK(r == 3 && !strcmp(buf, "two") && n == 2, "dgram message 3: %d bytes '%s', %d files", r, buf, n);
	if (n == 2) {
		char in[8] = { 0 };
		CHECK(write(fds[1], "x", 1) == 1 && read(fds[0], in, 1) == 1 && in[0] == 'x',
		      "the two passed ends are not one pipe");
		CHECK(fcntl(fds[1], F_GETFL) >= 0 && (fcntl(fds[1], F_GETFL) & O_ACCMODE) == O_WRONLY, "second file is not a write end");
		close(fds[0]);
		close(fds[1]);
	}
	r = recv_with(st[1], buf, sizeof(buf), fds, &n);
	CHECK(r == 8 && !strcmp(buf, "headtail") && n == 2, "stream: %d bytes '%s', %d files", r, buf, n);
	if (n == 2) {
		char in[8] = { 0 };
		CHECK(read(fds[0], in, 5) == 5 && !memcmp(in, "56789", 5), "passed file at offset 5: '%s'", in);
		CHECK(lseek(fds[1], 0, SEEK_CUR) == 2, "passed own fd: offset %ld", (long)lseek(fds[1], 0, SEEK_CUR));
		lseek(fds[1], 6, SEEK_SET);
		CHECK(lseek(own, 0, SEEK_CUR) == 6, "passed own fd is another description (offset %ld)",
		      (long)lseek(own, 0, SEEK_CUR));
		close(fds[0]);
		close(fds[1]);
	}
	if (!fails)
		printf("ok\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	char line[64];

	if (argc < 2)
		return 2;
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	setup();
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin))
		if (!strncmp(line, "check", 5))
			check();
	return 0;
}
