/*
 * Test target for incremental and copy-on-write captures.
 *   heap MIB          a heap of MIB MiB, every page filled with data derived from its index
 * stdin commands (one per line), each answered with one line:
 *   touch N SEED      write a new word into N pages chosen from SEED  -> "touched N"
 *   zero FIRST N      madvise(MADV_DONTNEED) pages FIRST..FIRST+N-1  -> "zeroed N"
 *   sum               FNV-1a of the heap                             -> "sum HEX"
 *   spin              start a thread that keeps rewriting a counter array (a sweep writes
 *                     generation g into every slot in order), answers "spinning"
 *   gens              the array's generations as "gens FIRST LAST" (a consistent snapshot has
 *                     every slot g or g-1, non-increasing from the first)
 * At start: "ready HEAPADDR PAGES ARRAYADDR SLOTS".
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SLOTS 262144                    /* 2 MiB of u64 */
static uint8_t *heap;
static size_t pages;
static volatile uint64_t *arr;
static volatile int spinning;

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *spin(void *arg)
{
	(void)arg;
	for (uint64_t g = 1; spinning; g++)
		for (size_t i = 0; i < SLOTS; i++)
			arr[i] = g;
	return NULL;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 16;
	char line[256];
	pthread_t th;

	pages = mib * 256;
	heap = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	arr = mmap(NULL, SLOTS * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED || arr == MAP_FAILED)
		return 1;
	for (size_t p = 0; p < pages; p++) {
		uint64_t s = p * 2654435761u + 1, *w = (uint64_t *)(heap + p * 4096);
		for (int i = 0; i < 512; i++)
			w[i] = (i & 7) ? next_rand(&s) : p;   /* varied, partly compressible */
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %p %zu %p %d\n", (void *)heap, pages, (void *)arr, SLOTS);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long a = 0, b = 0;
		if (sscanf(line, "touch %llu %llu", &a, &b) == 2) {
			uint64_t s = b | 1;
			for (unsigned long long i = 0; i < a; i++) {
				size_t p = next_rand(&s) % pages;
				((uint64_t *)(heap + p * 4096))[(next_rand(&s) % 512)] ^= next_rand(&s) | 1;
			}
			printf("touched %llu\n", a);
		} else if (sscanf(line, "zero %llu %llu", &a, &b) == 2) {
			if (a + b <= pages)
				madvise(heap + a * 4096, b * 4096, MADV_DONTNEED);
			printf("zeroed %llu\n", b);
		} else if (!strncmp(line, "sum", 3)) {
			uint64_t h = 1469598103934665603ull;
			for (size_t i = 0; i < pages * 4096; i += 8) {
				h ^= *(uint64_t *)(heap + i);
				h *= 1099511628211ull;
			}
			printf("sum %016llx\n", (unsigned long long)h);
		} else if (!strncmp(line, "spin", 4)) {
			spinning = 1;
			pthread_create(&th, NULL, spin, NULL);
			while (!arr[SLOTS - 1])
				usleep(1000);
			printf("spinning\n");
		} else if (!strncmp(line, "gens", 4)) {
			printf("gens %llu %llu\n", (unsigned long long)arr[0], (unsigned long long)arr[SLOTS - 1]);
		}
	}
	return 0;
}
