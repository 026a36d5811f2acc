/*
 * A deterministic job: hashes a stream of STEPS pseudo-random numbers (FNV-1a over an LCG),
 * pausing PAUSE_US microseconds every 1000 steps, and prints the hash at the end. An
 * interrupted, checkpointed and restored run must print what an uninterrupted one prints.
 *   hashjob STEPS PAUSE_US [FORKS]   FORKS > 0: that many worker processes hash a share each
 *                                     (results returned through pipes) — a job with a tree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t hash_range(uint64_t from, uint64_t to, long pause_us)
{
	uint64_t h = 0xcbf29ce484222325ull, x = 0x9e3779b97f4a7c15ull ^ from;

	for (uint64_t i = from; i < to; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		for (int b = 0; b < 8; b++) {
			h ^= (x >> (8 * b)) & 0xff;
			h *= 0x100000001b3ull;
		}
		if (pause_us > 0 && i % 1000 == 999) {
			struct timespec ts = { pause_us / 1000000, (pause_us % 1000000) * 1000 };
			while (nanosleep(&ts, &ts) != 0)
				;
		}
	}
	return h;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: hashjob STEPS PAUSE_US [FORKS]\n");
		return 2;
	}
	uint64_t steps = strtoull(argv[1], NULL, 10);
	long pause_us = atol(argv[2]);
	int forks = argc > 3 ? atoi(argv[3]) : 0;
	uint64_t h;

	if (forks <= 0) {
		h = hash_range(0, steps, pause_us);
	} else {
		int fds[64][2];
		h = 0;
		for (int w = 0; w < forks && w < 64; w++) {
			pipe(fds[w]);
			if (fork() == 0) {
				uint64_t part = hash_range(steps * w / forks, steps * (w + 1) / forks, pause_us);
				write(fds[w][1], &part, sizeof(part));
				_exit(0);
			}
			close(fds[w][1]);
		}
		for (int w = 0; w < forks && w < 64; w++) {
			uint64_t part = 0;
			if (read(fds[w][0], &part, sizeof(part)) != sizeof(part))
				return 3;
			h = h * 31 + part;
		}
		while (wait(NULL) > 0)
			;
	}
	printf("hash %016llx steps %llu\n", (unsigned long long)h, (unsigned long long)steps);
	return 0;
}
