/*
 * seccomp comes back per thread (CRIU zdtm seccomp_filter, seccomp_filter_threads,
 * seccomp_strict, seccomp_no_new_privs): filter A (getpgid -> EPERM) is installed before the
 * worker starts, so both threads run it; filter B (getsid -> ENOTTY) only in the main thread,
 * stacked on A; a third thread is in strict mode, blocked in read() on a pipe, and answers one
 * byte with write() after restore. no_new_privs is set, as unprivileged programs must.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include "zdtm.h"

static volatile int phase;
static volatile pid_t strict_tid;
static int to_strict[2], from_strict[2];

static int install(int nr, int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static void expect_errno(const char *who, long r, int want)
{
	if (want == 0 && r < 0)
		fail("%s: a call that should pass failed: %s", who, strerror(errno));
	if (want && (r >= 0 || errno != want))
		fail("%s: expected errno %d, got r=%ld errno %d", who, want, r, r < 0 ? errno : 0);
}

static int status_field(pid_t tid, const char *name)
{
	char path[64], line[256];
	int v = -1;
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, name, strlen(name)) && line[strlen(name)] == ':')
			v = atoi(line + strlen(name) + 1);
	if (f)
		fclose(f);
	return v;
}

static void *worker(void *arg)
{
	(void)arg;
	phase = 1;
	while (phase < 2)
		usleep(2000);
	expect_errno("worker getpgid", syscall(SYS_getpgid, 0), EPERM);
	expect_errno("worker getsid", syscall(SYS_getsid, 0), 0);
	phase = 3;
	return NULL;
}

static void *strict(void *arg)
{
	char c;
	(void)arg;
	strict_tid = (pid_t)syscall(SYS_gettid);
	prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT);
	/* from here only read, write, exit, sigreturn */
	if (syscall(SYS_read, to_strict[0], &c, 1) == 1) {
		c++;
		syscall(SYS_write, from_strict[1], &c, 1);
	}
	syscall(SYS_exit, 0);
	return NULL;
}

int main(void)
{
	pthread_t th, st;
	char c = 'a';

	if (pipe(to_strict) || pipe(from_strict))
		fail("pipe");
	/* strict mode cannot follow a filter: that thread starts first */
	pthread_create(&st, NULL, strict, NULL);
	while (!strict_tid)
		usleep(1000);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (install(SYS_getpgid, EPERM))
		fail("filter A: %s", strerror(errno));
	pthread_create(&th, NULL, worker, NULL);
	while (phase < 1 || !strict_tid)
		usleep(1000);
	if (install(SYS_getsid, ENOTTY))
		fail("filter B: %s", strerror(errno));
	usleep(20000);   /* the strict thread is in read() */
	ready();
	wait_check();

	expect_errno("main getpgid", syscall(SYS_getpgid, 0), EPERM);
	expect_errno("main getsid", syscall(SYS_getsid, 0), ENOTTY);
	expect_errno("main getppid", syscall(SYS_getppid), 0);
	if (status_field((pid_t)syscall(SYS_gettid), "Seccomp") != 2 || status_field((pid_t)syscall(SYS_gettid), "Seccomp_filters") != 2)
		fail("main: Seccomp %d filters %d", status_field((pid_t)syscall(SYS_gettid), "Seccomp"),
		     status_field((pid_t)syscall(SYS_gettid), "Seccomp_filters"));
	if (status_field(strict_tid, "Seccomp") != 1)
		fail("strict thread: Seccomp %d", status_field(strict_tid, "Seccomp"));
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		fail("no_new_privs lost");
	phase = 2;
	while (phase < 3)
		usleep(2000);
	if (write(to_strict[1], &c, 1) != 1 || read(from_strict[0], &c, 1) != 1 || c != 'b')
		fail("the strict-mode thread did not answer");
	pthread_join(st, NULL);
	return finish();
}
