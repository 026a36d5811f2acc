/*
 * rseq registration per thread survives (CRIU zdtm rseq00): glibc registers every thread's
 * rseq area in its TLS; after restore each thread must still be registered (registering the
 * same area again gives EBUSY) and the kernel must keep its cpu_id current (sched_getcpu()
 * reads it from the area when rseq is registered).
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include "zdtm.h"

static volatile int phase;

static void check_thread(const char *who)
{
	if (__rseq_size == 0) {
		fail("%s: glibc did not register rseq (cannot test)", who);
		return;
	}
	struct rseq *r = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	/* poison cpu_id: only a registered rseq has the kernel write it back */
	r->cpu_id = (uint32_t)-77;
	for (int i = 0; i < 50 && (int32_t)r->cpu_id == -77; i++)
		sched_yield(), usleep(1000);
	if ((int32_t)r->cpu_id < 0)
		fail("%s: cpu_id %d: the kernel no longer updates the rseq area", who, (int32_t)r->cpu_id);
	/* glibc registers 32 bytes (ORIG_RSEQ_SIZE) whatever __rseq_size says */
	long rc = syscall(SYS_rseq, r, 32, 0, RSEQ_SIG);
	if (rc == 0)
		fail("%s: rseq was not registered after restore", who);
	else if (errno != EBUSY)
		fail("%s: rseq re-register: %s (expected EBUSY)", who, strerror(errno));
}

static void *worker(void *arg)
{
	(void)arg;
	phase = 1;
	while (phase < 2)
		usleep(2000);
	check_thread("worker");
	phase = 3;
	return NULL;
}

int main(void)
{
	pthread_t th;

	pthread_create(&th, NULL, worker, NULL);
	while (phase < 1)
		usleep(1000);
	ready();
	wait_check();
	check_thread("main");
	phase = 2;
	pthread_join(th, NULL);
	return finish();
}
