/*
 * A deterministic job: hashes a stream of STEPS pseudo-random numbers (FNV-1a over an LCG),
 * pausing PAUSE_US microseconds every 1000 steps, and prints the hash at the end. An
 * interrupted, checkpointed and restored run must print what an uninterrupted one prints.
 *   hashjob STEPS PAUSE_US [FORKS [MEM_MIB]]
 *     FORKS > 0: that many worker processes hash a share each (results returned through pipes)
 *     — a job with a tree. MEM_MIB > 0 (benchmarks): a table of that size, filled with
 *     pseudo-random words at the start, is part of the state: each step mixes one word into
 *     the hash and writes the hash back, walking the table in order (8 bytes a step: about
 *     800 KB/s at 10 ms pauses per 1000 steps — a sliding working set, as a simulation has).
 *   HASHJOB_RUSAGE=1 (benchmarks): "rusage USER_US SYS_US MINFLT" on stderr at the end — this
 *     process's own CPU time and minor faults (getrusage), less sensitive to the machine's load
 *     than the wall time (a checkpoint's copy-on-write or dirty-page tracking costs the job one
 *     minor fault on the first write to each page after it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t *table;
static uint64_t table_words;

static uint64_t hash_range(uint64_t from, uint64_t to, long pause_us)
{
	uint64_t h = 0xcbf29ce484222325ull, x = 0x9e3779b97f4a7c15ull ^ from;

	for (uint64_t i = from; i < to; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		if (table_words) {
			uint64_t *w = &table[i % table_words];
			x ^= *w;
			*w = h;
		}
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
	long mem_mib = argc > 4 ? atol(argv[4]) : 0;
	uint64_t h;

	if (mem_mib > 0) {
		uint64_t r = 0x243f6a8885a308d3ull;
		table_words = (uint64_t)mem_mib << 17;
		table = malloc(table_words * sizeof(*table));
		if (!table)
			return 4;
		for (uint64_t i = 0; i < table_words; i++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			table[i] = r;
		}
	}

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
	if (getenv("HASHJOB_RUSAGE")) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		fprintf(stderr, "rusage %lld %lld %ld\n", (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
			(long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_minflt);
	}
	return 0;
}
