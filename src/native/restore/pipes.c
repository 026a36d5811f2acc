/*
 * Pipes and FIFOs (pipe(7), fifo(7)). A pipe whose two ends are both recorded becomes one new
 * pipe again: the first end opened makes it and keeps the other end for its peer. A FIFO is
 * reopened by path without blocking (a reader alone must not wait for a writer).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fds.h"

#define PIPE_TAG 0x70697065u    /* 'pipe' */

static int is_anon_pipe(const struct img_fd *d)
{
	return d->f.kind == CKIMG_FD_FIFO && strncmp(d->path.s, "pipe:[", 6) == 0;
}

/* The other end is recorded too (same inode, other access mode). */
static int pipe_match(struct rst_fds *s, const struct img_fd *d)
{
	const struct img *img = rst_fds_img(s);

	if (!is_anon_pipe(d))
		return 0;
	for (size_t j = 0; j < img->nfds; j++)
		if (&img->fds[j] != d && is_anon_pipe(&img->fds[j]) && img->fds[j].f.inode == d->f.inode &&
		    (img->fds[j].f.open_flags & O_ACCMODE) != (d->f.open_flags & O_ACCMODE))
			return 1;
	return 0;
}

static int pipe_open(struct rst_fds *s, struct rst_file *f)
{
	struct rst_obj *o = rst_obj_get(s, PIPE_TAG, f->d->f.inode);
	int end = (f->d->f.open_flags & O_ACCMODE) == O_RDONLY ? 0 : 1;

	if (!o)
		return rst_fds_fail(s, -ENOMEM, "pipe");
	if (o->fd[0] < 0) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0)
			return rst_fds_fail(s, -errno, "pipe");
		o->fd[0] = rst_fd_scratch(s, p[0]);
		o->fd[1] = rst_fd_scratch(s, p[1]);
		if (o->fd[0] < 0 || o->fd[1] < 0)
			return rst_fds_fail(s, o->fd[0] < 0 ? o->fd[0] : o->fd[1], "pipe");
	}
	int fd = fcntl(o->fd[end], F_DUPFD_CLOEXEC, 0);
	return fd < 0 ? rst_fds_fail(s, -errno, "pipe end") : fd;
}

const struct rst_fd_ops pipe_ops = {
	.name = "pipe",
	.match = pipe_match,
	.open = pipe_open,
};

static int fifo_match(struct rst_fds *s, const struct img_fd *d)
{
	return d->f.kind == CKIMG_FD_FIFO && d->path.s[0] == '/';
}

static int fifo_open(struct rst_fds *s, struct rst_file *f)
{
	const struct img_fd *d = f->d;
	int flags = ((int)d->f.open_flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC)) | O_NOCTTY | O_CLOEXEC;
	int fd = open(d->path.s, flags | O_NONBLOCK);

	if (fd < 0 && errno == ENXIO)   /* write end, no reader yet: O_RDWR never blocks (fifo(7)) */
		fd = open(d->path.s, (flags & ~O_ACCMODE) | O_RDWR | O_NONBLOCK);
	if (fd < 0)
		return rst_fds_fail(s, -errno, "cannot reopen FIFO %s", d->path.s);
	return fd;
}

const struct rst_fd_ops fifo_ops = {
	.name = "fifo",
	.match = fifo_match,
	.open = fifo_open,
};
