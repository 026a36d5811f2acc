/* Shared memory between a parent and its child, for tree capture/restore tests:
 *   A = mmap(MAP_SHARED|MAP_ANONYMOUS, 32 pages), Z = mmap of /dev/zero (MAP_SHARED, 4 pages),
 *   M = a memfd ("shared-note", 2 pages) mapped MAP_SHARED, its fd kept open in both.
 * Before the fork the parent fills pages 8-15 of A with 0xab; after it the child writes
 * "child wrote this" at A + 4096. Then they play ping-pong through both areas: the parent
 * moves A's counter from even to odd once Z's and M's counters equal it, the child moves it back
 * to even and copies it to Z and M. The parent prints "ping N" for each move (and "bad ..." if a byte it
 * expects is not there), so the output goes on only while both areas are one memory for both.
 * The parent prints "ready PID child=C a=ADDR z=ADDR" first. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0)
		;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	char *a = mmap(NULL, 32 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int zfd = open("/dev/zero", O_RDWR);
	char *z = zfd < 0 ? MAP_FAILED : mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, zfd, 0);
	if (a == MAP_FAILED || z == MAP_FAILED)
		return 1;
	close(zfd);
	int mfd = memfd_create("shared-note", 0);
	char *mm = mfd < 0 || ftruncate(mfd, 2 * 4096) < 0 ? MAP_FAILED :
		   mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (mm == MAP_FAILED)
		return 1;
	volatile long *an = (volatile long *)a, *zn = (volatile long *)z, *mn = (volatile long *)mm;
	memset(a + 8 * 4096, 0xab, 8 * 4096);
	int go[2];
	if (pipe(go) < 0)
		return 1;
	pid_t child = fork();
	if (child == 0) {
		strcpy(a + 4096, "child wrote this");
		if (write(go[1], "x", 1) != 1)
			_exit(1);
		for (;;) {
			if (*an % 2 == 1) {
				long n = *an + 1;
				*an = n;
				*zn = n;
				*mn = n;
			}
			nap(5);
		}
	}
	char x;
	if (read(go[0], &x, 1) != 1)
		return 1;
	printf("ready %d child=%d a=%p z=%p m=%p\n", getpid(), child, (void *)a, (void *)z, (void *)mm);
	for (;;) {
		if (*an % 2 == 0 && *zn == *an && *mn == *an) {
			long n = *an + 1;
			*an = n;
			if (strcmp(a + 4096, "child wrote this") != 0)
				printf("bad note\n");
			for (int i = 8 * 4096; i < 16 * 4096; i += 512)
				if ((unsigned char)a[i] != 0xab)
					printf("bad fill at %d\n", i);
			printf("ping %ld\n", n);
		}
		nap(5);
	}
}
