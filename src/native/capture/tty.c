/*
 * Terminals (FORMAT.md TTY): for every fd on a terminal or a pseudo-terminal master, its
 * termios (TCGETS2), window size, queued byte counts, pty number and lock/packet/exclusive
 * state, whether it is the process's controlling terminal and whether the process's group is
 * in the foreground (/proc/PID/stat tty_nr and tpgid: the ioctls that tell these refuse a
 * caller in another session), and which fds form a pty pair the process holds both ends of.
 * The ioctls run on a duplicate of the target's fd taken with pidfd_getfd(2): opening
 * /proc/PID/fd/N of /dev/ptmx would make a new pty instead of reaching this one.
 */
#include "fds.h"
#include "tty_queue.h"

#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* devices.txt: 5:2 is /dev/ptmx; 128-135 are BSD-less Unix98 pty masters, 136-143 slaves */
static int is_ptmx(uint32_t maj, uint32_t min)
{
	return (maj == 5 && min == 2) || (maj >= 128 && maj <= 135);
}

static int is_pts(uint32_t maj)
{
	return maj >= 136 && maj <= 143;
}

struct stat_tty {
	unsigned long long tty_nr;
	long tpgid;
	int pgrp, session;
};

static int read_stat_tty(pid_t pid, struct stat_tty *t)
{
	char path[64], *stat = NULL;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int err = read_file(path, &stat, NULL);
	if (err)
		return err;
	const char *p = strrchr(stat, ')');
	err = p && sscanf(p + 2, "%*c %*d %d %d %llu %ld", &t->pgrp, &t->session, &t->tty_nr, &t->tpgid) == 4
		? 0 : -EINVAL;
	free(stat);
	return err;
}

/* The pty number behind a master fd (TIOCGPTN on our copy), or CKIMG_TTY_NONE. */
static uint32_t master_index(struct capture *c, struct cap_fd *d)
{
	unsigned int n;
	int local = fd_local(c, d);
	return local >= 0 && ioctl(local, TIOCGPTN, &n) == 0 ? n : CKIMG_TTY_NONE;
}

static int tty_match(struct capture *c, struct cap_fd *d)
{
	return d->f.kind == CKIMG_FD_TTY ||
	       (d->f.kind == CKIMG_FD_CHARDEV && is_ptmx(d->f.rdev_major, d->f.rdev_minor));
}

/* Is e an fd on `side` (CKIMG_TTY_PTY_MASTER or _SLAVE) of pty `index`? */
static int on_side(struct capture *c, struct cap_fd *e, uint32_t side, uint32_t index)
{
	if (!tty_match(c, e))
		return 0;
	if (side == CKIMG_TTY_PTY_MASTER)
		return is_ptmx(e->f.rdev_major, e->f.rdev_minor) && master_index(c, e) == index;
	return is_pts(e->f.rdev_major) && (e->f.rdev_major - 136) * 256 + e->f.rdev_minor == index;
}

/*
 * The bytes queued for reading on d's side of a pair the process holds both ends of (the
 * slave's input: what the master side wrote; the master's input: what the slave side wrote),
 * taken once per side, by the description of its lowest fd. They are read from our duplicate
 * and put back at once through the other end (tty_queue.c), so the target, frozen, finds them
 * again. A packet-mode master's reads carry control bytes: its queue is left alone.
 */
static int take_queue(struct capture *c, struct cap_fd *d, const struct ckimg_tty_fixed *t, uint8_t **data, uint32_t *len)
{
	uint32_t side = t->flags & (CKIMG_TTY_PTY_MASTER | CKIMG_TTY_PTY_SLAVE);
	struct cap_fd *peer = NULL;
	size_t n;
	struct cap_fd *all = fd_all(c, &n);
	int q = 0, local = fd_local(c, d);

	*data = NULL;
	*len = 0;
	if (!(t->flags & CKIMG_TTY_PAIRED) || (t->flags & CKIMG_TTY_PACKET) || !side)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (all[i].fd < d->fd && on_side(c, &all[i], side, t->index))
			return 0;               /* a lower fd's description has it */
		if ((uint32_t)all[i].fd == t->peer_fd)
			peer = &all[i];
	}
	int plocal = peer ? fd_local(c, peer) : -1;
	if (local < 0 || plocal < 0 || ioctl(local, FIONREAD, &q) < 0 || q <= 0)
		return 0;
	if (!(*data = malloc((size_t)q)))
		return -ENOMEM;
	size_t got = tty_queue_take(local, *data, (size_t)q);
	int slave = side == CKIMG_TTY_PTY_SLAVE;
	int err = tty_queue_put(slave ? local : plocal, slave ? plocal : local, slave, *data, got);
	*len = (uint32_t)got;
	if (err)
		return cap_fail(err, "fd %d (%s, pty %u): the %zu bytes queued on it were read and could not all be put "
				"back", d->fd, d->link, t->index, got);
	return 0;
}

static int tty_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_tty_fixed t = { .fixed_size = sizeof(t), .fd = (uint32_t)d->fd,
				     .index = CKIMG_TTY_NONE, .peer_fd = CKIMG_TTY_NONE,
				     .uid = CKIMG_TTY_NONE, .gid = CKIMG_TTY_NONE, .mode = CKIMG_TTY_NONE };
	struct stat_tty st = { 0 };
	struct termios2 tm;
	struct winsize ws;
	int v, err, local = fd_local(c, d);

	if (local < 0)
		return cap_fail(local, "fd %d (%s): pidfd_getfd", d->fd, d->link);
	if ((err = read_stat_tty(c->pid, &st)))
		return cap_fail(err, "/proc/%d/stat", c->pid);
	if (ioctl(local, TCGETS2, &tm) < 0)
		return cap_fail(-errno, "fd %d (%s): TCGETS2", d->fd, d->link);
	t.c_iflag = tm.c_iflag;
	t.c_oflag = tm.c_oflag;
	t.c_cflag = tm.c_cflag;
	t.c_lflag = tm.c_lflag;
	t.c_line = tm.c_line;
	memcpy(t.c_cc, tm.c_cc, CKIMG_TTY_NCCS);
	t.ispeed = tm.c_ispeed;
	t.ospeed = tm.c_ospeed;
	if (ioctl(local, TIOCGWINSZ, &ws) == 0) {
		t.ws_row = ws.ws_row;
		t.ws_col = ws.ws_col;
		t.ws_xpixel = ws.ws_xpixel;
		t.ws_ypixel = ws.ws_ypixel;
	}
	if (ioctl(local, FIONREAD, &v) == 0)
		t.in_queued = (uint32_t)v;
	if (ioctl(local, TIOCOUTQ, &v) == 0)
		t.out_queued = (uint32_t)v;
	if (ioctl(local, TIOCGEXCL, &v) == 0 && v)
		t.flags |= CKIMG_TTY_EXCLUSIVE;
	if (is_ptmx(d->f.rdev_major, d->f.rdev_minor)) {
		t.flags |= CKIMG_TTY_PTY_MASTER;
		t.index = master_index(c, d);
		if (ioctl(local, TIOCGPTLCK, &v) == 0 && v)
			t.flags |= CKIMG_TTY_LOCKED;
		if (ioctl(local, TIOCGPKT, &v) == 0 && v)
			t.flags |= CKIMG_TTY_PACKET;
	} else if (is_pts(d->f.rdev_major)) {
		t.flags |= CKIMG_TTY_PTY_SLAVE;
		t.index = (d->f.rdev_major - 136) * 256 + d->f.rdev_minor;
		/* the owner and mode of /dev/pts/N (a program may fchown/fchmod it: zdtm pty01) */
		struct stat ps;
		if (fstat(local, &ps) == 0) {
			t.uid = (uint32_t)ps.st_uid;
			t.gid = (uint32_t)ps.st_gid;
			t.mode = (uint32_t)(ps.st_mode & 07777);
		}
	}
	/* tty_nr: major in bits 15..8, minor in bits 31..20 and 7..0 (proc(5)) */
	unsigned tmaj = (unsigned)((st.tty_nr >> 8) & 0xfff);
	unsigned tmin = (unsigned)((st.tty_nr & 0xff) | ((st.tty_nr >> 12) & 0xfff00));
	if (st.tty_nr && !(t.flags & CKIMG_TTY_PTY_MASTER) && tmaj == d->f.rdev_major && tmin == d->f.rdev_minor) {
		t.flags |= CKIMG_TTY_CONTROLLING;
		t.sid = (uint32_t)st.session;
		t.fg_pgrp = st.tpgid > 0 ? (uint32_t)st.tpgid : 0;
		if (st.tpgid == st.pgrp)
			t.flags |= CKIMG_TTY_FOREGROUND;
	}
	/* A pair: the other side of the same pty number, also held by the process. */
	size_t n;
	struct cap_fd *all = fd_all(c, &n);
	for (size_t i = 0; t.index != CKIMG_TTY_NONE && i < n; i++) {
		struct cap_fd *e = &all[i];
		if (e->fd == d->fd || !tty_match(c, e))
			continue;
		int other_master = is_ptmx(e->f.rdev_major, e->f.rdev_minor);
		if ((t.flags & CKIMG_TTY_PTY_MASTER) && !other_master && is_pts(e->f.rdev_major) &&
		    (e->f.rdev_major - 136) * 256 + e->f.rdev_minor == t.index)
			;
		else if ((t.flags & CKIMG_TTY_PTY_SLAVE) && other_master && master_index(c, e) == t.index)
			;
		else
			continue;
		t.flags |= CKIMG_TTY_PAIRED;
		if ((uint32_t)e->fd < t.peer_fd)
			t.peer_fd = (uint32_t)e->fd;
	}
	uint8_t *data;
	uint32_t dlen;
	if ((err = take_queue(c, d, &t, &data, &dlen))) {
		free(data);
		return err;
	}
	/* one TTY record per fd of this description; the queue goes with the first */
	for (size_t i = 0; i < n && !err; i++) {
		struct cap_fd *e = &all[i];
		if (e->file != d)
			continue;
		struct buf b = { 0 };
		t.fd = (uint32_t)e->fd;
		t.data_length = e == d ? dlen : 0;
		err = buf_put(&b, &t, sizeof(t));
		if (!err)
			err = buf_put_cstr(&b, d->link);
		if (!err && t.data_length)
			err = buf_put(&b, data, t.data_length);
		if (!err)
			err = fd_emit(c, CKIMG_REC_TTY, t.fd, 0, &b);
		buf_free(&b);
	}
	free(data);
	return err;
}

const struct fd_ops tty_ops = {
	.name = "tty",
	.match = tty_match,
	.dump = tty_dump,
};
