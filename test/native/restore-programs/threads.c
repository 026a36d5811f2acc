/* 10 threads, each counting in its own slot; main prints all counts every 100 ms. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#define N 10
static volatile long count[N];

static void *worker(void *arg)
{
	long i = (long)arg;
	for (;;) {
		count[i]++;
		usleep(5000 + 1000 * i);
	}
	return NULL;
}

int main(void)
{
	pthread_t t[N];

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 0; i < N; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (;;) {
		usleep(100000);
		printf("counts");
		for (int i = 0; i < N; i++)
			printf(" %ld", count[i]);
		printf("\n");
	}
}
