/*
 * Test target for copy-on-write capture: a process that would notice a forked twin.
 *   watch MIB
 * Every iteration it rewrites one word in every page of a MIB MiB heap (the new word depends
 * on the old one, so a snapshot mixing two instants restores to a process that computes
 * different sums), then sums the heap, then looks for anything a capture could leave behind:
 *   sigchld   SIGCHLDs received (handler count)
 *   waits     wait(-1), waitpid(-1, WNOHANG) and waitpid(-1, WNOHANG|__WALL) calls that
 *             returned anything but ECHILD
 *   fds       entries of /proc/self/fd (constant when nothing is added)
 *   children  pids listed in /proc/self/task/<tid>/children
 * and prints "iter SEQ SUM sigchld waits fds children". `state` (printed at start) holds
 * { seq, phase } so an image says where the loop was: phase 1 = mutating heap for seq,
 * 2 = summing it (heap final for seq), 0 = between iterations (heap final for seq).
 * At start: "ready PID HEAPADDR PAGES STATEADDR".
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t sigchld;
static volatile uint64_t state[2];       /* seq, phase */

static void on_chld(int sig)
{
	(void)sig;
	sigchld++;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;
	struct dirent *de;
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* pids in /proc/self/task/<tid>/children, over every thread */
static int count_children(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char path[300], buf[4096];
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = 0;
		for (char *p = buf; *p;) {
			while (*p == ' ')
				p++;
			if (*p) {
				n++;
				while (*p && *p != ' ')
					p++;
			}
		}
	}
	closedir(d);
	return n;
}

/* 32-bit FNV-1a over u32 words, recomputed by the test from an image */
static uint32_t heap_sum(const uint32_t *w, size_t words)
{
	uint32_t h = 0;
	for (size_t i = 0; i < words; i++)
		h = (h ^ w[i]) * 16777619u;
	return h;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 8, pages = mib * 256;
	struct sigaction sa;
	unsigned long waits = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	uint32_t *heap = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < pages * 1024; i++)
		heap[i] = (uint32_t)(i * 2654435761u);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d %p %zu %p\n", getpid(), (void *)heap, pages, (void *)state);
	for (uint64_t seq = 1;; seq++) {
		state[1] = 1;
		state[0] = seq;
		for (size_t p = 0; p < pages; p++) {
			uint32_t *w = &heap[p * 1024 + (seq * 7 + p) % 1024];
			*w = *w * 2654435761u + (uint32_t)seq;
		}
		state[1] = 2;
		uint32_t sum = heap_sum(heap, pages * 1024);
		state[1] = 0;
		errno = 0;
		if (wait(NULL) != -1 || errno != ECHILD)
			waits++;
		errno = 0;
		if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
			waits++;
		errno = 0;
		if (waitpid(-1, NULL, WNOHANG | __WALL) != -1 || errno != ECHILD)
			waits++;
		printf("iter %llu %08x %d %lu %d %d\n", (unsigned long long)seq, sum, (int)sigchld, waits,
		       count_dir("/proc/self/fd"), count_children());
		usleep(2000);
	}
}
