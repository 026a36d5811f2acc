/*
 * Files the image must carry (FORMAT.md "Files and terminals"), two fd kinds and the mapped
 * files: an fd on a regular file gets an FD_FILE record (size, mtime, ctime: restore warns when the file changed); an fd on an
 * unlinked file or a memfd, and a mapping of either, make one FILE_CONTENT per (dev, inode)
 * whose bytes go into FILE_DATA runs. Content is read while the target is frozen, through
 * /proc/PID/fd/N or /proc/PID/map_files/S-E (both name the inode even without a path), and
 * only where lseek(SEEK_DATA/SEEK_HOLE) finds data: holes stay holes.
 */
#include "fds.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include "crc32.h"
#include "lzf.h"

#define RUN_BYTES (1u << 20)      /* FILE_DATA run size written (spec allows 16 MiB) */

static const char DELETED_SUFFIX[] = " (deleted)";

static int ends_with_deleted(const char *s)
{
	int deleted;

	pt_undeleted_len(s, &deleted);
	return deleted;
}

static uint64_t ts_ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

/* The content for (dev, inode), created on first sight. */
static struct file_content *content_for(struct capture *c, const struct stat *st, const char *link,
					const char *src)
{
	for (size_t i = 0; i < c->ncontents; i++) {
		struct file_content *x = &c->contents[i];
		if (x->inode == st->st_ino && x->dev == st->st_dev)
			return x;
	}
	struct file_content *n = realloc(c->contents, (c->ncontents + 1) * sizeof(*n));
	if (!n)
		return NULL;
	c->contents = n;
	struct file_content *x = &n[c->ncontents];
	memset(x, 0, sizeof(*x));
	x->id = (uint32_t)++c->ncontents;
	x->dev = st->st_dev;
	x->inode = st->st_ino;
	x->memfd = !strncmp(link, "/memfd:", 7);
	/* DELETED: the path without " (deleted)"; MEMFD: the name without "/memfd:" too */
	const char *p = x->memfd ? link + 7 : link;
	x->path = strndup(p, pt_undeleted_len(p, NULL));
	snprintf(x->src, sizeof(x->src), "%s", src);
	if (!x->path) {
		c->ncontents--;
		return NULL;
	}
	return x;
}

static int is_content_link(const struct cap_fd *d)
{
	return !strncmp(d->link, "/memfd:", 7) || ends_with_deleted(d->link) ||
	       (d->have_stat && d->st.st_nlink == 0);
}

/* FD_FILE for every fd of description d (they share the file; each fd is keyed alone). */
static int emit_fd_files(struct capture *c, struct cap_fd *d, uint32_t content_id, uint32_t flags)
{
	size_t n;
	struct cap_fd *all = fd_all(c, &n);

	for (size_t i = 0; i < n; i++) {
		struct cap_fd *e = &all[i];
		if (e->file != d)
			continue;
		struct ckimg_fd_file_fixed x = {
			.fixed_size = sizeof(x), .fd = (uint32_t)e->fd, .content_id = content_id, .flags = flags,
			.size = (uint64_t)d->st.st_size, .mtime_ns = ts_ns(&d->st.st_mtim),
			.ctime_ns = ts_ns(&d->st.st_ctim),
		};
		struct buf b = { (uint8_t *)&x, sizeof(x), sizeof(x) };
		int err = fd_emit(c, CKIMG_REC_FD_FILE, x.fd, 0, &b);
		if (err)
			return err;
	}
	return 0;
}

/* fd kind "deleted": an unlinked regular file or a memfd; its bytes go into the image. */
static int deleted_match(struct capture *c, struct cap_fd *d)
{
	return d->f.kind == CKIMG_FD_REGULAR && d->have_stat && is_content_link(d);
}

static int deleted_dump(struct capture *c, struct cap_fd *d)
{
	char path[96];

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", c->pid, d->fd);
	struct file_content *fc = content_for(c, &d->st, d->link, path);
	if (!fc)
		return -ENOMEM;
	return emit_fd_files(c, d, fc->id, fc->memfd ? CKIMG_FDFILE_MEMFD : CKIMG_FDFILE_DELETED);
}

const struct fd_ops deleted_ops = {
	.name = "deleted file",
	.match = deleted_match,
	.dump = deleted_dump,
};

/* fd kind "regular file on disk": identity only (restore warns when it changed). */
static int regfile_match(struct capture *c, struct cap_fd *d)
{
	return d->f.kind == CKIMG_FD_REGULAR && d->have_stat && d->link[0] == '/';
}

static int regfile_dump(struct capture *c, struct cap_fd *d)
{
	return emit_fd_files(c, d, 0, 0);
}

const struct fd_ops regfile_ops = {
	.name = "file",
	.match = regfile_match,
	.dump = regfile_dump,
};

/* Areas mapping a deleted file or a memfd share the content of the fds on the same inode. */
static int mapped_contents(struct capture *c)
{
	char mf[96];
	struct stat st;

	for (size_t i = 0; i < c->nareas; i++) {
		struct area *a = &c->areas[i];
		int memfd = !strncmp(a->path, "/memfd:", 7);
		if (a->kind != CKIMG_KIND_FILE && !(a->kind == CKIMG_KIND_SHMEM && memfd))
			continue;
		if (!(a->flags & CKIMG_AREA_DELETED) && !memfd)
			continue;
		snprintf(mf, sizeof(mf), "/proc/%d/map_files/%llx-%llx", c->pid,
			 (unsigned long long)a->start, (unsigned long long)a->end);
		if (stat(mf, &st) < 0 || !S_ISREG(st.st_mode))
			continue;       /* restore falls back to the stored pages */
		char link[4200];
		snprintf(link, sizeof(link), "%s%s", a->path, (a->flags & CKIMG_AREA_DELETED) ? DELETED_SUFFIX : "");
		struct file_content *fc = content_for(c, &st, link, mf);
		if (!fc)
			return -ENOMEM;
		fc->flags |= CKIMG_CONTENT_MAPPED;
		a->has_content = 1;
		if (a->file_id != CKIMG_NO_FILE)
			c->files[a->file_id - 1].has_content = 1;   /* no SHA-256: the bytes are stored */
		if ((a->flags & CKIMG_AREA_SHARED) && (a->prot & CKIMG_PROT_WRITE))
			fc->flags |= CKIMG_CONTENT_WRITE_SHARED;
	}
	return 0;
}

int collect_file_contents(struct capture *c)
{
	int err = mapped_contents(c);
	return err ? cap_fail(err, "files mapped by the process") : 0;
}

/* Compress one run with the image's codec; 0 (store raw) when it does not shrink. */
static size_t compress_run(int codec, const uint8_t *raw, size_t len, uint8_t *dst, size_t cap,
			   struct lzf_state *lzf)
{
	switch (codec) {
	case CKIMG_CODEC_LZ4: {
		int r = LZ4_compress_default((const char *)raw, (char *)dst, (int)len, (int)cap);
		return r > 0 ? (size_t)r : 0;
	}
	case CKIMG_CODEC_LZF:
		return lzf_compress(raw, len, dst, cap, lzf);
	case CKIMG_CODEC_DEFLATE: {
		z_stream z;
		memset(&z, 0, sizeof(z));
		if (deflateInit2(&z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return 0;
		z.next_in = (Bytef *)raw;
		z.avail_in = (uInt)len;
		z.next_out = dst;
		z.avail_out = (uInt)cap;
		size_t out = deflate(&z, Z_FINISH) == Z_STREAM_END ? cap - z.avail_out : 0;
		deflateEnd(&z);
		return out;
	}
	}
	return 0;
}

struct run {
	uint64_t off;
	uint32_t len;
};

/* Data ranges of fd (SEEK_DATA/SEEK_HOLE), cut into runs of at most RUN_BYTES. */
static int find_runs(int fd, uint64_t size, struct run **out, size_t *nout)
{
	struct run *r = NULL;
	size_t n = 0, cap = 0;
	off_t pos = 0;

	while ((uint64_t)pos < size) {
		off_t d = lseek(fd, pos, SEEK_DATA);
		if (d < 0) {
			if (errno == ENXIO)
				break;           /* only a hole remains */
			if (errno != EINVAL || pos)
				goto fail;
			d = 0;                   /* no SEEK_DATA here: all of it is data */
		}
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > size)
			h = (off_t)size;
		for (off_t s = d; s < h; s += RUN_BYTES) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				struct run *q = realloc(r, cap * sizeof(*q));
				if (!q) {
					errno = ENOMEM;
					goto fail;
				}
				r = q;
			}
			r[n].off = (uint64_t)s;
			r[n].len = (uint32_t)((h - s) < RUN_BYTES ? (h - s) : RUN_BYTES);
			n++;
		}
		pos = h;
	}
	*out = r;
	*nout = n;
	return 0;
fail:;
	int e = -errno;
	free(r);
	return e;
}

/* One run to write: which content, its fd here, where. */
struct job {
	const struct file_content *fc;
	int fd;
	struct run r;
};

struct jobs {
	struct capture *c;
	struct image *im;
	struct job *v;
	size_t n;
	size_t next;                   /* next job to take (under lock) */
	pthread_mutex_t lock;
	int err;                       /* first error */
};

static int put_data(struct capture *c, struct image *im, const struct job *j, uint8_t *raw, uint8_t *packed,
		    size_t packed_cap, struct lzf_state *lzf)
{
	const struct run *r = &j->r;
	ssize_t got = pread(j->fd, raw, r->len, (off_t)r->off);
	if (got < 0)
		return cap_fail(-errno, "reading %s (file content %u) at %llu", j->fc->path, j->fc->id,
				(unsigned long long)r->off);
	if ((size_t)got < r->len)           /* shrunk by someone else: the rest reads as zero */
		memset(raw + got, 0, r->len - (size_t)got);
	size_t plen = c->codec == CKIMG_CODEC_NONE ? 0 : compress_run(c->codec, raw, r->len, packed, packed_cap, lzf);
	int codec = plen && plen < r->len ? c->codec : CKIMG_CODEC_NONE;
	const uint8_t *data = codec == CKIMG_CODEC_NONE ? raw : packed;
	size_t dlen = codec == CKIMG_CODEC_NONE ? r->len : plen;
	struct ckimg_file_data_fixed x = {
		.fixed_size = sizeof(x), .content_id = j->fc->id, .offset = r->off, .length = r->len,
		.codec = (uint8_t)codec, .stored_size = (uint32_t)dlen, .raw_crc = ck_crc32(0, raw, r->len),
	};
	uint64_t off;
	uint32_t seq;
	uint64_t plen_total = sizeof(x) + dlen;
	int err = image_reserve(im, CKIMG_REC_FILE_DATA, plen_total, j->fc->id, r->off, r->len, 0, &off, &seq);
	if (err)
		return err;
	struct iovec iov[2] = { { &x, sizeof(x) }, { (void *)data, dlen } };
	/* DATA is raw for codec NONE, so its CRC combines with the header's (one pass) */
	uint32_t dcrc = codec == CKIMG_CODEC_NONE ? x.raw_crc : ck_crc32(0, data, dlen);
	return image_write_at(im, off, CKIMG_REC_FILE_DATA, seq, iov, 2, plen_total,
			      (uint32_t)crc32_combine(ck_crc32(0, &x, sizeof(x)), dcrc, (z_off_t)dlen));
}

/* Worker: take runs until none is left (records may land in any order: FORMAT.md). */
static void *data_worker(void *arg)
{
	struct jobs *js = arg;
	size_t packed_cap = (size_t)LZ4_compressBound(RUN_BYTES) + 64;
	uint8_t *raw = malloc(RUN_BYTES), *packed = malloc(packed_cap);
	struct lzf_state *lzf = calloc(1, sizeof(*lzf));
	int err = raw && packed && lzf ? 0 : -ENOMEM;

	for (;;) {
		pthread_mutex_lock(&js->lock);
		if (err && !js->err)
			js->err = err;
		size_t i = js->err || cap_abort ? js->n : js->next++;
		pthread_mutex_unlock(&js->lock);
		if (i >= js->n)
			break;
		err = put_data(js->c, js->im, &js->v[i], raw, packed, packed_cap, lzf);
	}
	free(raw);
	free(packed);
	free(lzf);
	return NULL;
}

/* Open one content, find its data, write FILE_CONTENT, queue its runs. */
static int plan_content(struct capture *c, struct image *im, struct file_content *fc, struct jobs *js, int *fd_out)
{
	struct run *runs = NULL;
	size_t nruns = 0;
	struct stat st;
	struct buf b = { 0 };
	int err, fd = open(fc->src, O_RDONLY | O_CLOEXEC | O_NOATIME);

	if (fd < 0 && errno == EPERM)
		fd = open(fc->src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cap_fail(-errno, "cannot open %s to store %s", fc->src, fc->path);
	*fd_out = fd;
	if (fstat(fd, &st) < 0)
		return cap_fail(-errno, "fstat %s", fc->src);
	struct ckimg_file_content_fixed x = {
		.fixed_size = sizeof(x), .content_id = fc->id,
		.kind = fc->memfd ? CKIMG_CONTENT_MEMFD : CKIMG_CONTENT_DELETED, .flags = fc->flags,
		.dev_major = major(st.st_dev), .dev_minor = minor(st.st_dev), .inode = st.st_ino,
		.size = (uint64_t)st.st_size, .mtime_ns = ts_ns(&st.st_mtim), .mode = st.st_mode,
		.uid = st.st_uid, .gid = st.st_gid,
	};
	if (fc->memfd) {
		int s = fcntl(fd, F_GET_SEALS);
		x.seals = s > 0 ? (uint32_t)s : 0;
	}
	if ((err = find_runs(fd, x.size, &runs, &nruns)))
		return cap_fail(err, "finding the data of %s", fc->path);
	struct job *q = realloc(js->v, (js->n + nruns + 1) * sizeof(*q));
	if (!q) {
		free(runs);
		return -ENOMEM;
	}
	js->v = q;
	for (size_t i = 0; i < nruns; i++) {
		x.data_bytes += runs[i].len;
		js->v[js->n++] = (struct job){ .fc = fc, .fd = fd, .r = runs[i] };
	}
	free(runs);
	x.run_count = (uint32_t)nruns;
	c->content_bytes += x.data_bytes;
	err = buf_put(&b, &x, sizeof(x));
	if (!err)
		err = buf_put_cstr(&b, fc->path);
	if (!err)
		err = image_record(im, CKIMG_REC_FILE_CONTENT, &b, fc->id, x.inode);
	buf_free(&b);
	return err;
}

/* While frozen: each FILE_CONTENT, then its FILE_DATA runs read and compressed on every core. */
int put_file_contents(struct capture *c, struct image *im)
{
	struct jobs js = { .c = c, .im = im };
	int *fds, err = 0;
	pthread_t th[8];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nth = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu, started = 0;

	if (!c->ncontents)
		return 0;
	fds = malloc(c->ncontents * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	for (size_t i = 0; i < c->ncontents; i++)
		fds[i] = -1;
	for (size_t i = 0; !err && i < c->ncontents; i++)
		err = plan_content(c, im, &c->contents[i], &js, &fds[i]);
	pthread_mutex_init(&js.lock, NULL);
	if ((size_t)nth > js.n)
		nth = js.n ? (int)js.n : 1;
	for (int i = 0; !err && i < nth; i++)
		if (pthread_create(&th[i], NULL, data_worker, &js) == 0)
			started++;
	if (!err && !started)
		data_worker(&js);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&js.lock);
	if (!err)
		err = js.err;
	if (!err && cap_abort)
		err = cap_fail(-EINTR, "interrupted by a signal; the target was released");
	for (size_t i = 0; i < c->ncontents; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	free(js.v);
	return err;
}
