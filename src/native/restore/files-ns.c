/*
 * Namespace files (an fd on /proc/PID/ns/TYPE; FD path "TYPE:[INODE]", FD inode the
 * namespace's). ckimg makes no namespaces: the fd is opened on the recorded namespace where
 * it still lives — ours (the usual case: a program that opened /proc/self/ns/net), else any
 * process's that is in it — and restore refuses with one line when nothing holds it any more.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fds.h"

/* The TYPE of "TYPE:[INODE]" (lower-case letters and '_'), or 0. */
static int ns_type(const char *path, char *type, size_t typelen)
{
	size_t n = 0;
	while ((path[n] >= 'a' && path[n] <= 'z') || path[n] == '_')
		n++;
	if (!n || n >= typelen || path[n] != ':' || path[n + 1] != '[')
		return 0;
	memcpy(type, path, n);
	type[n] = 0;
	return 1;
}

static int ns_match(struct rst_fds *s, const struct img_fd *d)
{
	char type[32];
	return d->f.kind == CKIMG_FD_REGULAR && ns_type(d->path.s, type, sizeof(type));
}

/* open /proc/WHO/ns/TYPE if it is namespace `inode`; fd or -1 */
static int open_if(const char *who, const char *type, uint64_t inode)
{
	char p[96];
	struct stat st;

	snprintf(p, sizeof(p), "/proc/%s/ns/%s", who, type);
	if (stat(p, &st) < 0 || (uint64_t)st.st_ino != inode)
		return -1;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &st) < 0 || (uint64_t)st.st_ino != inode)) {   /* it moved meanwhile */
		close(fd);
		fd = -1;
	}
	return fd;
}

static int ns_open(struct rst_fds *s, struct rst_file *f)
{
	const struct img_fd *d = f->d;
	char type[32];
	int fd;

	ns_type(d->path.s, type, sizeof(type));
	if ((fd = open_if("self", type, d->f.inode)) >= 0)
		return fd;
	DIR *dir = opendir("/proc");
	struct dirent *e;
	while (dir && fd < 0 && (e = readdir(dir)))
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9')
			fd = open_if(e->d_name, type, d->f.inode);
	if (dir)
		closedir(dir);
	if (fd < 0)
		return rst_fds_fail(s, -ENOENT, "namespace %s is gone (no process is in it now) and ckimg does not make "
				    "namespaces", d->path.s);
	return fd;
}

const struct rst_fd_ops ns_ops = {
	.name = "namespace",
	.match = ns_match,
	.open = ns_open,
};
