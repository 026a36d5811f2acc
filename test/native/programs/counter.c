/* A counter: a global incremented and printed every 20 ms, a heap block and a .bss pattern. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile unsigned long counter;
static char pattern[3 * 4096];

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	unsigned char *heap = malloc(1 << 20);
	for (int i = 0; i < (1 << 20); i++)
		heap[i] = (unsigned char)(i * 7 + 1);
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = "ckimg-pattern-"[i % 14];
	printf("ready counter=%p pattern=%p heap=%p\n", (void *)&counter, (void *)pattern, (void *)heap);
	for (;;) {
		counter++;
		printf("tick %lu\n", counter);
		usleep(20000);
	}
}
