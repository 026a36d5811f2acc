/*
 * Pipes and FIFOs (pipe(7), fifo(7)). An anonymous pipe is named "pipe:[INODE]" by
 * /proc/PID/fd; a FIFO is a path whose stat says S_IFIFO. Each pipe is recorded once (PIPE,
 * FORMAT.md 4.11) whatever the number of fds on it: its inode as identity, F_GETPIPE_SZ and
 * the bytes waiting in it. Those are read without taking them from the target: tee(2) from a
 * reading end of the pipe (opened through /proc/PID/fd/N, which works for either end) into
 * a pipe of ours, then read from ours.
 */
#include "fds.h"
#include "tree.h"

#include <sys/sysmacros.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int pipe_match(struct capture *c, struct cap_fd *d)
{
	return d->f.kind == CKIMG_FD_FIFO && !strncmp(d->link, "pipe:[", 6);
}

static int fifo_match(struct capture *c, struct cap_fd *d)
{
	return d->f.kind == CKIMG_FD_FIFO;
}

/* The bytes in the pipe, left in place. */
static int peek_pipe(struct capture *c, struct cap_fd *d, struct buf *out, uint32_t *size)
{
	char path[64];
	int rd, p[2] = { -1, -1 }, err = 0;
	int sz;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", c->pid, d->fd);
	rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (rd < 0)
		return -errno;
	sz = fcntl(rd, F_GETPIPE_SZ);
	if (sz <= 0) {
		err = sz < 0 ? -errno : -EINVAL;
		goto out;
	}
	*size = (uint32_t)sz;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		err = -errno;
		goto out;
	}
	int got_sz = fcntl(p[1], F_SETPIPE_SZ, sz);
	if (got_sz < sz) {
		err = got_sz < 0 ? -errno : -ENOSPC;
		goto out;
	}
	ssize_t n = tee(rd, p[1], (size_t)sz, SPLICE_F_NONBLOCK);
	if (n < 0) {
		err = errno == EAGAIN ? 0 : -errno;    /* EAGAIN: empty */
		goto out;
	}
	for (size_t got = 0; !err && got < (size_t)n;) {
		uint8_t tmp[65536];
		ssize_t r = read(p[0], tmp, sizeof(tmp));
		if (r <= 0)
			err = r < 0 ? -errno : -EIO;
		else
			err = buf_put(out, tmp, (size_t)r), got += (size_t)r;
	}
out:
	close(rd);
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	return err;
}

static int other_end_closed(struct capture *c, struct cap_fd *d, uint32_t flags)
{
	int fd = fd_local(c, d);
	struct pollfd p = { .fd = fd, .events = (flags & CKIMG_PIPE_HAS_READER) ? POLLIN : POLLOUT };

	if (fd < 0 || poll(&p, 1, 0) < 0)
		return 0;
	return (flags & CKIMG_PIPE_HAS_READER) ? (p.revents & POLLHUP) != 0 : (p.revents & POLLERR) != 0;
}

static int pipe_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_pipe_fixed x = {
		.fixed_size = sizeof(x), .pipe_id = d->f.inode, .dev_major = d->f.dev_major,
		.dev_minor = d->f.dev_minor,
	};
	struct buf data = { 0 }, b = { 0 };
	size_t n;
	struct cap_fd *all = fd_all(c, &n);
	int err, fifo = strncmp(d->link, "pipe:[", 6) != 0;

	/* one record per pipe: the lowest description on it writes it */
	for (size_t i = 0; i < n; i++) {
		struct cap_fd *e = &all[i];
		if (e->file == e && e != d && e->f.kind == CKIMG_FD_FIFO && e->f.inode == d->f.inode &&
		    e->f.dev_major == d->f.dev_major && e->f.dev_minor == d->f.dev_minor && e->fd < d->fd)
			return 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct cap_fd *e = &all[i];
		if (e->f.kind != CKIMG_FD_FIFO || e->f.inode != d->f.inode || e->f.dev_major != d->f.dev_major ||
		    e->f.dev_minor != d->f.dev_minor)
			continue;
		uint32_t acc = e->f.open_flags & O_ACCMODE;
		x.flags |= acc == O_RDONLY ? CKIMG_PIPE_HAS_READER : acc == O_WRONLY ? CKIMG_PIPE_HAS_WRITER :
			   CKIMG_PIPE_HAS_READER | CKIMG_PIPE_HAS_WRITER;
	}
	if (fifo)
		x.flags |= CKIMG_PIPE_FIFO;
	uint32_t size = 0;
	err = peek_pipe(c, d, &data, &size);
	if (err)
		return err;
	x.pipe_size = size;
	dev_t dev = makedev(d->f.dev_major, d->f.dev_minor);
	if (tree_earlier_holds(c, dev, d->f.inode)) {
		x.flags |= CKIMG_PIPE_DATA_ELSEWHERE;   /* one copy of the bytes per tree */
		data.len = 0;
	}
	x.data_length = (uint32_t)data.len;
	/* An anonymous pipe with one end in another process comes back detached (that process
	 * keeps its end); one whose other end is closed everywhere comes back exactly (poll(2) on our copy: POLLHUP, no writer left; POLLERR, no reader). */
	if (!fifo && (x.flags & (CKIMG_PIPE_HAS_READER | CKIMG_PIPE_HAS_WRITER)) !=
		     (CKIMG_PIPE_HAS_READER | CKIMG_PIPE_HAS_WRITER) && !other_end_closed(c, d, x.flags) &&
	    !tree_other_holds(c, dev, d->f.inode, (x.flags & CKIMG_PIPE_HAS_READER) ? O_WRONLY : O_RDONLY) &&
	    !unix_pipe_in_flight(c, dev, d->f.inode, (x.flags & CKIMG_PIPE_HAS_READER) ? O_WRONLY : O_RDONLY)) {
		const char *why = x.flags & CKIMG_PIPE_HAS_READER ?
			"the pipe's writing end is held by another process; restore gives this end the buffered bytes, then end of file" :
			"the pipe's reading end is held by another process; restore sends this end's writes to /dev/null";
		for (size_t i = 0; !err && i < n; i++)
			if (all[i].f.kind == CKIMG_FD_FIFO && all[i].f.inode == d->f.inode &&
			    all[i].f.dev_major == d->f.dev_major && all[i].f.dev_minor == d->f.dev_minor)
				err = fd_peer_outside(c, &all[i], "%s", why);
	}
	if (!err)
		err = buf_put(&b, &x, sizeof(x));
	if (!err)
		err = buf_put(&b, data.p, data.len);
	if (!err)
		err = fd_emit(c, CKIMG_REC_PIPE, (uint32_t)d->fd, d->f.inode, &b);
	buf_free(&b);
	buf_free(&data);
	return err;
}

const struct fd_ops pipe_ops = {
	.name = "pipe",
	.match = pipe_match,
	.dump = pipe_dump,
};

const struct fd_ops fifo_ops = {
	.name = "fifo",
	.match = fifo_match,
	.dump = pipe_dump,
};
