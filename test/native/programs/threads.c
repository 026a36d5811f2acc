/* Ten threads besides main, each with its own TLS value, sleeping in a loop. */
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define N 10
static __thread long my_id;
static pthread_barrier_t barrier;

static void *worker(void *arg)
{
	my_id = (long)arg;
	printf("thread %ld tid %ld tls=%p\n", my_id, (long)syscall(SYS_gettid), (void *)&my_id);
	pthread_barrier_wait(&barrier);
	for (;;)
		usleep(10000 + 1000 * (int)my_id);
	return NULL;
}

int main(void)
{
	pthread_t t[N];
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_barrier_init(&barrier, NULL, N + 1);
	for (long i = 0; i < N; i++)
		pthread_create(&t[i], NULL, worker, (void *)(i + 1));
	pthread_barrier_wait(&barrier);
	printf("ready\n");
	for (unsigned long k = 0;; k++) {
		printf("tick %lu\n", k);
		usleep(20000);
	}
}
