/*
 * State each thread holds for itself, in many threads at once: 12 threads, thread i with its
 * own alternate signal stack (size 16 KiB + i pages), timer slack (50 us + i us), parent-death
 * signal (SIGRTMIN + i) and clear_child_tid address (set_tid_address). Capture asks all
 * threads at once; each answer must come back to its own thread. On "check" every thread
 * checks its own state; the main thread joins them and says PASS or FAIL.
 */
#include "zdtm.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define THREADS 12

static pthread_barrier_t start, check;
static int tid_word[THREADS];
static char *stacks[THREADS];

static void *worker(void *arg)
{
	long i = (long)arg;
	size_t size = 16384 + (size_t)i * 4096;
	stacks[i] = malloc(size);
	stack_t ss = { .ss_sp = stacks[i], .ss_size = size }, now;
	if (!stacks[i] || sigaltstack(&ss, NULL) || prctl(PR_SET_TIMERSLACK, 50000 + i * 1000) ||
	    prctl(PR_SET_PDEATHSIG, SIGRTMIN + (int)i))
		fail("thread %ld: set up", i);
	/* glibc's own clear_child_tid is put back before the thread ends (it joins on it) */
	int *glibc_tid = NULL;
	prctl(PR_GET_TID_ADDRESS, &glibc_tid);
	syscall(SYS_set_tid_address, &tid_word[i]);
	pthread_barrier_wait(&start);
	pthread_barrier_wait(&check);
	int *tid_addr = NULL, pdeath = 0;
	prctl(PR_GET_TID_ADDRESS, &tid_addr);
	prctl(PR_GET_PDEATHSIG, &pdeath);
	long slack = prctl(PR_GET_TIMERSLACK);
	if (sigaltstack(NULL, &now) || now.ss_sp != stacks[i] || now.ss_size != size)
		fail("thread %ld: alternate stack %p+%zu, was %p+%zu", i, now.ss_sp, now.ss_size, (void *)stacks[i], size);
	if (slack != 50000 + i * 1000)
		fail("thread %ld: timer slack %ld, was %ld", i, slack, 50000 + i * 1000);
	if (pdeath != SIGRTMIN + (int)i)
		fail("thread %ld: pdeathsig %d, was %d", i, pdeath, SIGRTMIN + (int)i);
	if (tid_addr != &tid_word[i])
		fail("thread %ld: clear_child_tid %p, was %p", i, (void *)tid_addr, (void *)&tid_word[i]);
	syscall(SYS_set_tid_address, glibc_tid);
	return NULL;
}

int main(void)
{
	pthread_t th[THREADS];
	pthread_barrier_init(&start, NULL, THREADS + 1);
	pthread_barrier_init(&check, NULL, THREADS + 1);
	for (long i = 0; i < THREADS; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i))
			return 1;
	pthread_barrier_wait(&start);
	ready();
	wait_check();
	pthread_barrier_wait(&check);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	if (!zdtm_failed)
		note("PASS");
	return zdtm_failed;
}
