/* Pending signals come back with their siginfo and their place in the queue (CRIU zdtm
 * sigpending): three realtime signals queued process-wide with their own values, a kernel-style
 * siginfo (si_code CLD_EXITED, a status) queued to ourselves, a standard signal in the main
 * thread's private queue, and two realtime signals with custom si_codes in a second thread's
 * private queue. All blocked; after restore each queue is read back with sigtimedwait and every
 * siginfo compared with what was sent, in order; nothing more may be pending. */
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include "zdtm.h"

static pid_t thread_tid;
static pthread_mutex_t go = PTHREAD_MUTEX_INITIALIZER, up = PTHREAD_MUTEX_INITIALIZER;
static siginfo_t sent_shared[4], sent_main, sent_thread[2];

static int queue(siginfo_t *si, int sig, int code, int value, pid_t tid)
{
	memset(si, 0, sizeof(*si));
	si->si_signo = sig;
	si->si_code = code;
	si->si_pid = getpid();
	si->si_uid = getuid();
	si->si_value.sival_int = value;
	if (code == CLD_EXITED)
		si->si_status = value;
	if (tid)
		return (int)syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, sig, si);
	return (int)syscall(SYS_rt_sigqueueinfo, getpid(), sig, si);
}

static void expect(const char *who, const siginfo_t *want, int sig_set_member)
{
	sigset_t set;
	siginfo_t got;
	struct timespec zero = { 0, 0 };

	sigemptyset(&set);
	sigaddset(&set, sig_set_member);
	/* the system call itself: glibc's sigtimedwait reports SI_TKILL as SI_USER */
	if (syscall(SYS_rt_sigtimedwait, &set, &got, &zero, 8) < 0) {
		fail("%s: signal %d not pending (%s)", who, want->si_signo, strerror(errno));
		return;
	}
	if (got.si_signo != want->si_signo || got.si_code != want->si_code || got.si_pid != want->si_pid ||
	    got.si_uid != want->si_uid || (want->si_code != CLD_EXITED && got.si_value.sival_int != want->si_value.sival_int) ||
	    (want->si_code == CLD_EXITED && got.si_status != want->si_status))
		fail("%s: got signo %d code %d pid %d uid %d value %d status %d, sent %d/%d/%d/%d/%d/%d", who,
		     got.si_signo, got.si_code, got.si_pid, got.si_uid, got.si_value.sival_int, got.si_status,
		     want->si_signo, want->si_code, want->si_pid, want->si_uid, want->si_value.sival_int, want->si_status);
}

static void *thread_fn(void *arg)
{
	sigset_t all;
	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	thread_tid = (pid_t)syscall(SYS_gettid);
	pthread_mutex_unlock(&up);
	pthread_mutex_lock(&go);
	expect("thread queue #1", &sent_thread[0], SIGRTMIN + 1);
	expect("thread queue #2", &sent_thread[1], SIGRTMIN + 1);
	return NULL;
}

int main(void)
{
	sigset_t all, pend;
	pthread_t th;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&go);
	pthread_mutex_lock(&up);
	pthread_create(&th, NULL, thread_fn, NULL);
	pthread_mutex_lock(&up);
	if (queue(&sent_shared[0], SIGRTMIN, SI_QUEUE, 101, 0) || queue(&sent_shared[1], SIGRTMIN, SI_QUEUE, 102, 0) ||
	    queue(&sent_shared[2], SIGRTMIN, -7, 103, 0) || queue(&sent_shared[3], SIGCHLD, CLD_EXITED, 5, 0) ||
	    queue(&sent_main, SIGUSR1, SI_TKILL, 0, getpid()) ||
	    queue(&sent_thread[0], SIGRTMIN + 1, -10, 201, thread_tid) ||
	    queue(&sent_thread[1], SIGRTMIN + 1, -11, 202, thread_tid)) {
		fail("queueing: %s", strerror(errno));
		return finish();
	}
	ready();
	wait_check();
	pthread_mutex_unlock(&go);
	pthread_join(th, NULL);
	expect("main private queue", &sent_main, SIGUSR1);
	expect("shared SIGCHLD", &sent_shared[3], SIGCHLD);
	for (int i = 0; i < 3; i++)
		expect("shared queue", &sent_shared[i], SIGRTMIN);
	sigpending(&pend);
	for (int s = 1; s < 65; s++)
		if (s != SIGKILL && s != SIGSTOP && sigismember(&pend, s) == 1)
			fail("signal %d is pending after the queues were read", s);
	return finish();
}
