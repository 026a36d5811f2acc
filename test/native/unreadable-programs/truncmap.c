/*
 * Maps an 8-page file privately and writes every page (so each is the process's own copy),
 * then waits. When the file is then truncated to 2 pages, the kernel drops pages 2-7 from the
 * mapping: touching them now raises SIGBUS, and a capture cannot read them.
 * Prints "ready <hex address>".
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const size_t ps = 4096, pages = 8;
	if (argc != 2)
		return 2;
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)(pages * ps)) < 0)
		return 1;
	unsigned char *m = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return 1;
	close(fd);
	for (size_t p = 0; p < pages; p++)
		memset(m + p * ps, (int)(0x41 + p), ps);
	printf("ready %p\n", (void *)m);
	fflush(stdout);
	for (;;)
		pause();
}
