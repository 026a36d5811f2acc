/*
 * Pipes, FIFOs and shared open file descriptions with state in flight. argv[1]: a scratch dir.
 * Sets everything up, prints "ready", then waits on stdin; each "check" line makes it verify
 * that the state is what it set up (after capture --kill + restore) and print "ok" or "FAIL: ...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; } } while (0)

static int p_fl[2], big_fl[2];
static int p[2], rd_dup, big[2], fifo_fd, f1, f1_dup, fapp, half_rd;
static char fifo_path[4096], file_path[4096], app_path[4096];
static const char msg[] = "hello through the pipe";
static char bigdata[100000];

static int same_file(int a, int b)
{
	return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0;
}

static void setup(const char *dir)
{
	if (pipe(p) || write(p[1], msg, sizeof(msg)) != sizeof(msg))
		exit(10);
	rd_dup = dup(p[0]);
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	if (fcntl(p[1], F_SETPIPE_SZ, 256 * 1024) < 0)
		exit(11);
	fcntl(p[0], F_SETOWN, getpid());
	fcntl(p[0], F_SETSIG, SIGUSR2);
	p_fl[0] = fcntl(p[0], F_GETFL);
	p_fl[1] = fcntl(p[1], F_GETFL);

	/* a big pipe, nearly full: more than one 64 KiB default buffer */
	if (pipe2(big, O_NONBLOCK) || fcntl(big[1], F_SETPIPE_SZ, 128 * 1024) < 0)
		exit(12);
	for (size_t i = 0; i < sizeof(bigdata); i++)
		bigdata[i] = (char)(i * 7 + i / 251);
	if (write(big[1], bigdata, sizeof(bigdata)) != sizeof(bigdata))
		exit(13);
	big_fl[0] = fcntl(big[0], F_GETFL);
	big_fl[1] = fcntl(big[1], F_GETFL);
	/* a pipe whose write end is closed: the reader gets its bytes, then end of file */
	int h[2];
	if (pipe(h) || write(h[1], "tail", 4) != 4)
		exit(14);
	close(h[1]);
	half_rd = h[0];

	snprintf(fifo_path, sizeof(fifo_path), "%s/fifo", dir);
	unlink(fifo_path);
	if (mkfifo(fifo_path, 0600))
		exit(15);
	fifo_fd = open(fifo_path, O_RDWR | O_NONBLOCK);
	if (fifo_fd < 0 || write(fifo_fd, "fifo bytes", 10) != 10)
		exit(16);

	snprintf(file_path, sizeof(file_path), "%s/shared.txt", dir);
	f1 = open(file_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f1 < 0 || write(f1, "0123456789", 10) != 10)
		exit(17);
	f1_dup = dup(f1);
	lseek(f1, 4, SEEK_SET);

	snprintf(app_path, sizeof(app_path), "%s/append.txt", dir);
	fapp = open(app_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (fapp < 0 || write(fapp, "abc", 3) != 3)
		exit(18);
}

static void check(void)
{
	char buf[200000];
	ssize_t n;
	struct f_owner_ex ow;

	fails = 0;
	/* the dup'ed read end and the original are one description again */
	CHECK(same_file(p[0], rd_dup), "pipe read end and its dup are not one open file description");
	CHECK(fcntl(p[0], F_GETFD) == FD_CLOEXEC, "FD_CLOEXEC of the read end lost");
	CHECK(fcntl(rd_dup, F_GETFD) == 0, "the dup got FD_CLOEXEC");
	CHECK(fcntl(p[1], F_GETFL) & O_NONBLOCK, "O_NONBLOCK of the write end lost");
	/* exactly pipe(2)'s status flags: no O_LARGEFILE, which a reopen through /proc would add */
	for (int e = 0; e < 2; e++) {
		CHECK(fcntl(p[e], F_GETFL) == p_fl[e], "pipe end %d: F_GETFL %#o, was %#o", e, fcntl(p[e], F_GETFL), p_fl[e]);
		CHECK(fcntl(big[e], F_GETFL) == big_fl[e], "big pipe end %d: F_GETFL %#o, was %#o", e, fcntl(big[e], F_GETFL), big_fl[e]);
	}
	CHECK(fcntl(p[1], F_GETPIPE_SZ) == 256 * 1024, "pipe size %d, expected 262144", fcntl(p[1], F_GETPIPE_SZ));
	CHECK(fcntl(p[0], F_GETOWN_EX, &ow) == 0 && ow.pid == getpid(), "F_SETOWN lost (%d)", ow.pid);
	CHECK(fcntl(p[0], F_GETSIG) == SIGUSR2, "F_SETSIG lost (%d)", fcntl(p[0], F_GETSIG));
	n = read(rd_dup, buf, sizeof(buf));
	CHECK(n == sizeof(msg) && !memcmp(buf, msg, sizeof(msg)), "pipe bytes: got %zd", n);
	/* the two ends are connected */
	CHECK(write(p[1], "x", 1) == 1 && read(p[0], buf, 1) == 1 && buf[0] == 'x', "pipe ends not connected");

	size_t got = 0;
	while (got < sizeof(bigdata) && (n = read(big[0], buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	CHECK(got == sizeof(bigdata) && !memcmp(buf, bigdata, sizeof(bigdata)), "big pipe: %zu bytes back", got);
	CHECK(fcntl(big[0], F_GETPIPE_SZ) == 128 * 1024, "big pipe size %d", fcntl(big[0], F_GETPIPE_SZ));

	n = read(half_rd, buf, sizeof(buf));
	CHECK(n == 4 && !memcmp(buf, "tail", 4), "half pipe bytes: %zd", n);
	CHECK(read(half_rd, buf, 1) == 0, "half pipe: no end of file after its bytes");

	n = read(fifo_fd, buf, sizeof(buf));
	CHECK(n == 10 && !memcmp(buf, "fifo bytes", 10), "FIFO bytes: got %zd", n);

	/* dup'ed regular file: one offset */
	CHECK(same_file(f1, f1_dup), "file and its dup are not one description");
	CHECK(lseek(f1_dup, 0, SEEK_CUR) == 4, "shared offset %ld", (long)lseek(f1_dup, 0, SEEK_CUR));
	if (write(f1, "ab", 2) == 2)
		CHECK(lseek(f1_dup, 0, SEEK_CUR) == 6, "offset not shared after a write");
	CHECK(fcntl(fapp, F_GETFL) & O_APPEND, "O_APPEND lost");
	lseek(fapp, 0, SEEK_SET);
	CHECK(write(fapp, "d", 1) == 1, "append write");
	struct stat st;
	CHECK(stat(app_path, &st) == 0 && st.st_size == 4, "O_APPEND write did not append");
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
