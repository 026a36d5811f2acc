/*
 * Terminals (FORMAT.md TTY): for every fd on a terminal or a pseudo-terminal master, its
 * termios (TCGETS2), window size, queued byte counts, pty number and lock/packet/exclusive
 * state, whether it is the process's controlling terminal and whether the process's group is
 * in the foreground (/proc/PID/stat tty_nr and tpgid: the ioctls that tell these refuse a
 * caller in another session), and which fds form a pty pair the process holds both ends of.
 * The ioctls run on a duplicate of the target's fd taken with pidfd_getfd(2): opening
 * /proc/PID/fd/N of /dev/ptmx would make a new pty instead of reaching this one.
 */
#include "capture.h"

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

struct tty_ent {
	struct ckimg_tty_fixed f;
	char *name;
	uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
};

static int fill_one(struct capture *c, int pidfd, const struct ckimg_fd_fixed *fd,
		    const struct stat_tty *st, struct tty_ent *e)
{
	struct termios2 tm;
	struct winsize ws;
	int v, err = 0;
	int local = (int)syscall(SYS_pidfd_getfd, pidfd, (int)fd->fd, 0);

	if (local < 0)
		return cap_fail(-errno, "fd %u (%s): pidfd_getfd", fd->fd, e->name);
	e->f.fixed_size = sizeof(e->f);
	e->f.fd = fd->fd;
	e->f.index = CKIMG_TTY_NONE;
	e->f.peer_fd = CKIMG_TTY_NONE;
	if (ioctl(local, TCGETS2, &tm) < 0) {
		err = cap_fail(-errno, "fd %u (%s): TCGETS2", fd->fd, e->name);
		goto out;
	}
	e->f.c_iflag = tm.c_iflag;
	e->f.c_oflag = tm.c_oflag;
	e->f.c_cflag = tm.c_cflag;
	e->f.c_lflag = tm.c_lflag;
	e->f.c_line = tm.c_line;
	memcpy(e->f.c_cc, tm.c_cc, CKIMG_TTY_NCCS);
	e->f.ispeed = tm.c_ispeed;
	e->f.ospeed = tm.c_ospeed;
	if (ioctl(local, TIOCGWINSZ, &ws) == 0) {
		e->f.ws_row = ws.ws_row;
		e->f.ws_col = ws.ws_col;
		e->f.ws_xpixel = ws.ws_xpixel;
		e->f.ws_ypixel = ws.ws_ypixel;
	}
	if (ioctl(local, FIONREAD, &v) == 0)
		e->f.in_queued = (uint32_t)v;
	if (ioctl(local, TIOCOUTQ, &v) == 0)
		e->f.out_queued = (uint32_t)v;
	if (ioctl(local, TIOCGEXCL, &v) == 0 && v)
		e->f.flags |= CKIMG_TTY_EXCLUSIVE;
	if (is_ptmx(fd->rdev_major, fd->rdev_minor)) {
		unsigned int n;
		e->f.flags |= CKIMG_TTY_PTY_MASTER;
		if (ioctl(local, TIOCGPTN, &n) == 0)
			e->f.index = n;
		if (ioctl(local, TIOCGPTLCK, &v) == 0 && v)
			e->f.flags |= CKIMG_TTY_LOCKED;
		if (ioctl(local, TIOCGPKT, &v) == 0 && v)
			e->f.flags |= CKIMG_TTY_PACKET;
	} else if (is_pts(fd->rdev_major)) {
		e->f.flags |= CKIMG_TTY_PTY_SLAVE;
		e->f.index = (fd->rdev_major - 136) * 256 + fd->rdev_minor;
	}
	/* tty_nr: major in bits 15..8, minor in bits 31..20 and 7..0 (proc(5)) */
	unsigned tmaj = (unsigned)((st->tty_nr >> 8) & 0xfff);
	unsigned tmin = (unsigned)((st->tty_nr & 0xff) | ((st->tty_nr >> 12) & 0xfff00));
	if (st->tty_nr && !(e->f.flags & CKIMG_TTY_PTY_MASTER) && tmaj == fd->rdev_major &&
	    tmin == fd->rdev_minor) {
		e->f.flags |= CKIMG_TTY_CONTROLLING;
		e->f.sid = (uint32_t)st->session;
		e->f.fg_pgrp = st->tpgid > 0 ? (uint32_t)st->tpgid : 0;
		if (st->tpgid == st->pgrp)
			e->f.flags |= CKIMG_TTY_FOREGROUND;
	}
out:
	close(local);
	(void)c;
	return err;
}

int collect_ttys(struct capture *c)
{
	struct tty_ent *ents = NULL;
	size_t n = 0;
	struct stat_tty st = { 0 };
	int err = 0, pidfd = -1;

	for (size_t o = 0; !err && o + 8 <= c->fds.len;) {
		uint64_t l;
		struct ckimg_fd_fixed f;
		uint32_t slen;
		memcpy(&l, c->fds.p + o, 8);
		memcpy(&f, c->fds.p + o + 8, sizeof(f));
		memcpy(&slen, c->fds.p + o + 8 + sizeof(f), 4);
		const char *link = (const char *)c->fds.p + o + 8 + sizeof(f) + 4;
		o += 8 + l;
		if (f.kind != CKIMG_FD_TTY && !(f.kind == CKIMG_FD_CHARDEV && is_ptmx(f.rdev_major, f.rdev_minor)))
			continue;
		if (pidfd < 0) {
			pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
			if (pidfd < 0 || (err = read_stat_tty(c->pid, &st))) {
				err = cap_fail(pidfd < 0 ? -errno : err, "terminal state of process %d", c->pid);
				break;
			}
		}
		struct tty_ent *q = realloc(ents, (n + 1) * sizeof(*q));
		if (!q) {
			err = -ENOMEM;
			break;
		}
		ents = q;
		memset(&ents[n], 0, sizeof(ents[n]));
		ents[n].name = strndup(link, slen);
		ents[n].dev_major = f.dev_major;
		ents[n].dev_minor = f.dev_minor;
		ents[n].rdev_major = f.rdev_major;
		ents[n].rdev_minor = f.rdev_minor;
		if (!ents[n].name) {
			err = -ENOMEM;
			break;
		}
		n++;
		err = fill_one(c, pidfd, &f, &st, &ents[n - 1]);
	}
	if (pidfd >= 0)
		close(pidfd);
	/* pairs: a master and a slave with the master's pty number (both ends held here) */
	for (size_t i = 0; !err && i < n; i++) {
		if (!(ents[i].f.flags & CKIMG_TTY_PTY_MASTER) || ents[i].f.index == CKIMG_TTY_NONE)
			continue;
		for (size_t k = 0; k < n; k++) {
			if (!(ents[k].f.flags & CKIMG_TTY_PTY_SLAVE) || ents[k].f.index != ents[i].f.index)
				continue;
			ents[i].f.flags |= CKIMG_TTY_PAIRED;
			ents[k].f.flags |= CKIMG_TTY_PAIRED;
			if (ents[k].f.fd < ents[i].f.peer_fd)
				ents[i].f.peer_fd = ents[k].f.fd;
			if (ents[i].f.fd < ents[k].f.peer_fd)
				ents[k].f.peer_fd = ents[i].f.fd;
		}
	}
	for (size_t i = 0; !err && i < n; i++) {
		struct buf b = { 0 };
		err = buf_put(&b, &ents[i].f, sizeof(ents[i].f));
		if (!err)
			err = buf_put_cstr(&b, ents[i].name);
		uint64_t l = b.len;
		if (!err)
			err = buf_put(&c->ttys, &l, 8);
		if (!err)
			err = buf_put(&c->ttys, b.p, b.len);
		buf_free(&b);
		c->nttys++;
	}
	for (size_t i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
	return err;
}

int put_ttys(struct capture *c, struct image *im)
{
	int err = 0;
	for (size_t o = 0; !err && o + 8 <= c->ttys.len;) {
		uint64_t l;
		uint32_t fd;
		memcpy(&l, c->ttys.p + o, 8);
		memcpy(&fd, c->ttys.p + o + 8 + 4, 4);
		struct buf one = { c->ttys.p + o + 8, l, l };
		err = image_record(im, CKIMG_REC_TTY, &one, fd, 0);
		o += 8 + l;
	}
	return err;
}
