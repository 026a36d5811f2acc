/*
 * Files reopened by path: regular files, directories, character and block devices, ttys.
 * The FD record holds all restore needs (path, open flags, position); nothing more to dump.
 * `other_ops` takes every fd no other kind claimed (io_uring, userfaultfd, perf events, BPF
 * objects, fanotify, pidfds, netlink and packet sockets …): it is recorded (FD record only) and
 * marked unrestorable with the reason, so capture names it and restore refuses unless --force
 * (which keeps the number on /dev/null) — never a silent placeholder.
 */
#include "fds.h"

#include <sys/socket.h>

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

static const char *family_name(int family)
{
	switch (family) {
	case AF_NETLINK: return "netlink";
	case AF_PACKET: return "packet";
	case AF_VSOCK: return "vsock";
	case AF_BLUETOOTH: return "Bluetooth";
	case AF_ALG: return "AF_ALG (kernel crypto)";
	case AF_XDP: return "XDP";
	}
	return NULL;
}

static int other_dump(struct capture *c, struct cap_fd *d)
{
	if (d->f.kind == CKIMG_FD_SOCKET) {
		int family = fd_socket_family(c, d);
		const char *name = family_name(family);
		if (name)
			return fd_cannot(c, d, "%s sockets are not brought back", name);
		return fd_cannot(c, d, "sockets of address family %d are not brought back", family);
	}
	if (d->f.kind == CKIMG_FD_ANON_INODE)
		return fd_cannot(c, d, "%s file descriptors are not brought back", d->link + 11);
	return fd_cannot(c, d, "this kind of file (mode %#o) is not brought back", (unsigned)d->f.mode);
}

const struct fd_ops other_ops = {
	.name = "other",
	.dump = other_dump,
};
