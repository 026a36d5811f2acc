/*
 * Files reopened by path (regular files, directories, devices, ttys) at the recorded offset,
 * and the placeholder for what no kind can bring back: /dev/null with the recorded access
 * mode, so the program's later opens do not land on that number.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fds.h"

static int reg_match(struct rst_fds *s, const struct img_fd *d)
{
	switch (d->f.kind) {
	case CKIMG_FD_REGULAR: case CKIMG_FD_DIRECTORY: case CKIMG_FD_CHARDEV: case CKIMG_FD_BLOCKDEV:
	case CKIMG_FD_TTY:
		return d->path.s[0] == '/';
	}
	return 0;
}

static int reg_open(struct rst_fds *s, struct rst_file *f)
{
	const struct img_fd *d = f->d;
	int flags = (int)d->f.open_flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC);
	int fd = open(d->path.s, flags | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return rst_fds_fail(s, -errno, "cannot reopen %s", d->path.s);
	if ((d->f.kind == CKIMG_FD_REGULAR || d->f.kind == CKIMG_FD_BLOCKDEV) &&
	    lseek(fd, (off_t)d->f.pos, SEEK_SET) < 0) {
		int e = -errno;
		close(fd);
		return rst_fds_fail(s, e, "cannot seek %s to %llu", d->path.s, (unsigned long long)d->f.pos);
	}
	return fd;
}

const struct rst_fd_ops reg_ops = {
	.name = "file",
	.match = reg_match,
	.open = reg_open,
};

static int null_open(struct rst_fds *s, struct rst_file *f)
{
	int fd = open("/dev/null", ((int)f->d->f.open_flags & O_ACCMODE) | O_NOCTTY | O_CLOEXEC);

	return fd < 0 ? rst_fds_fail(s, -errno, "/dev/null") : fd;
}

const struct rst_fd_ops null_ops = {
	.name = "placeholder",
	.open = null_open,
	.placeholder = 1,
};
