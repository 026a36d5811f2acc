/* Blocked in nanosleep most of the time: "tick N" then a 700 ms sleep. */
#include <stdio.h>
#include <time.h>

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 0;; i++) {
		struct timespec ts = { 0, 700 * 1000000 };
		printf("tick %ld\n", i);
		nanosleep(&ts, NULL);
	}
}
