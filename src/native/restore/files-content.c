/*
 * Files rebuilt from the image (FORMAT.md "Files and terminals").
 *
 *   restore_check_fd_files   parent, before the fork: a regular file an fd had open that is
 *                            still on disk (FD_FILE, content_id 0) is compared with what the
 *                            capture saw (identity, size, mtime); each changed file gets one
 *                            warning (restore_fd_files_report, once the process is built),
 *                            --strict refuses. Picks the names --deleted-dir uses.
 *   restore_contents_child   child, before any fd or mapping: every FILE_CONTENT becomes a file
 *                            again — a memfd (name, content, seals) or a regular file created
 *                            where the deleted one was and unlinked at once (or kept in
 *                            --deleted-dir) — with holes where the image has none of its bytes.
 *                            Each is held on a fixed aux number (content_fd_base + index) so fds
 *                            and mappings of the same file all reach this one inode.
 *   deleted_ops              the fd kind: an fd whose FD_FILE names a content is reopened
 *                            through /proc/self/fd/AUX (its own open file description, at its
 *                            recorded offset, with its recorded flags).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fds.h"

static uint64_t ts_ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

/* A file is warned about once per restore, however many fds (and processes of a tree) hold it. */
static int warned_before(const struct img_fd *d)
{
	static struct { uint32_t major, minor; uint64_t inode; } seen[64];
	static size_t nseen;

	for (size_t i = 0; i < nseen; i++)
		if (seen[i].major == d->f.dev_major && seen[i].minor == d->f.dev_minor && seen[i].inode == d->f.inode)
			return 1;
	if (nseen < sizeof(seen) / sizeof(seen[0])) {
		seen[nseen].major = d->f.dev_major;
		seen[nseen].minor = d->f.dev_minor;
		seen[nseen++].inode = d->f.inode;
	}
	return 0;
}

int restore_check_fd_files(struct restore_args *a)
{
	struct img *img = a->img;
	char what[256];

	for (size_t i = 0; i < img->nfd_files; i++) {
		const struct img_fd_file *x = &img->fd_files[i];
		const struct img_fd *d = NULL;
		struct stat st;
		int n = 0;

		if (x->content_idx >= 0)
			continue;
		for (size_t k = 0; k < img->nfds; k++)
			if (img->fds[k].f.fd == x->f.fd)
				d = &img->fds[k];
		if (!d || d->path.s[0] != '/' || (a->inherit_stdio && d->f.fd <= 2) || stat(d->path.s, &st) < 0)
			continue;       /* a missing file is refused when the fd is reopened */
		what[0] = 0;
		if (major(st.st_dev) != d->f.dev_major || minor(st.st_dev) != d->f.dev_minor || st.st_ino != d->f.inode)
			n += snprintf(what + n, sizeof(what) - (size_t)n, "another file (inode %llu, was %llu)",
				      (unsigned long long)st.st_ino, (unsigned long long)d->f.inode);
		if (n < (int)sizeof(what) && (uint64_t)st.st_size != x->f.size)
			n += snprintf(what + n, sizeof(what) - (size_t)n, "%ssize %llu (was %llu)", n ? ", " : "",
				      (unsigned long long)st.st_size, (unsigned long long)x->f.size);
		if (n < (int)sizeof(what) && ts_ns(&st.st_mtim) != x->f.mtime_ns)
			n += snprintf(what + n, sizeof(what) - (size_t)n, "%smodified %.3f s after the capture",
				      n ? ", " : "", ((double)ts_ns(&st.st_mtim) - (double)x->f.mtime_ns) / 1e9);
		if (!n)
			continue;
		if (a->strict)
			return rst_err(a, -ESTALE, "FD_FILE record #%u: fd %u (%s) changed since the capture: %s; "
				       "refusing to restore (--strict)", x->seq, x->f.fd, d->path.s, what);
		if (warned_before(d))
			continue;
		/* said once the process is built: a restore refused for another reason says only why */
		char *w = NULL;
		if (asprintf(&w, "fd %u (%s) changed since the capture: %s", x->f.fd, d->path.s, what) < 0)
			return -ENOMEM;
		char **q = realloc(a->fd_warnings, (a->nfd_warnings + 1) * sizeof(*q));
		if (!q) {
			free(w);
			return -ENOMEM;
		}
		a->fd_warnings = q;
		a->fd_warnings[a->nfd_warnings++] = w;
	}
	if (!a->deleted_dir || !img->ncontents)
		return 0;
	a->content_paths = calloc(img->ncontents, sizeof(char *));
	if (!a->content_paths)
		return -ENOMEM;
	for (size_t i = 0; i < img->ncontents; i++) {
		const struct img_content *c = &img->contents[i];
		char *copy = strdup(c->path.s), name[4096];
		if (!copy)
			return -ENOMEM;
		const char *base = c->f.kind == CKIMG_CONTENT_MEMFD ? NULL : basename(copy);
		if (!base || !base[0] || !strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, "..")) {
			free(copy);
			continue;       /* memfds stay memfds */
		}
		snprintf(name, sizeof(name), "%s/%s", a->deleted_dir, base);
		for (int k = 1; access(name, F_OK) == 0 && k < 1000; k++)
			snprintf(name, sizeof(name), "%s/%s.%d", a->deleted_dir, base, k);
		free(copy);
		if (!(a->content_paths[i] = strdup(name)))
			return -ENOMEM;
		rst_warn("deleted file %s is re-created as %s (--deleted-dir)", c->path.s, name);
	}
	return 0;
}

int restore_fd_files_report(struct restore_args *a)
{
	for (size_t i = 0; i < a->nfd_warnings; i++) {
		rst_warn("%s", a->fd_warnings[i]);
		free(a->fd_warnings[i]);
	}
	free(a->fd_warnings);
	a->fd_warnings = NULL;
	a->nfd_warnings = 0;
	return 0;
}

/* The restore failed: the --deleted-dir files it made go again (nothing half-made is left). */
void restore_contents_abort(struct restore_args *a)
{
	for (size_t i = 0; a->content_paths && i < a->img->ncontents; i++)
		if (a->content_paths[i] && a->contents_made)
			unlink(a->content_paths[i]);
}

/* A new file for content c: memfd, the --deleted-dir name, or the old name (unlinked after). */
static int create_one(struct restore_args *a, const struct img_content *c, size_t ci, int *unlink_after,
		      char *err, size_t errlen)
{
	int fd;

	*unlink_after = 0;
	if (c->f.kind == CKIMG_CONTENT_MEMFD) {
		/* sealing stays possible when seals were recorded without F_SEAL_SEAL, or none at all */
		fd = memfd_create(c->path.s, MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd < 0)
			snprintf(err, errlen, "FILE_CONTENT record #%u: memfd_create(%s): %s", c->seq, c->path.s,
				 strerror(errno));
		return fd < 0 ? -errno : fd;
	}
	if (a->content_paths && a->content_paths[ci]) {
		fd = open(a->content_paths[ci], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			snprintf(err, errlen, "FILE_CONTENT record #%u: cannot create %s: %s", c->seq,
				 a->content_paths[ci], strerror(errno));
		return fd < 0 ? -errno : fd;
	}
	/* the old name, so /proc/PID/fd shows "PATH (deleted)" as before; if taken, a nameless
	 * file in the same directory (O_TMPFILE) */
	fd = open(c->path.s, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		*unlink_after = 1;
		return fd;
	}
	char *copy = strdup(c->path.s);
	if (!copy)
		return -ENOMEM;
	int e = errno;
	fd = open(dirname(copy), O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (fd < 0)
		snprintf(err, errlen, "FILE_CONTENT record #%u: cannot re-create deleted file %s (%s) nor a nameless "
			 "file beside it (%s); use --deleted-dir DIR", c->seq, c->path.s, strerror(e), strerror(errno));
	free(copy);
	return fd < 0 ? -errno : fd;
}

static int fill_one(struct restore_args *a, const struct img_content *c, int fd, uint8_t *buf, char *err,
		    size_t errlen)
{
	struct img *img = a->img;

	if (ftruncate(fd, (off_t)c->f.size) < 0) {
		snprintf(err, errlen, "FILE_CONTENT record #%u (%s): ftruncate %llu: %s", c->seq, c->path.s,
			 (unsigned long long)c->f.size, strerror(errno));
		return -errno;
	}
	for (size_t k = 0; k < c->nruns; k++) {
		const struct img_run *r = &img->runs[c->first_run + k];
		int e = img_read_run(img, r, buf, err, errlen);
		if (e)
			return e;
		for (uint32_t done = 0; done < r->f.length;) {
			ssize_t n = pwrite(fd, buf + done, r->f.length - done, (off_t)(r->f.offset + done));
			if (n <= 0) {
				snprintf(err, errlen, "FILE_CONTENT record #%u (%s): writing %u bytes at %llu: %s", c->seq,
					 c->path.s, r->f.length, (unsigned long long)r->f.offset, strerror(errno));
				return n < 0 ? -errno : -EIO;
			}
			done += (uint32_t)n;
		}
	}
	/* owner first: chown clears set-uid/set-gid bits, the mode after it sets them again
	 * (-1 leaves one unchanged; not root: the file stays ours, without a warning) */
	if (c->f.uid != CKIMG_CONTENT_NO_OWNER || c->f.gid != CKIMG_CONTENT_NO_OWNER)
		(void)!fchown(fd, c->f.uid, c->f.gid);
	fchmod(fd, c->f.mode & 07777);
	struct timespec ts[2] = { { 0, UTIME_OMIT },
				  { (time_t)(c->f.mtime_ns / 1000000000ull), (long)(c->f.mtime_ns % 1000000000ull) } };
	futimens(fd, ts);
	/* seals last: F_SEAL_WRITE would stop our own writes (F_SEAL_SEAL: nothing can be added) */
	if (c->f.kind == CKIMG_CONTENT_MEMFD && c->f.seals &&
	    fcntl(fd, F_ADD_SEALS, (int)(c->f.seals & (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
							F_SEAL_FUTURE_WRITE | 0x20 /* F_SEAL_EXEC */))) < 0) {
		snprintf(err, errlen, "FILE_CONTENT record #%u (memfd %s): seals %#x: %s", c->seq, c->path.s,
			 c->f.seals, strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * Once filled, a re-created file is held read-only: a writer held open (even our own aux fd)
 * makes the kernel refuse it as /proc/PID/exe (PR_SET_MM_MAP's exe_fd denies write access),
 * which a deleted executable needs. The process's own fds and mappings reopen it with their
 * recorded flags through /proc/self/fd, so nothing of theirs depends on this fd's mode.
 */
static int hold_read_only(int fd, const struct img_content *c, char *err, size_t errlen)
{
	char path[64];
	int ro;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	if (ro < 0) {
		snprintf(err, errlen, "FILE_CONTENT record #%u (%s): reopen: %s", c->seq, c->path.s, strerror(errno));
		ro = -errno;
	}
	close(fd);
	return ro;
}

int restore_contents_child(struct restore_args *a, char *err, size_t errlen)
{
	struct img *img = a->img;
	uint32_t maxrun = 1;
	int ret = 0;

	if (!img->ncontents)
		return 0;
	for (size_t i = 0; i < img->nruns; i++)
		if (img->runs[i].f.length > maxrun)
			maxrun = img->runs[i].f.length;
	uint8_t *buf = malloc(maxrun);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; !ret && i < img->ncontents; i++) {
		const struct img_content *c = &img->contents[i];
		int unlink_after = 0, fd;
		if (a->content_tree_fd && a->content_tree_fd[i] > 0) {
			fd = fcntl(a->content_tree_fd[i], F_DUPFD_CLOEXEC, 0);   /* made once for the tree */
			if (fd < 0) {
				snprintf(err, errlen, "FILE_CONTENT record #%u: the tree's copy: %s", c->seq, strerror(errno));
				ret = -errno;
				break;
			}
		} else {
			fd = create_one(a, c, i, &unlink_after, err, errlen);
			if (fd < 0) {
				ret = fd;
				break;
			}
			ret = fill_one(a, c, fd, buf, err, errlen);
			if (!ret && (fd = hold_read_only(fd, c, err, errlen)) < 0)
				ret = fd;
		}
		if (unlink_after)
			unlink(c->path.s);
		if (!ret && dup3(fd, a->content_fd_base + (int)i, O_CLOEXEC) < 0) {
			snprintf(err, errlen, "FILE_CONTENT record #%u: dup: %s", c->seq, strerror(errno));
			ret = -errno;
		}
		if (fd >= 0)
			close(fd);
	}
	free(buf);
	return ret;
}

int restore_content_make(struct restore_args *a, size_t ci, char *err, size_t errlen)
{
	const struct img_content *c = &a->img->contents[ci];
	uint32_t maxrun = 1;
	int unlink_after, ret, fd;

	for (size_t k = 0; k < c->nruns; k++)
		if (a->img->runs[c->first_run + k].f.length > maxrun)
			maxrun = a->img->runs[c->first_run + k].f.length;
	uint8_t *buf = malloc(maxrun);
	if (!buf)
		return -ENOMEM;
	fd = create_one(a, c, ci, &unlink_after, err, errlen);
	ret = fd < 0 ? fd : fill_one(a, c, fd, buf, err, errlen);
	if (!ret && (fd = hold_read_only(fd, c, err, errlen)) < 0)
		ret = fd;
	if (unlink_after)
		unlink(c->path.s);
	free(buf);
	if (ret && fd >= 0)
		close(fd);
	return ret ? ret : fd;
}

/* The fd kind. */
static int deleted_match(struct rst_fds *s, const struct img_fd *d)
{
	const struct img_fd_file *x = img_fd_file(rst_fds_img(s), d->f.fd);
	return x && x->content_idx >= 0;
}

static int deleted_open(struct rst_fds *s, struct rst_file *f)
{
	const struct img_fd *d = f->d;
	const struct img_fd_file *x = img_fd_file(rst_fds_img(s), d->f.fd);
	int flags = (int)d->f.open_flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC);
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", rst_fds_args(s)->content_fd_base + x->content_idx);
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return rst_fds_fail(s, -errno, "cannot reopen the re-created file");
	if (lseek(fd, (off_t)d->f.pos, SEEK_SET) < 0) {
		int e = -errno;
		close(fd);
		return rst_fds_fail(s, e, "cannot seek to %llu", (unsigned long long)d->f.pos);
	}
	return fd;
}

const struct rst_fd_ops deleted_ops = {
	.name = "deleted file",
	.match = deleted_match,
	.open = deleted_open,
};
