/*
 * libckimg example: count to LIMIT, checkpointing into IMAGE at step AT. Run it once (it
 * prints "checkpoint written" and goes on), then `ckimg restore IMAGE`: the restored process
 * prints "restored at step AT" and counts on from there.
 *   cc -Ibuild/include counter.c build/libckimg.a -o counter
 *   ./counter IMAGE AT LIMIT [exit]     ("exit": CKIMG_EXIT, the process ends at the checkpoint)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ckimg.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: counter IMAGE AT LIMIT [exit]\n");
		return 2;
	}
	long at = atol(argv[2]), limit = atol(argv[3]);
	unsigned flags = argc > 4 && !strcmp(argv[4], "exit") ? CKIMG_EXIT : 0;
	unsigned long sum = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 0; i < limit; i++) {
		if (i == at) {
			int r = ckimg_checkpoint(argv[1], flags);
			if (r < 0) {
				perror("ckimg_checkpoint");
				return 1;
			}
			printf(r == 1 ? "restored at step %ld\n" : "checkpoint written at step %ld\n", i);
		}
		sum = sum * 31 + (unsigned long)i;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	printf("sum %lu\n", sum);
	return 0;
}
