/* Counts forever: each number to stdout and to the file argv[1] (one per line), every 20 ms.
 * After a restore the count must go on from where it was, and the file stay consecutive. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char b[32];

	if (fd < 0)
		return 1;
	for (long i = 0;; i++) {
		int n = snprintf(b, sizeof(b), "%ld\n", i);
		if (write(fd, b, n) != n || write(1, b, n) != n)
			return 2;
		usleep(20000);
	}
}
