/*
 * Pipes and FIFOs (pipe(7), fifo(7)). A pipe comes back as one new pipe whatever the number
 * of fds on it: the first description opened makes it (rst_obj by the recorded inode), sizes
 * it (F_SETPIPE_SZ) and writes the recorded bytes back, and keeps the other end for its peer.
 * A FIFO is reopened by path without blocking (a reader alone must not wait for a writer) and
 * gets its bytes back through a writing end opened for that alone.
 *
 * Format 1.0 images hold no PIPE record: a pipe with both ends recorded comes back empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fds.h"
#include "ptrace_util.h"

#define PIPE_TAG 0x70697065u    /* 'pipe' */
#define FIFO_TAG 0x6669666fu    /* 'fifo' */
#define PIPE_MAX_SIZE (1u << 30)

struct pipe_state {
	struct ckimg_pipe_fixed x;
	const uint8_t *data;
};

int pipe_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_pipe_fixed x;

	if (r->len < 4)
		return snprintf(err, errlen, "payload shorter than its size field"), -EBADMSG;
	memset(&x, 0, sizeof(x));
	memcpy(&x, r->p, r->len < sizeof(x) ? r->len : sizeof(x));
	if (x.fixed_size < sizeof(x) || x.fixed_size > r->len)
		return snprintf(err, errlen, "fixed_size %u (expected >= %zu, <= %llu)", x.fixed_size, sizeof(x),
				(unsigned long long)r->len), -EBADMSG;
	if (x.data_length > r->len - x.fixed_size)
		return snprintf(err, errlen, "data_length %u runs past the payload", x.data_length), -EBADMSG;
	if (x.pipe_size > PIPE_MAX_SIZE || x.data_length > (x.pipe_size ? x.pipe_size : 65536u))
		return snprintf(err, errlen, "data_length %u does not fit pipe_size %u", x.data_length, x.pipe_size),
		       -EBADMSG;
	if (x.pipe_id != r->key64)
		return snprintf(err, errlen, "pipe_id %llu differs from the index key %llu",
				(unsigned long long)x.pipe_id, (unsigned long long)r->key64), -EBADMSG;
	return 0;
}

/* The PIPE record of this pipe (checked before the fork), or 0 when there is none. */
static int pipe_state(struct rst_fds *s, const struct img_fd *d, struct pipe_state *st)
{
	const struct img_fdrec *r = img_fdrec_by_id(rst_fds_img(s), CKIMG_REC_PIPE, d->f.inode);

	memset(st, 0, sizeof(*st));
	if (!r)
		return 0;
	memcpy(&st->x, r->p, sizeof(st->x));
	st->data = r->p + st->x.fixed_size;
	return 1;
}

static int is_anon_pipe(const struct img_fd *d)
{
	return d->f.kind == CKIMG_FD_FIFO && strncmp(d->path.s, "pipe:[", 6) == 0;
}

static int is_reader(const struct img_fd *d)
{
	return (d->f.open_flags & O_ACCMODE) != O_WRONLY;
}

/* Both ends recorded; or one end alone whose other end was closed everywhere (a reader gets
 * the bytes, then end of file; a writer gets EPIPE), or a reader whose writer lived in another
 * process (the same, with a warning). A writing end whose reader is elsewhere falls through to
 * the placeholder (/dev/null), so the program's writes do not kill it with SIGPIPE. */
static int pipe_match(struct rst_fds *s, const struct img_fd *d)
{
	const struct img *img = rst_fds_img(s);
	struct pipe_state st;

	if (!is_anon_pipe(d))
		return 0;
	for (size_t j = 0; j < img->nfds; j++)
		if (&img->fds[j] != d && is_anon_pipe(&img->fds[j]) && img->fds[j].f.inode == d->f.inode &&
		    (img->fds[j].f.open_flags & O_ACCMODE) != (d->f.open_flags & O_ACCMODE))
			return 1;
	if (!pipe_state(s, d, &st))
		return 0;
	return is_reader(d) || !(d->f.state & CKIMG_FDS_PEER_OUTSIDE);
}

/* Size the new pipe and put the recorded bytes back (they fit: pipe_size >= data_length).
 * 0, or -errno with *step naming what failed. */
static int put_back(int wr, const struct pipe_state *st, const char **step)
{
	*step = "F_SETPIPE_SZ";
	if (st->x.pipe_size && fcntl(wr, F_SETPIPE_SZ, (int)st->x.pipe_size) < 0)
		return -errno;
	int fl = fcntl(wr, F_GETFL);
	fcntl(wr, F_SETFL, fl | O_NONBLOCK);
	*step = "writing the buffered bytes back";
	for (uint32_t done = 0; done < st->x.data_length;) {
		ssize_t n = write(wr, st->data + done, st->x.data_length - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (uint32_t)n;
	}
	fcntl(wr, F_SETFL, fl);
	return 0;
}

static int refill(struct rst_fds *s, int wr, const struct pipe_state *st)
{
	const char *step;
	int err = put_back(wr, st, &step);
	return err ? rst_fds_fail(s, err, "%s (pipe of %u bytes, %u waiting)", step, st->x.pipe_size, st->x.data_length) : 0;
}

int rst_pipe_make(const struct img *img, uint64_t pipe_id, int fd[2], const char **step)
{
	const struct img_fdrec *r = img_fdrec_by_id(img, CKIMG_REC_PIPE, pipe_id);
	struct pipe_state st;
	int err;

	*step = "pipe";
	if (pipe2(fd, O_CLOEXEC) < 0)
		return -errno;
	if (!r)
		return 0;
	memcpy(&st.x, r->p, sizeof(st.x));
	st.data = r->p + st.x.fixed_size;
	if ((err = put_back(fd[1], &st, step))) {
		close(fd[0]);
		close(fd[1]);
	}
	return err;
}

static int pipe_open(struct rst_fds *s, struct rst_file *f)
{
	struct rst_obj *o = rst_obj_get(s, PIPE_TAG, f->d->f.inode);
	struct pipe_state st;
	int end = is_reader(f->d) ? 0 : 1, err;

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
		if (pipe_state(s, f->d, &st) && (err = refill(s, o->fd[1], &st)))
			return err;
	}
	/* The first description of an end is the one pipe2() made (a dup of the kept end, which is
	 * closed at the end): its status flags are pipe(2)'s own. Each further description on the
	 * pipe is its own open (its own O_NONBLOCK): reopening the end through /proc gives a new
	 * description — with O_LARGEFILE, which open(2) always sets on 64-bit and F_SETFL cannot
	 * clear, so it is kept for the descriptions that need it (file_fown compares F_GETFL). */
	if (!(o->given & (1u << end))) {
		o->given |= 1u << end;
		int fd = fcntl(o->fd[end], F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? rst_fds_fail(s, -errno, "pipe end") : fd;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", o->fd[end]);
	int fd = open(path, ((int)f->d->f.open_flags & O_ACCMODE) | O_CLOEXEC);
	if (fd < 0)
		fd = fcntl(o->fd[end], F_DUPFD_CLOEXEC, 0);
	return fd < 0 ? rst_fds_fail(s, -errno, "pipe end") : fd;
}

int rst_pipe_end_open(struct rst_fds *s, uint64_t pipe_id, uint32_t open_flags)
{
	struct rst_obj *o = rst_obj_get(s, PIPE_TAG, pipe_id);
	int end = (open_flags & O_ACCMODE) == O_WRONLY ? 1 : 0;
	char path[64];

	if (!o || o->fd[end] < 0)
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", o->fd[end]);
	int fd = open(path, ((int)open_flags & (O_ACCMODE | O_NONBLOCK)) | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
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

static int fifo_deleted(const struct img_fd *d)
{
	int deleted;

	pt_undeleted_len(d->path.s, &deleted);
	return deleted;
}

/* A FIFO whose name was removed: made again under a temporary name beside the old one, held
 * open read-write by the object (its fd[0]) and unlinked; each description opens it through
 * /proc. The path in the FD record is "PATH (deleted)". */
static int fifo_deleted_fd(struct rst_fds *s, const struct img_fd *d)
{
	struct rst_obj *o = rst_obj_get(s, FIFO_TAG, d->f.inode);

	if (!o)
		return rst_fds_fail(s, -ENOMEM, "fifo");
	if (o->fd[0] < 0) {
		char tmp[4200];
		const char *slash = strrchr(d->path.s, '/');
		int dirlen = slash ? (int)(slash - d->path.s) : 0;
		snprintf(tmp, sizeof(tmp), "%.*s/.ckimg-fifo-%llu-%d", dirlen, d->path.s, (unsigned long long)d->f.inode, (int)getpid());
		unlink(tmp);
		if (mkfifo(tmp, (mode_t)(d->f.mode & 07777)) < 0)
			return rst_fds_fail(s, -errno, "cannot make the deleted FIFO again at %s", tmp);
		int fd = open(tmp, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		int e = -errno;
		unlink(tmp);
		if (fd < 0)
			return rst_fds_fail(s, e, "cannot open the deleted FIFO made again at %s", tmp);
		if ((o->fd[0] = rst_fd_scratch(s, fd)) < 0)
			return rst_fds_fail(s, o->fd[0], "fifo");
	}
	return o->fd[0];
}

static int fifo_open(struct rst_fds *s, struct rst_file *f)
{
	const struct img_fd *d = f->d;
	int flags = ((int)d->f.open_flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC)) | O_NOCTTY | O_CLOEXEC;
	if (fifo_deleted(d)) {
		int keep = fifo_deleted_fd(s, d);
		if (keep < 0)
			return keep;
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", keep);
		int fd = open(path, flags | O_NONBLOCK);
		return fd < 0 ? rst_fds_fail(s, -errno, "cannot reopen the deleted FIFO") : fd;
	}
	int fd = open(d->path.s, flags | O_NONBLOCK);

	if (fd < 0 && errno == ENXIO)   /* write end, no reader yet: O_RDWR never blocks (fifo(7)) */
		fd = open(d->path.s, (flags & ~O_ACCMODE) | O_RDWR | O_NONBLOCK);
	if (fd < 0)
		return rst_fds_fail(s, -errno, "cannot reopen FIFO %s", d->path.s);
	return fd;
}

/* Once the FIFO's recorded ends are open, its bytes go back (once per FIFO). */
static int fifo_post_open(struct rst_fds *s, struct rst_file *f)
{
	struct rst_obj *o = rst_obj_get(s, FIFO_TAG, f->d->f.inode);
	struct pipe_state st;
	int wr, err;

	if (!o)
		return rst_fds_fail(s, -ENOMEM, "fifo");
	if (o->priv || !pipe_state(s, f->d, &st) || !st.x.data_length)
		return 0;
	o->priv = o;
	if (fifo_deleted(f->d) && o->fd[0] >= 0)
		return refill(s, o->fd[0], &st);
	wr = open(f->d->path.s, O_RDWR | O_NONBLOCK | O_CLOEXEC);   /* never blocks, reader or not */
	if (wr < 0)
		return rst_fds_fail(s, -errno, "cannot open FIFO %s to write its bytes back", f->d->path.s);
	err = refill(s, wr, &st);
	close(wr);
	return err;
}

const struct rst_fd_ops fifo_ops = {
	.name = "fifo",
	.match = fifo_match,
	.open = fifo_open,
	.post_open = fifo_post_open,
};
