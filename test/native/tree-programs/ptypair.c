/* A pty pair whose ends two processes of a tree hold, as a terminal server (tmux, screen,
 * script, sshd) and the shell on its terminal:
 *   parent  holds the master only; every 100 ms writes "ping N" to it and prints
 *           "got <answer>" for the line that comes back (a ping lost at a capture is skipped)
 *   child   setsid(), opens the slave (its controlling terminal) on fds 0-2, echo off, window
 *           33x77, forks the job and makes its group the foreground one, then waits
 *   job     own process group, the terminal's foreground; answers each "ping N" with
 *           "pong N pid=P sid=S ttysid=T pgrp=G fg=F rows=R cols=C echo=E"
 *           (ttysid: TIOCGSID, which only works on the caller's controlling terminal)
 * The parent prints "ready PARENT CHILD" once the first answer came. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void __attribute__((noreturn)) job(void)
{
	char line[128];
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		struct winsize ws = { 0 };
		struct termios tm;
		pid_t ttysid;
		unsigned n;
		if (sscanf(line, "ping %u", &n) != 1)
			continue;
		if (ioctl(0, TIOCGSID, &ttysid) < 0)
			ttysid = -1;
		ioctl(0, TIOCGWINSZ, &ws);
		tcgetattr(0, &tm);
		printf("pong %u pid=%d sid=%d ttysid=%d pgrp=%d fg=%d rows=%u cols=%u echo=%d\n", n, getpid(),
		       getsid(0), ttysid, getpgrp(), tcgetpgrp(0), ws.ws_row, ws.ws_col, (tm.c_lflag & ECHO) != 0);
	}
	_exit(3);
}

static void __attribute__((noreturn)) child(const char *slave)
{
	struct winsize ws = { 33, 77, 0, 0 };
	struct termios tm;
	int fd;

	if (setsid() < 0 || (fd = open(slave, O_RDWR)) < 0)       /* no O_NOCTTY: it becomes ours */
		_exit(10);
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
	tcgetattr(0, &tm);
	tm.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(0, TCSANOW, &tm);
	ioctl(0, TIOCSWINSZ, &ws);
	signal(SIGTTOU, SIG_IGN);
	pid_t j = fork();
	if (j == 0) {
		setpgid(0, 0);
		job();
	}
	setpgid(j, j);
	tcsetpgrp(0, j);
	for (;;)
		pause();
}

int main(void)
{
	char buf[512];
	size_t have = 0;
	unsigned n = 0;
	int ready = 0;
	int m = posix_openpt(O_RDWR | O_NOCTTY);

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		return 1;
	const char *slave = ptsname(m);
	pid_t c = fork();
	if (c == 0) {
		close(m);
		child(slave);
	}
	for (;;) {
		char ping[32];
		struct pollfd p = { m, POLLIN, 0 };
		int len = snprintf(ping, sizeof(ping), "ping %u\n", ++n);
		if (write(m, ping, (size_t)len) != len)
			return 2;
		/* the answer (or what is left of an older one): lines until "pong n" */
		for (int waited = 0; waited < 10;) {
			if (poll(&p, 1, 100) <= 0) {
				waited++;
				continue;
			}
			ssize_t r = read(m, buf + have, sizeof(buf) - 1 - have);
			if (r <= 0)
				return 3;
			have += (size_t)r;
			buf[have] = 0;
			char *nl, *start = buf, *cr;
			int mine = 0;
			while ((nl = strchr(start, '\n'))) {
				*nl = 0;
				if ((cr = strchr(start, '\r')))
					*cr = 0;
				unsigned k;
				if (sscanf(start, "pong %u", &k) == 1) {
					printf("got %s\n", start);
					if (!ready++)
						printf("ready %d %d\n", getpid(), c);
					mine |= k == n;
				}
				start = nl + 1;
			}
			have = strlen(start);
			memmove(buf, start, have + 1);
			if (mine)
				break;
		}
		usleep(100 * 1000);
	}
}
