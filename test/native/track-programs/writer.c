/*
 * Test target for dirty-page tracking (track.test.ts): writes exactly the pages it is told to,
 * and reports what it can see of the world around it.
 *   writer MIB        a heap of MIB MiB, every page filled with data derived from its index
 * stdin commands, each answered with one line:
 *   write P...        add 1 to the first word of each heap page P                 -> "wrote N"
 *   readin P          read() 4 bytes from a pipe into heap page P (a kernel write) -> "readin"
 *   zero P            madvise(MADV_DONTNEED) heap page P                          -> "zeroed"
 *   sum               FNV-1a of the heap                                          -> "sum HEX"
 *   world             what the process can tell: SIGCHLDs seen, wait(-1)'s errno, its fds
 *                     -> "world SIGCHLDS ERRNO FD,FD,..."
 * At start: "ready HEAPADDR PAGES".
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

static volatile sig_atomic_t sigchlds;

static void on_chld(int sig)
{
	(void)sig;
	sigchlds++;
}

int main(int argc, char **argv)
{
	size_t pages = (argc > 1 ? strtoull(argv[1], NULL, 10) : 16) * 256;
	char line[4096];
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_chld;
	sigaction(SIGCHLD, &sa, NULL);
	uint8_t *heap = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED)
		return 1;
	for (size_t p = 0; p < pages; p++) {
		uint64_t *w = (uint64_t *)(heap + p * 4096);
		for (int i = 0; i < 512; i++)
			w[i] = p * 0x9e3779b97f4a7c15ull + (uint64_t)i;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %p %zu\n", (void *)heap, pages);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long p;
		if (!strncmp(line, "write ", 6)) {
			int n = 0;
			for (char *s = line + 6, *e; (p = strtoull(s, &e, 10)), e != s; s = e)
				if (p < pages) {
					(*(uint64_t *)(heap + p * 4096))++;
					n++;
				}
			printf("wrote %d\n", n);
		} else if (sscanf(line, "readin %llu", &p) == 1 && p < pages) {
			int fd[2];
			if (pipe(fd) == 0) {
				if (write(fd[1], "kern", 4) != 4 || read(fd[0], heap + p * 4096 + 8, 4) != 4)
					return 3;
				close(fd[0]);
				close(fd[1]);
			}
			printf("readin\n");
		} else if (sscanf(line, "zero %llu", &p) == 1 && p < pages) {
			madvise(heap + p * 4096, 4096, MADV_DONTNEED);
			printf("zeroed\n");
		} else if (!strncmp(line, "sum", 3)) {
			uint64_t h = 1469598103934665603ull;
			for (size_t i = 0; i < pages * 4096; i += 8) {
				h ^= *(uint64_t *)(heap + i);
				h *= 1099511628211ull;
			}
			printf("sum %016llx\n", (unsigned long long)h);
		} else if (!strncmp(line, "world", 5)) {
			int e = waitpid(-1, NULL, WNOHANG) < 0 ? errno : 0;
			char fds[2048] = "";
			DIR *d = opendir("/proc/self/fd");
			int dfd = d ? dirfd(d) : -1;
			for (struct dirent *de; d && (de = readdir(d));)
				if (de->d_name[0] != '.' && atoi(de->d_name) != dfd)
					snprintf(fds + strlen(fds), sizeof(fds) - strlen(fds), "%s%s", fds[0] ? "," : "", de->d_name);
			if (d)
				closedir(d);
			printf("world %d %d %s\n", (int)sigchlds, e, fds);
		}
	}
	return 0;
}
