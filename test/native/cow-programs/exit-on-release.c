/*
 * Holds a MADV_DONTFORK area (16 pages, page p filled with 'D' + p), whose VmFlags a
 * copy-on-write capture reads from the running process after the release, and 64 MiB of heap
 * (the twin's smaps take a moment). "ready AREA" at start; the test kills it the instant the
 * capture lets it go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
	char *a = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || madvise(a, 16 * 4096, MADV_DONTFORK))
		return 1;
	for (int p = 0; p < 16; p++)
		memset(a + p * 4096, 'D' + p, 4096);
	size_t heap = 64u << 20;
	char *h = malloc(heap);
	if (!h)
		return 1;
	memset(h, 1, heap);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %p\n", (void *)a);
	for (;;)
		pause();
}
