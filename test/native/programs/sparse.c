/* A 1 GiB MAP_NORESERVE area with a few pages written (and some touched but left zero). */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GIB (1ul << 30)

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	unsigned char *p = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	const unsigned long offs[] = { 0, (1ul << 20) + 4096, 512ul << 20, GIB - 4096 };
	for (int i = 0; i < 4; i++)
		memset(p + offs[i], 0x41 + i, 4096);
	/* 64 pages faulted in and written with zeros: present in pagemap, dropped as zero pages */
	for (int i = 0; i < 64; i++)
		((volatile unsigned char *)p)[(8ul << 20) + (unsigned long)i * 4096] = 0;
	printf("ready base=%p\n", (void *)p);
	for (unsigned long k = 0;; k++) {
		printf("tick %lu\n", k);
		usleep(20000);
	}
}
