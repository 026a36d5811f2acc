/*
 * Pipes and FIFOs (pipe(7), fifo(7)). An anonymous pipe is named "pipe:[INODE]" by
 * /proc/PID/fd; a FIFO is a path whose stat says S_IFIFO.
 */
#include "fds.h"

#include <string.h>

static int pipe_match(struct capture *c, struct cap_fd *d)
{
	return d->f.kind == CKIMG_FD_FIFO && !strncmp(d->link, "pipe:[", 6);
}

static int fifo_match(struct capture *c, struct cap_fd *d)
{
	return d->f.kind == CKIMG_FD_FIFO;
}

const struct fd_ops pipe_ops = {
	.name = "pipe",
	.match = pipe_match,
};

const struct fd_ops fifo_ops = {
	.name = "fifo",
	.match = fifo_match,
};
