/*
 * Areas a forked twin cannot hold as they are: MADV_DONTFORK (absent in a fork),
 * MADV_WIPEONFORK (zero in a fork) and shared anonymous memory (a fork sees later writes).
 * Each is 16 pages, page p of area k filled with byte 'A' + k + p; the shared one is then
 * rewritten (byte 'a' + p) by a child after every "poke" line on stdin, answered "poked".
 * A fourth, MADV_WIPEONFORK too, is never touched (zero in target and twin alike).
 * With an argument "lock", the second area is also mlocked (a fork drops VM_LOCKED: the
 * capture then reads VmFlags from the target while it is frozen).
 * At start: "ready DONTFORK WIPEONFORK SHARED UNTOUCHED".
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGES 16

int main(int argc, char **argv)
{
	char *a[3], *untouched, line[64];
	for (int k = 0; k < 3; k++) {
		a[k] = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE,
			    (k == 2 ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
		if (a[k] == MAP_FAILED)
			return 1;
	}
	untouched = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (untouched == MAP_FAILED)
		return 1;
	if (madvise(a[0], PAGES * 4096, MADV_DONTFORK) || madvise(a[1], PAGES * 4096, MADV_WIPEONFORK) ||
	    madvise(untouched, PAGES * 4096, MADV_WIPEONFORK))
		return 2;
	for (int k = 0; k < 3; k++)
		for (int p = 0; p < PAGES; p++)
			memset(a[k] + p * 4096, 'A' + k + p, 4096);
	if (argc > 1 && !strcmp(argv[1], "lock") && mlock(a[1], PAGES * 4096))
		return 3;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %p %p %p %p\n", (void *)a[0], (void *)a[1], (void *)a[2], (void *)untouched);
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "poke", 4))
			continue;
		for (int p = 0; p < PAGES; p++)
			memset(a[2] + p * 4096, 'a' + p, 4096);
		printf("poked\n");
	}
	return 0;
}
