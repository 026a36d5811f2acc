/* Blocks in read() on its stdin pipe; prints what it read, then blocks again. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	char buf[256];
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf) - 1);
		if (n <= 0) {
			printf("read returned %zd\n", n);
			return 0;
		}
		buf[n] = 0;
		printf("read %zd: %s", n, buf);
	}
}
