/*
 * inotify fds (FORMAT.md 4.25). /proc/PID/fdinfo/N has one line per watch:
 *   inotify wd:%x ino:%lx sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x f_handle:%s
 * A watch names an inode, not a path: the file handle is opened with open_by_handle_at()
 * through a mount of the same filesystem (found in the target's mountinfo by sdev), and the
 * path read back from /proc/self/fd. Restore adds the watches again by path and checks the
 * inode. Events already queued cannot be put back: capture counts them and says so.
 */
#include "fds.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_HANDLE_BYTES 128

static int inotify_match(struct capture *c, struct cap_fd *d)
{
	return d->f.kind == CKIMG_FD_ANON_INODE && !strcmp(d->link, "anon_inode:inotify");
}

/* An fd on a mount of the filesystem whose kernel dev_t is sdev (in the target's view), or -errno. */
static int mount_of(struct capture *c, unsigned int sdev)
{
	char path[64], line[4096];
	unsigned int major = sdev >> 20, minor = sdev & 0xfffff;
	int fd = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", c->pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fd < 0 && fgets(line, sizeof(line), f)) {
		unsigned int ma, mi;
		char mnt[PATH_MAX], full[PATH_MAX + 64];
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &ma, &mi, mnt) != 3 || ma != major || mi != minor)
			continue;
		snprintf(full, sizeof(full), "/proc/%d/root%s", c->pid, mnt);
		fd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
	}
	fclose(f);
	return fd;
}

/* Does an fd of the process hold inode ino of sdev as a deleted file (files-content.c's kind:
 * its bytes go into the image as FILE_CONTENT DELETED)? */
static int holds_deleted(struct capture *c, unsigned int sdev, unsigned long long ino)
{
	size_t n;
	struct cap_fd *all = fd_all(c, &n);

	for (size_t i = 0; i < n; i++) {
		const struct cap_fd *e = &all[i];
		int deleted = 0;
		if (e->f.kind != CKIMG_FD_REGULAR || !e->have_stat || (unsigned long long)e->st.st_ino != ino ||
		    major(e->st.st_dev) != sdev >> 20 || minor(e->st.st_dev) != (sdev & 0xfffff))
			continue;
		pt_undeleted_len(e->link, &deleted);
		if (deleted || e->st.st_nlink == 0)
			return 1;
	}
	return 0;
}

/* The path of the inode a watch's file handle names, into out; 0 or a reason. */
static const char *watched_path(struct capture *c, unsigned int sdev, unsigned long long ino, unsigned int type,
				const char *hex, unsigned int bytes, char *out, size_t outlen)
{
	union { struct file_handle h; unsigned char raw[sizeof(struct file_handle) + MAX_HANDLE_BYTES]; } fh;
	unsigned char *handle = fh.raw + offsetof(struct file_handle, f_handle);
	char link[64];

	if (bytes == 0 || bytes > MAX_HANDLE_BYTES)
		return "the kernel gave no usable file handle";
	fh.h.handle_bytes = bytes;
	fh.h.handle_type = (int)type;
	for (unsigned int i = 0; i < bytes; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &handle[i]) != 1)
			return "the file handle is not hex";
	int mfd = mount_of(c, sdev);
	if (mfd < 0)
		return "no mount of its filesystem is visible";
	int fd = open_by_handle_at(mfd, &fh.h, O_PATH | O_CLOEXEC);
	close(mfd);
	if (fd < 0)
		return errno == ESTALE ? "the watched file no longer exists" : "its file handle cannot be opened";
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, out, outlen - 1);
	close(fd);
	if (n <= 0 || (size_t)n >= outlen - 1)
		return "its path cannot be read";
	out[n] = 0;
	if (n > 10 && !strcmp(out + n - 10, " (deleted)")) {
		/* a deleted file the process still has open is in the image (FILE_CONTENT DELETED,
		 * files-content.c): recorded with the name it had, restore watches the file it
		 * makes again (CRIU: the watch goes to its ghost file) */
		if (!holds_deleted(c, sdev, ino))
			return "the watched file was deleted";
		out[pt_undeleted_len(out, NULL)] = 0;
	}
	return NULL;
}

struct watch {
	struct ckimg_inotify_entry e;
	char *path;
};

static int by_wd(const void *a, const void *b)
{
	uint32_t x = ((const struct watch *)a)->e.wd, y = ((const struct watch *)b)->e.wd;
	return x < y ? -1 : x > y;
}

static int inotify_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_inotify_fixed x = { .fixed_size = sizeof(x), .entry_size = sizeof(struct ckimg_inotify_entry) };
	struct watch *ws = NULL;
	struct buf b = { 0 };
	char path[PATH_MAX];
	size_t n = 0, cap = 0;
	int err = 0, queued = 0;

	if (!d->fdinfo)
		return fd_cannot(c, d, "fdinfo is unreadable");
	for (const char *p = d->fdinfo; p && *p && !err; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		unsigned int wd, sdev, mask, ignored, bytes, type;
		unsigned long long ino;
		int at = 0;
		if (sscanf(p, "inotify wd:%x ino:%llx sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x f_handle:%n",
			   &wd, &ino, &sdev, &mask, &ignored, &bytes, &type, &at) != 7 || !at)
			continue;
		const char *why = watched_path(c, sdev, ino, type, p + at, bytes, path, sizeof(path));
		if (why) {
			err = fd_cannot(c, d, "inotify watch %u (inode %llu): %s", wd, ino, why);
			goto out;
		}
		if (n == cap) {
			struct watch *more = realloc(ws, (cap = cap ? 2 * cap : 8) * sizeof(*ws));
			if (!more) {
				err = -ENOMEM;
				goto out;
			}
			ws = more;
		}
		ws[n].e = (struct ckimg_inotify_entry){ wd, mask, ignored, sdev, ino, (uint32_t)strlen(path), 0 };
		if (!(ws[n].path = strdup(path))) {
			err = -ENOMEM;
			goto out;
		}
		n++;
	}
	/* restore adds them in wd order (the kernel numbers watches cyclically); fdinfo lists
	 * them newest first */
	qsort(ws, n, sizeof(*ws), by_wd);
	x.count = (uint32_t)n;
	err = buf_put(&b, &x, sizeof(x));
	for (size_t i = 0; i < n && !err; i++)
		if (!(err = buf_put(&b, &ws[i].e, sizeof(ws[i].e))))
			err = buf_put(&b, ws[i].path, ws[i].e.path_len);
	/* events already queued are the target's to read; restore cannot queue them again */
	int local = fd_local(c, d);
	if (!err && local >= 0 && ioctl(local, FIONREAD, &queued) == 0 && queued > 0)
		cap_warn("fd %d (inotify): %d bytes of queued events are not kept (the watches are)", d->fd, queued);
	if (!err)
		err = fd_emit(c, CKIMG_REC_INOTIFY, (uint32_t)d->fd, 0, &b);
out:
	for (size_t i = 0; i < n; i++)
		free(ws[i].path);
	free(ws);
	buf_free(&b);
	return err;
}

const struct fd_ops inotify_ops = { .name = "inotify", .match = inotify_match, .dump = inotify_dump };
