/*
 * Bytes queued in a pty pair the process holds both ends of, and the pty as its controlling
 * terminal (CRIU zdtm pty00). The process leads its own session, its slave is its controlling
 * terminal and it has /dev/tty open. The master wrote three lines the slave has not read (the
 * slave is canonical with echo: their echo waits on the master's side, "\r\n"-ended), the slave
 * wrote a line the master has not read. At the check each side reads exactly what was queued,
 * line by line on the slave, and nothing more; /dev/tty is still the pty; the slave's
 * termios is the canonical one it had. Run after a capture that leaves the process running
 * too: capture takes the bytes and must give them back.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include "zdtm.h"

static const char echoed[] = "one\r\ntwo\r\nthree\r\nfrom the slave\r\n";

int main(void)
{
	char buf[256];
	struct termios tm;

	if (getsid(0) != getpid() && setsid() < 0)
		fail("setsid");
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master))
		fail("posix_openpt");
	int slave = open(ptsname(master), O_RDWR);     /* no O_NOCTTY: our controlling terminal */
	int tty = open("/dev/tty", O_RDWR);
	if (slave < 0 || tty < 0)
		fail("open slave %d /dev/tty %d", slave, tty);
	if (dup2(master, 41) != 41 || dup2(slave, 40) != 40)
		fail("dup2");
	close(master);
	close(slave);
	master = 41;
	slave = 40;
	/* the pty hands bytes on (and echoes them) from a kernel worker: one side at a time */
	if (write(master, "one\ntwo\nthree\n", 14) != 14)
		fail("write master");
	usleep(100000);
	if (write(slave, "from the slave\n", 15) != 15)
		fail("write slave");
	usleep(100000);
	ready();
	wait_check();

	signal(SIGHUP, SIG_IGN);
	static const char *lines[] = { "one\n", "two\n", "three\n" };
	for (int i = 0; i < 3; i++) {
		ssize_t n = read(slave, buf, sizeof(buf));
		if (n != (ssize_t)strlen(lines[i]) || memcmp(buf, lines[i], (size_t)n))
			fail("slave read %d: %zd bytes '%.*s', not '%s'", i, n, (int)(n > 0 ? n : 0), buf, lines[i]);
	}
	size_t got = 0;
	struct pollfd p = { .fd = master, .events = POLLIN };
	while (got < sizeof(buf) && poll(&p, 1, 300) == 1) {
		ssize_t n = read(master, buf + got, sizeof(buf) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got != strlen(echoed) || memcmp(buf, echoed, got))
		fail("master read %zu bytes '%.*s', not '%s'", got, (int)got, buf, echoed);
	p.fd = slave;
	if (poll(&p, 1, 100) != 0)
		fail("more for the slave to read");
	if (tcgetattr(slave, &tm) || !(tm.c_lflag & ICANON) || !(tm.c_lflag & ECHO) || !(tm.c_iflag & ICRNL) ||
	    !(tm.c_oflag & OPOST))
		fail("slave termios changed: lflag %#x iflag %#x oflag %#x", tm.c_lflag, tm.c_iflag, tm.c_oflag);
	pid_t sid;
	if (ioctl(tty, TIOCGSID, &sid) || sid != getpid())
		fail("/dev/tty: not our session's terminal");
	/* /dev/tty reaches the pty */
	if (write(master, "x\n", 2) != 2 || read(tty, buf, sizeof(buf)) != 2 || buf[0] != 'x')
		fail("/dev/tty does not read the pty");
	return finish();
}
