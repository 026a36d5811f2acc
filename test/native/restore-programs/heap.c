/* Keeps a large heap (argv[1] MiB, mmap'd by malloc) of pseudo-random words and a growing
 * brk heap (a linked list of small blocks), and checks both every 100 ms:
 *   "ok ITER SUM NODES" or "BAD ..." */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct node { struct node *next; uint64_t v; char pad[80]; };

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 64, n = mib << 17;  /* u64 words */
	uint64_t *big = malloc(n * 8), x = 88172645463325252ull, sum = 0, want;
	struct node *head = NULL;
	uint64_t nodes = 0, nsum = 0;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		big[i] = (i % 7 == 0) ? 0 : x;      /* some zero words, mostly noise */
		sum += big[i] * (i | 1);
	}
	want = sum;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (uint64_t it = 0;; it++) {
		for (int k = 0; k < 16; k++) {      /* grow the brk heap a little each round */
			struct node *nd = malloc(sizeof(*nd));
			nd->v = nodes * 2654435761u;
			nd->next = head;
			head = nd;
			nsum += nd->v;
			nodes++;
		}
		uint64_t s = 0, c = 0, ls = 0;
		for (size_t i = 0; i < n; i++)
			s += big[i] * (i | 1);
		for (struct node *p = head; p; p = p->next) {
			ls += p->v;
			c++;
		}
		if (s != want || c != nodes || ls != nsum)
			printf("BAD %llu %llx %llx %llu %llu\n", (unsigned long long)it, (unsigned long long)s,
			       (unsigned long long)want, (unsigned long long)c, (unsigned long long)nodes);
		else
			printf("ok %llu %llx %llu\n", (unsigned long long)it, (unsigned long long)s,
			       (unsigned long long)nodes);
		usleep(100000);
	}
}
