/* A small process tree for capture/restore tests:
 *   parent ── writer of a pipe: every 20 ms it sends "n\n" (n = 1, 2, …) to the reader child
 *   ├─ reader: reads the pipe, prints "got n" (so output continues only if the pipe does)
 *   ├─ zombie: exits with status 7 at once; the parent waits for it only on SIGUSR1 and
 *   │          then prints "reaped PID status 7"
 *   ├─ leader: setsid() (its own session), then sleeps printing nothing
 *   └─ grouper: setpgid(0, 0) (its own group), forks a grandchild that joins its group
 * The parent prints "ready PID reader=R zombie=Z leader=L grouper=G grandchild=GC" once all exist. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t want_reap;
static void on_usr1(int s) { (void)s; want_reap = 1; }

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0)
		;
}

int main(void)
{
	int p[2], sync_gc[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe(p) < 0 || pipe(sync_gc) < 0)
		return 1;
	pid_t reader = fork();
	if (reader == 0) {
		close(p[1]);
		FILE *in = fdopen(p[0], "r");
		char line[64];
		while (fgets(line, sizeof(line), in))
			printf("got %s", line);
		printf("reader eof\n");
		return 0;
	}
	close(p[0]);
	pid_t zombie = fork();
	if (zombie == 0)
		_exit(7);
	pid_t leader = fork();
	if (leader == 0) {
		setsid();
		for (;;)
			pause();
	}
	pid_t grouper = fork();
	if (grouper == 0) {
		setpgid(0, 0);
		pid_t gc = fork();
		if (gc == 0) {
			for (;;)
				pause();
		}
		if (write(sync_gc[1], &gc, sizeof(gc)) != sizeof(gc))
			_exit(1);
		for (;;)
			pause();
	}
	pid_t gc;
	if (read(sync_gc[0], &gc, sizeof(gc)) != sizeof(gc))
		return 1;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	/* the zombie must exist before "ready" */
	while (1) {
		char path[64], st = 0;
		snprintf(path, sizeof(path), "/proc/%d/stat", zombie);
		FILE *f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%*d %*s %c", &st) != 1)
				st = 0;
			fclose(f);
		}
		if (st == 'Z')
			break;
		nap(1);
	}
	printf("ready %d reader=%d zombie=%d leader=%d grouper=%d grandchild=%d\n", getpid(), reader, zombie, leader,
	       grouper, gc);
	for (unsigned n = 1;; n++) {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "%u\n", n);
		if (write(p[1], buf, (size_t)len) != len)
			return 2;
		if (want_reap) {
			int status;
			want_reap = 0;
			pid_t w = waitpid(zombie, &status, WNOHANG);
			printf("reaped %d status %d\n", w, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		}
		nap(20);
	}
}
