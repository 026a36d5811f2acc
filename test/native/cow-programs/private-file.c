/*
 * A private writable mapping of a file (like a JVM's class-data archive or a library's data):
 * 16 pages of the file hold 'f'; the program writes page p < 8 with 'F' + p (anonymous copies
 * now), leaves the others the file's. After every "poke" line on stdin it rewrites its pages
 * with 'p' and answers "poked". Argument: the file. At start: "ready ADDR".
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGES 16

int main(int argc, char **argv)
{
	char page[4096], line[64];
	int fd = argc > 1 ? open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600) : -1;
	if (fd < 0)
		return 1;
	memset(page, 'f', sizeof(page));
	for (int p = 0; p < PAGES; p++)
		if (write(fd, page, sizeof(page)) != (ssize_t)sizeof(page))
			return 1;
	char *a = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (a == MAP_FAILED)
		return 2;
	for (int p = 0; p < PAGES / 2; p++)
		memset(a + p * 4096, 'F' + p, 4096);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %p\n", (void *)a);
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "poke", 4))
			continue;
		for (int p = 0; p < PAGES / 2; p++)
			memset(a + p * 4096, 'p', 4096);
		printf("poked\n");
	}
	return 0;
}
