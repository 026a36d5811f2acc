/* Bytes queued in a pty pair (tty_queue.h). */
#include "tty_queue.h"

#include <asm/termbits.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

size_t tty_queue_take(int fd, uint8_t *out, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, out + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

static int queued(int fd)
{
	int v = 0;
	return ioctl(fd, FIONREAD, &v) == 0 ? v : -1;
}

int tty_queue_put(int slave, int master, int to_slave, const uint8_t *data, size_t n)
{
	struct termios2 tm, wb;
	int counter = to_slave ? slave : master, before, err = 0;

	if (!n)
		return 0;
	if (ioctl(slave, TCGETS2, &tm) < 0)
		return -errno;
	wb = tm;
	if (to_slave) {
		wb.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL | ECHOCTL | ECHOPRT | ECHOKE | ISIG | IEXTEN);
		/* IXON stays: turning it off restarts output a ^S had stopped (n_tty_set_termios) */
		wb.c_iflag &= ~(ICRNL | INLCR | IGNCR | IUCLC | ISTRIP | BRKINT | INPCK | PARMRK | IMAXBEL);
		if (wb.c_lflag & ICANON) {
			static const int editing[] = { VERASE, VKILL, VWERASE, VREPRINT, VLNEXT, VEOF };
			for (size_t i = 0; i < sizeof(editing) / sizeof(editing[0]); i++)
				wb.c_cc[editing[i]] = 0;        /* _POSIX_VDISABLE */
		}
	} else {
		wb.c_oflag &= ~OPOST;
	}
	if (ioctl(slave, TCSETS2, &wb) < 0)
		return -errno;
	before = queued(counter);
	for (size_t at = 0; at < n && !err;) {
		ssize_t w = write(to_slave ? master : slave, data + at, n - at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			err = w < 0 ? -errno : -EIO;
		else
			at += (size_t)w;
	}
	/* a canonical slave counts whole lines only: bytes after the last line end never show */
	size_t expect = n;
	if (to_slave && (wb.c_lflag & ICANON))
		while (expect && data[expect - 1] != '\n' && !(wb.c_cc[VEOL] && data[expect - 1] == wb.c_cc[VEOL]) &&
		       !(wb.c_cc[VEOL2] && data[expect - 1] == wb.c_cc[VEOL2]))
			expect--;
	struct timespec ms = { 0, 1000000 };
	for (int i = 0; !err && before >= 0 && i < 1000 && queued(counter) < before + (int)expect; i++)
		nanosleep(&ms, NULL);
	if (!err && before >= 0 && queued(counter) < before + (int)expect)
		err = -ETIMEDOUT;
	if (ioctl(slave, TCSETS2, &tm) < 0 && !err)
		err = -errno;
	return err;
}
