/*
 * Namespace files: fds on /proc/self/ns/net and /proc/self/ns/uts. With argv[1] "gone" (root
 * only), also an fd on a UTS namespace nothing else is in: made with unshare, opened, left
 * with setns — after capture --kill only the image remembers it.
 * Prints "ready", then on each "check" line verifies that each fd is its namespace again
 * (same inode, same link text) and prints "ok" or "FAIL: ...".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; } } while (0)

static int fd[3], nfd;
static ino_t ino[3];
static char link_text[3][64];

static void keep(int f)
{
	struct stat st;
	char p[64];
	fstat(f, &st);
	fd[nfd] = f;
	ino[nfd] = st.st_ino;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", f);
	ssize_t n = readlink(p, link_text[nfd], sizeof(link_text[nfd]) - 1);
	link_text[nfd][n > 0 ? n : 0] = 0;
	nfd++;
}

int main(int argc, char **argv)
{
	char line[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	keep(open("/proc/self/ns/net", O_RDONLY));
	keep(open("/proc/self/ns/uts", O_RDONLY));
	if (argc > 1 && !strcmp(argv[1], "gone")) {
		if (unshare(CLONE_NEWUTS) < 0)
			return 2;
		keep(open("/proc/self/ns/uts", O_RDONLY));
		if (setns(fd[1], CLONE_NEWUTS) < 0)
			return 3;
	}
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "check", 5))
			continue;
		fails = 0;
		for (int i = 0; i < nfd; i++) {
			struct stat st;
			char p[64], now[64];
			snprintf(p, sizeof(p), "/proc/self/fd/%d", fd[i]);
			ssize_t n = readlink(p, now, sizeof(now) - 1);
			now[n > 0 ? n : 0] = 0;
			CHECK(fstat(fd[i], &st) == 0 && st.st_ino == ino[i], "fd %d: inode %lu, was %lu", fd[i], (unsigned long)st.st_ino, (unsigned long)ino[i]);
			CHECK(!strcmp(now, link_text[i]), "fd %d: %s, was %s", fd[i], now, link_text[i]);
		}
		if (!fails)
			printf("ok\n");
	}
	return 0;
}
