/* Blocked in read(): from stdin (a pipe) when argv[1] is "-", else from the FIFO argv[1]
 * (opened O_RDWR so it never sees EOF). Echoes "got TEXT" for each read, with a count. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int fd = strcmp(argv[1], "-") ? open(argv[1], O_RDWR) : 0;
	char buf[256];
	long reads = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fd < 0)
		return 1;
	printf("ready\n");
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n <= 0) {
			printf("eof %zd\n", n);
			return 3;
		}
		buf[n] = 0;
		buf[strcspn(buf, "\n")] = 0;
		printf("got %ld %s\n", ++reads, buf);
	}
}
