/* Sleeps in pause() with a SIGUSR1 handler; each time pause returns it prints
 * "pause returned R errno E got N" (N: handler runs so far). Argument: MiB of random heap to
 * fill first (a larger image: a restore that takes a while, for a signal to arrive during it).
 * Prints "ready" once the handler is set. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_usr1(int s) { (void)s; got++; }

int main(int argc, char **argv)
{
	size_t words = (argc > 1 ? strtoul(argv[1], NULL, 10) : 0) << 17;
	unsigned long long x = 88172645463325252ull, *heap = malloc(words * 8 + 8);
	struct sigaction sa;

	for (size_t i = 0; i < words; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		heap[i] = x;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	for (;;) {
		int r = pause();
		printf("pause returned %d errno %d got %d\n", r, errno, (int)got);
	}
}
