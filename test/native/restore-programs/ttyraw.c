/*
 * A program on a terminal in raw mode, holding a pty pair of its own as well.
 * Run it with a pty as its controlling terminal (test/native/ptyrun.py). It puts the terminal
 * in raw mode (cfmakeraw, VMIN 1, VTIME 0), opens a pty pair whose slave gets -echo and a
 * 10x20 window, prints "ready PID", then waits for SIGUSR1. After the restore (on another
 * terminal, whose size may differ) it checks: fds 0-2 are a terminal, raw mode is still on,
 * its process group is the foreground one and the terminal is its controlling terminal; a
 * a SIGWINCH came (to redraw on the new terminal, whatever its size); the pty pair still works both ways
 * with the slave's termios and window size kept. Prints "ok ..." lines, then "done N".
 * Output ends lines with \r\n itself (raw mode: no ONLCR).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t go, winch;
static void on_usr1(int s) { (void)s; go = 1; }
static void on_winch(int s) { (void)s; winch++; }
static int fails;

static void say(const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof(b) - 2, fmt, ap);
	va_end(ap);
	b[n++] = '\r';
	b[n++] = '\n';
	if (write(1, b, (size_t)n) < 0)
		_exit(3);
}

#define CHECK(c, ...) do { if (!(c)) { say("FAIL " __VA_ARGS__); fails++; } } while (0)

int main(void)
{
	struct termios raw, t;
	struct winsize ws, mine;

	signal(SIGUSR1, on_usr1);
	signal(SIGWINCH, on_winch);
	if (tcgetattr(0, &raw) < 0) {
		perror("not on a terminal");
		return 2;
	}
	cfmakeraw(&raw);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	tcsetattr(0, TCSANOW, &raw);
	ioctl(0, TIOCGWINSZ, &mine);

	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
		perror("posix_openpt");
		return 2;
	}
	int s = open(ptsname(m), O_RDWR | O_NOCTTY);
	struct termios st;
	tcgetattr(s, &st);
	st.c_lflag &= ~(tcflag_t)(ECHO);
	tcsetattr(s, TCSANOW, &st);
	struct winsize small = { 10, 20, 0, 0 };
	ioctl(m, TIOCSWINSZ, &small);
	say("ready %d %d %d %d %d", (int)getpid(), m, s, mine.ws_row, mine.ws_col);

	sig_atomic_t winch_before = winch;
	while (!go)             /* polled: a signal between the test and a pause() would be lost */
		usleep(10000);

	CHECK(isatty(0) && isatty(1) && isatty(2), "fds 0-2 are not a terminal");
	CHECK(tcgetattr(0, &t) == 0 && !(t.c_lflag & (ICANON | ECHO | ISIG)) && !(t.c_oflag & OPOST) &&
	      t.c_cc[VMIN] == 1, "raw mode lost (lflag %#x oflag %#x)", t.c_lflag, t.c_oflag);
	CHECK(tcgetpgrp(0) == getpgrp(), "not the foreground group (%d, we are %d)", (int)tcgetpgrp(0), (int)getpgrp());
	int ctty = open("/dev/tty", O_RDWR);
	CHECK(ctty >= 0, "no controlling terminal: %s", strerror(errno));
	if (ctty >= 0)
		close(ctty);
	ioctl(0, TIOCGWINSZ, &ws);
	/* on a new terminal the program must redraw, whatever its size */
	CHECK(winch > winch_before, "restored on a new terminal (window %dx%d, was %dx%d) but no SIGWINCH",
	      ws.ws_row, ws.ws_col, mine.ws_row, mine.ws_col);
	if (!fails)
		say("ok terminal %dx%d winch %d", ws.ws_row, ws.ws_col, (int)winch);

	int before = fails;
	struct winsize pw;
	CHECK(ioctl(s, TIOCGWINSZ, &pw) == 0 && pw.ws_row == 10 && pw.ws_col == 20, "pty window %dx%d", pw.ws_row, pw.ws_col);
	CHECK(tcgetattr(s, &st) == 0 && !(st.c_lflag & ECHO) && (st.c_lflag & ICANON), "pty slave termios %#x", st.c_lflag);
	char buf[64];
	CHECK(write(m, "ping\n", 5) == 5 && read(s, buf, sizeof(buf)) == 5 && !memcmp(buf, "ping\n", 5), "master -> slave");
	CHECK(write(s, "pong", 4) == 4 && read(m, buf, sizeof(buf)) == 4 && !memcmp(buf, "pong", 4), "slave -> master");
	if (fails == before)
		say("ok pty");
	say("done %d", fails);
	return fails ? 1 : 0;
}
