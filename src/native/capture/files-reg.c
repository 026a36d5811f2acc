/*
 * Files reopened by path: regular files, directories, character and block devices, ttys.
 * The FD record holds all restore needs (path, open flags, position); nothing more to dump.
 * `other_ops` takes every fd no other kind claimed: it is recorded (FD record only) and
 * restore decides what it can do with it.
 */
#include "fds.h"

static int reg_match(struct capture *c, struct cap_fd *d)
{
	switch (d->f.kind) {
	case CKIMG_FD_REGULAR: case CKIMG_FD_DIRECTORY: case CKIMG_FD_CHARDEV:
	case CKIMG_FD_BLOCKDEV: case CKIMG_FD_TTY:
		return 1;
	}
	return 0;
}

const struct fd_ops reg_ops = {
	.name = "file",
	.match = reg_match,
};

const struct fd_ops other_ops = {
	.name = "other",
};
