/*
 * Test target for incremental tree captures (tree-incremental.test.ts): a parent and its
 * workers, each with a heap of its own that it writes exactly where it is told to.
 *   workers MIB       the parent fills a MIB MiB heap, forks 2 workers; each maps and fills a
 *                     heap of its own (MIB MiB, data derived from the worker's number and the
 *                     page index) — the parent's heap stays shared copy-on-write with them
 * stdin commands (to the parent), each answered with one line:
 *   write W P...      process W (0: the parent, 1..: the workers in fork order) adds 1 to the
 *                     first word of each of its heap pages P                    -> "wrote W N"
 *   fork              one more worker                                           -> "forked W PID"
 *   sum               FNV-1a of every process's heap, each computed by that process
 *                                                                               -> "sum H0 H1 ..."
 *   pids              -> "pids P0 P1 ..."
 * At start: "ready HEAPADDR PAGES". Workers talk to the parent over a pipe pair each (restored
 * with the tree); they exit when their command pipe closes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAXW 8

static size_t pages;
static uint8_t *heap;
static int to_w[MAXW], from_w[MAXW], nw;
static pid_t wpid[MAXW];

static void fill(uint8_t *h, unsigned seed)
{
	for (size_t p = 0; p < pages; p++) {
		uint64_t *w = (uint64_t *)(h + p * 4096);
		for (int i = 0; i < 512; i++)
			w[i] = p * 0x9e3779b97f4a7c15ull + (uint64_t)i + ((uint64_t)seed << 48);
	}
}

static uint64_t sum(const uint8_t *h)
{
	uint64_t x = 1469598103934665603ull;
	for (size_t i = 0; i < pages * 4096; i += 8) {
		x ^= *(const uint64_t *)(h + i);
		x *= 1099511628211ull;
	}
	return x;
}

static int touch(uint8_t *h, char *list)
{
	int n = 0;
	unsigned long long p;
	for (char *s = list, *e; (p = strtoull(s, &e, 10)), e != s; s = e)
		if (p < pages) {
			(*(uint64_t *)(h + p * 4096))++;
			n++;
		}
	return n;
}

/* A worker: its own heap; commands "w P..." / "s" on fd in, one line each on fd out. */
static void worker(unsigned number, int in, int out)
{
	uint8_t *h = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	FILE *fi = fdopen(in, "r"), *fo = fdopen(out, "w");
	char line[8192];
	if (h == MAP_FAILED || !fi || !fo)
		_exit(1);
	setvbuf(fo, NULL, _IOLBF, 0);
	fill(h, number);
	fprintf(fo, "up\n");
	while (fgets(line, sizeof(line), fi)) {
		if (line[0] == 'w')
			fprintf(fo, "%d\n", touch(h, line + 1));
		else if (line[0] == 's')
			fprintf(fo, "%016llx\n", (unsigned long long)sum(h));
	}
	_exit(0);
}

static int spawn_worker(void)
{
	int a[2], b[2];
	if (nw == MAXW || pipe(a) || pipe(b))
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		for (int i = 0; i < nw; i++) {
			close(to_w[i]);
			close(from_w[i]);
		}
		worker((unsigned)nw + 1, a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	to_w[nw] = a[1];
	from_w[nw] = b[0];
	wpid[nw++] = pid;
	return 0;
}

/* One line from worker w (short lines, no buffering: read byte by byte). */
static int reply(int w, char *buf, size_t len)
{
	size_t n = 0;
	while (n + 1 < len && read(from_w[w], buf + n, 1) == 1)
		if (buf[n++] == '\n')
			break;
	buf[n ? n - 1 : 0] = 0;
	return n ? 0 : -1;
}

static int say(int w, const char *cmd, char *buf, size_t len)
{
	size_t l = strlen(cmd);
	if (write(to_w[w], cmd, l) != (ssize_t)l)
		return -1;
	return reply(w, buf, len);
}

int main(int argc, char **argv)
{
	char line[8192], buf[128];

	pages = (argc > 1 ? strtoull(argv[1], NULL, 10) : 16) * 256;
	heap = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED)
		return 1;
	fill(heap, 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < 2; i++)
		if (spawn_worker() || reply(nw - 1, buf, sizeof(buf)))
			return 2;
	printf("ready %p %zu\n", (void *)heap, pages);
	while (fgets(line, sizeof(line), stdin)) {
		int w;
		if (sscanf(line, "write %d", &w) == 1 && w >= 0 && w <= nw) {
			char *list = strchr(line + 6, ' ');
			int n = 0;
			if (!list)
				list = line + strlen(line);
			if (w == 0) {
				n = touch(heap, list);
			} else {
				char cmd[8200];
				snprintf(cmd, sizeof(cmd), "w%s", list);
				if (say(w - 1, cmd, buf, sizeof(buf)))
					return 3;
				n = atoi(buf);
			}
			printf("wrote %d %d\n", w, n);
		} else if (!strncmp(line, "fork", 4)) {
			if (spawn_worker() || reply(nw - 1, buf, sizeof(buf)))
				return 4;
			printf("forked %d %d\n", nw, (int)wpid[nw - 1]);
		} else if (!strncmp(line, "sum", 3)) {
			printf("sum %016llx", (unsigned long long)sum(heap));
			for (int i = 0; i < nw; i++) {
				if (say(i, "s\n", buf, sizeof(buf)))
					return 5;
				printf(" %s", buf);
			}
			printf("\n");
		} else if (!strncmp(line, "pids", 4)) {
			printf("pids %d", (int)getpid());
			for (int i = 0; i < nw; i++)
				printf(" %d", (int)wpid[i]);
			printf("\n");
		}
	}
	return 0;
}
