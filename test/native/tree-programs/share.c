/* Children that share with their parent what clone(2) can share without memory:
 *   fs     clone(CLONE_FS): one cwd, root and umask with the parent
 *   files  clone(CLONE_FILES | CLONE_FS): one fd table too
 *   plain  fork(): copies
 * Run in a directory that has a subdirectory "sub". On SIGUSR1 each child does chdir("sub") (if
 * there is one where it is), umask(077) and dup2(0, 40 + k) (k: 1 fs, 2 files, 3 plain); on SIGUSR2 the parent prints
 * "fds a b c" (1 where fds 41, 42, 43 are open in it, else 0). The parent prints
 * "ready P fs=A files=B plain=C" once all exist, then nothing more unless asked. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, usr2;
static void on_usr1(int s) { (void)s; usr1 = 1; }
static void on_usr2(int s) { (void)s; usr2 = 1; }

static void __attribute__((noreturn)) child(int k)
{
	for (;;) {
		pause();
		if (usr1) {
			usr1 = 0;
			if (chdir("sub") < 0) {
				/* already there: the cwd is shared */
			}
			umask(077);
			dup2(0, 40 + k);
		}
	}
}

static pid_t spawn(unsigned long flags, int k)
{
	long pid = syscall(SYS_clone, flags | SIGCHLD, 0, NULL, NULL, 0);
	if (pid == 0)
		child(k);
	return (pid_t)pid;
}

int main(void)
{
	struct sigaction sa;
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	pid_t fs = spawn(CLONE_FS, 1), files = spawn(CLONE_FILES | CLONE_FS, 2), plain = spawn(0, 3);
	if (fs < 0 || files < 0 || plain < 0)
		return 1;
	printf("ready %d fs=%d files=%d plain=%d\n", getpid(), fs, files, plain);
	for (;;) {
		pause();
		if (usr2) {
			usr2 = 0;
			printf("fds %d %d %d\n", fcntl(41, F_GETFD) >= 0, fcntl(42, F_GETFD) >= 0, fcntl(43, F_GETFD) >= 0);
		}
	}
}
