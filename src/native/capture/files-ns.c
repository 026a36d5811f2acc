/*
 * Namespace files (nsfs: an fd opened on /proc/PID/ns/TYPE, its link "net:[4026531833]").
 * The FD record says all: the link names the namespace's type and its inode. Restore opens the
 * namespace again where it still lives (files-ns.c there); ckimg makes no namespaces.
 */
#include <string.h>
#include <sys/vfs.h>

#include "fds.h"

#define NSFS_MAGIC 0x6e736673

/* "TYPE:[INODE]" with TYPE a word of lower-case letters and '_' (net, pid_for_children …). */
static int ns_link_type(const char *link, char *type, size_t typelen)
{
	size_t n = 0;
	while ((link[n] >= 'a' && link[n] <= 'z') || link[n] == '_')
		n++;
	if (!n || n >= typelen || link[n] != ':' || link[n + 1] != '[')
		return 0;
	memcpy(type, link, n);
	type[n] = 0;
	return 1;
}

static int ns_match(struct capture *c, struct cap_fd *d)
{
	char type[32];
	struct statfs sf;
	int fd;

	if (d->f.kind != CKIMG_FD_REGULAR || !ns_link_type(d->link, type, sizeof(type)))
		return 0;
	fd = fd_local(c, d);
	return fd >= 0 && fstatfs(fd, &sf) == 0 && sf.f_type == NSFS_MAGIC;
}

const struct fd_ops ns_ops = {
	.name = "namespace",
	.match = ns_match,
};
