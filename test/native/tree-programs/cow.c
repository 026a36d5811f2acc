/* Copy-on-write since fork: the parent fills MIB MiB with a pattern, then forks CHILDREN
 * children that only read it (each writes one page of its own). On SIGUSR1 each process prints
 * "sum PID S" over the whole buffer. Prints "ready PARENT CHILD1 …" once all exist.
 * usage: cow MIB CHILDREN */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t *buf;
static size_t words;

static void report(void)
{
	uint64_t s = 0;
	for (size_t i = 0; i < words; i++)
		s = s * 31 + buf[i];
	printf("sum %d %llu\n", getpid(), (unsigned long long)s);
}

int main(int argc, char **argv)
{
	size_t bytes = (size_t)atoi(argv[1]) << 20;
	int n = atoi(argv[2]);
	sigset_t usr1, old;
	pid_t kids[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || n > 64)
		return 1;
	words = bytes / 8;
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < words; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = x;
	}
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	for (int i = 0; i < n; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			buf[i * 512] = (uint64_t)getpid();     /* one page of its own */
			break;
		}
	}
	int child = 0;
	for (int i = 0; i < n; i++)
		child |= kids[i] == 0;
	if (!child) {
		printf("ready %d", getpid());
		for (int i = 0; i < n; i++)
			printf(" %d", kids[i]);
		printf("\n");
	}
	for (;;) {
		int sig;
		sigwait(&usr1, &sig);
		report();
	}
}
