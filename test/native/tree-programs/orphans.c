/* Sessions and process groups whose leaders have exited, inside a tree. The root R (a session
 * leader and child subreaper) ends up with these children:
 *   M   member of group L; L (its leader) exited and was reaped
 *   Z   a zombie (exit status 5) that led group Z; its member W is R's child now
 *   W   member of group Z (its leader a zombie)
 *   S2  in session S1 (group S1); S1 (the session leader) exited and was reaped
 *   G2  in session S1, member of group G1 (a group of session S1 whose leader G1 exited)
 * R prints "ready R m=M l=L z=Z w=W s1=S1 s2=S2 g1=G1 g2=G2" once all is set, then
 * "alive n" every 20 ms; on SIGUSR1 it reaps Z and prints "reaped Z status 5". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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

static void __attribute__((noreturn)) idle(void)
{
	for (;;)
		pause();
}

static char state_of(pid_t pid)
{
	char path[64], st = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%*d %*s %c", &st) != 1)
			st = 0;
		fclose(f);
	}
	return st;
}

/* a pid a child sends on a pipe */
static pid_t get_pid(int fd)
{
	pid_t p = 0;
	if (read(fd, &p, sizeof(p)) != sizeof(p))
		return -1;
	return p;
}

int main(void)
{
	int pm[2], pw[2], ps[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (setsid() < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 || pipe(pm) < 0 || pipe(pw) < 0 || pipe(ps) < 0)
		return 1;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);

	/* group L, leader gone */
	pid_t l = fork();
	if (l == 0) {
		setpgid(0, 0);
		pid_t m = fork();
		if (m == 0)
			idle();
		if (write(pm[1], &m, sizeof(m)) != sizeof(m))
			_exit(1);
		_exit(0);
	}
	pid_t m = get_pid(pm[0]);
	waitpid(l, NULL, 0);

	/* group Z, leader a zombie */
	pid_t z = fork();
	if (z == 0) {
		setpgid(0, 0);
		pid_t w = fork();
		if (w == 0)
			idle();
		if (write(pw[1], &w, sizeof(w)) != sizeof(w))
			_exit(1);
		_exit(5);
	}
	pid_t w = get_pid(pw[0]);

	/* session S1, leader gone, with a group G1 whose leader is gone too */
	pid_t s1 = fork();
	if (s1 == 0) {
		setsid();
		pid_t s2 = fork();
		if (s2 == 0)
			idle();
		int pg[2];
		if (pipe(pg) < 0)
			_exit(1);
		pid_t g1 = fork();
		if (g1 == 0) {
			setpgid(0, 0);
			pid_t g2 = fork();
			if (g2 == 0)
				idle();
			if (write(pg[1], &g2, sizeof(g2)) != sizeof(g2))
				_exit(1);
			_exit(0);
		}
		pid_t g2 = get_pid(pg[0]);
		waitpid(g1, NULL, 0);
		pid_t out[3] = { s2, g1, g2 };
		if (write(ps[1], out, sizeof(out)) != sizeof(out))
			_exit(1);
		_exit(0);
	}
	pid_t out[3];
	if (read(ps[0], out, sizeof(out)) != sizeof(out))
		return 1;
	waitpid(s1, NULL, 0);
	/* all reparented to us, Z a zombie */
	for (int i = 0; i < 5000; i++) {
		char path[64], *line = NULL;
		size_t cap = 0;
		int n = 0;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", getpid(), getpid());
		FILE *f = fopen(path, "r");
		if (f) {
			if (getline(&line, &cap, f) > 0)
				for (char *t = strtok(line, " \n"); t; t = strtok(NULL, " \n"))
					n++;
			fclose(f);
		}
		free(line);
		if (n == 5 && state_of(z) == 'Z')
			break;
		nap(1);
	}
	printf("ready %d m=%d l=%d z=%d w=%d s1=%d s2=%d g1=%d g2=%d\n", getpid(), m, l, z, w, s1, out[0], out[1],
	       out[2]);
	for (unsigned n = 1;; n++) {
		if (want_reap) {
			int status = 0;
			want_reap = 0;
			pid_t r = waitpid(z, &status, WNOHANG);
			printf("reaped %d status %d\n", r, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		}
		printf("alive %u\n", n);
		nap(20);
	}
}
