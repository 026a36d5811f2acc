/*
 * The image file (FORMAT.md sections 1-3), written streaming and atomically: an unnamed
 * O_TMPFILE in the destination directory (or a hidden temp name where O_TMPFILE is not
 * supported), mode 0600; records are appended at offsets reserved in order (several threads
 * may then pwrite their records concurrently); image_finish() writes INDEX and TRAILER, fsyncs,
 * gives the file a temp name with linkat, renames it over the destination and fsyncs the
 * directory. Until then nothing is visible under the destination name.
 */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "crc32.h"

static int pwrite_all(int fd, const struct iovec *iov_in, int iovcnt, uint64_t off)
{
	struct iovec iov[16];
	if (iovcnt > 16)
		return -EINVAL;
	memcpy(iov, iov_in, sizeof(*iov) * (size_t)iovcnt);
	struct iovec *v = iov;
	while (iovcnt > 0) {
		ssize_t n = pwritev(fd, v, iovcnt, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		off += (uint64_t)n;
		while (iovcnt > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int image_open(struct image *im, const char *path)
{
	struct ckimg_header h;
	char *d = NULL;
	int err;

	memset(im, 0, sizeof(*im));
	im->fd = im->dirfd = -1;
	pthread_mutex_init(&im->lock, NULL);
	im->final_path = strdup(path);
	d = strdup(path);
	if (!im->final_path || !d)
		return -ENOMEM;
	im->dir_path = strdup(dirname(d));
	free(d);
	if (!im->dir_path)
		return -ENOMEM;
	im->dirfd = open(im->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (im->dirfd < 0)
		return cap_fail(-errno, "%s", im->dir_path);
	im->fd = open(im->dir_path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (im->fd >= 0) {
		im->tmpfile = 1;
	} else {
		char *b = strdup(path), tmp[4200];
		if (!b)
			return -ENOMEM;
		snprintf(tmp, sizeof(tmp), "%s/.%s.ckimg-tmp-%d", im->dir_path, basename(b), (int)getpid());
		free(b);
		im->tmp_path = strdup(tmp);
		if (!im->tmp_path)
			return -ENOMEM;
		im->fd = open(tmp, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
		if (im->fd < 0) {
			free(im->tmp_path);
			im->tmp_path = NULL;
			return cap_fail(-errno, "create %s", tmp);
		}
	}
	fchmod(im->fd, 0600);

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, CKIMG_MAGIC, 8);
	h.version_major = CKIMG_VERSION_MAJOR;
	h.version_minor = CKIMG_VERSION_MINOR;
	h.header_size = CKIMG_HEADER_SIZE;
	h.page_size = PAGE_SIZE_4K;
	h.machine = CKIMG_EM_X86_64;
	h.created_ns = now_ns(CLOCK_REALTIME);
	if (getrandom(h.image_id, sizeof(h.image_id), 0) != (ssize_t)sizeof(h.image_id))
		memset(h.image_id, 0, sizeof(h.image_id));
	memcpy(im->image_id, h.image_id, 16);
	h.header_crc = ck_crc32(0, &h, 60);
	struct iovec iov = { &h, sizeof(h) };
	err = pwrite_all(im->fd, &iov, 1, 0);
	if (err)
		return cap_fail(err, "write %s", path);
	im->off = sizeof(h);
	return 0;
}

int image_reserve_at(struct image *im, uint64_t at, uint16_t type, uint64_t payload_len,
		     uint32_t key32, uint64_t key64, uint32_t aux_a, uint32_t aux_b, uint32_t *seq)
{
	int err = 0;
	pthread_mutex_lock(&im->lock);
	if (at < im->off) {
		err = -EINVAL;          /* records go to the file in order */
		goto out;
	}
	if (im->nindex == im->index_cap) {
		size_t cap = im->index_cap ? im->index_cap * 2 : 1024;
		struct ckimg_index_entry *n = realloc(im->index, cap * sizeof(*n));
		if (!n) {
			err = -ENOMEM;
			goto out;
		}
		im->index = n;
		uint32_t *o = realloc(im->owners, cap * sizeof(*o));
		if (!o) {
			err = -ENOMEM;
			goto out;
		}
		im->owners = o;
		im->index_cap = cap;
	}
	im->owners[im->nindex] = im->owner;
	*seq = im->seq++;
	im->index[im->nindex++] = (struct ckimg_index_entry){
		.type = type, .flags = type == CKIMG_REC_TREE ? CKIMG_RECF_MUST_UNDERSTAND : 0, .key32 = key32, .offset = at,
		.payload_length = payload_len, .key64 = key64, .aux_a = aux_a, .aux_b = aux_b,
	};
	im->off = at + CKIMG_RECORD_HDR_SIZE + payload_len;
out:
	pthread_mutex_unlock(&im->lock);
	return err;
}

int image_reserve(struct image *im, uint16_t type, uint64_t payload_len, uint32_t key32,
		  uint64_t key64, uint32_t aux_a, uint32_t aux_b, uint64_t *off, uint32_t *seq)
{
	pthread_mutex_lock(&im->lock);
	*off = im->off;
	pthread_mutex_unlock(&im->lock);
	return image_reserve_at(im, *off, type, payload_len, key32, key64, aux_a, aux_b, seq);
}

static int write_record_at(struct image *im, uint64_t off, uint16_t type, uint16_t flags, uint32_t seq,
			   const struct iovec *iov, int iovcnt, uint64_t payload_len, uint32_t payload_crc);
static int stage_flush(struct image *im);

int image_write_at(struct image *im, uint64_t off, uint16_t type, uint32_t seq,
		   const struct iovec *iov, int iovcnt, uint64_t payload_len, uint32_t payload_crc)
{
	return write_record_at(im, off, type, 0, seq, iov, iovcnt, payload_len, payload_crc);
}

int image_record_ex(struct image *im, uint16_t type, uint16_t flags, const struct buf *payload,
		    uint32_t key32, uint64_t key64, uint32_t aux_a, uint32_t aux_b)
{
	uint64_t off;
	uint32_t seq;
	int err = image_reserve(im, type, payload->len, key32, key64, aux_a, aux_b, &off, &seq);
	if (err)
		return err;
	pthread_mutex_lock(&im->lock);
	im->index[seq].flags = flags;    /* entries are appended in sequence order */
	pthread_mutex_unlock(&im->lock);
	struct iovec iov = { payload->p, payload->len };
	return write_record_at(im, off, type, flags, seq, &iov, 1, payload->len,
			       ck_crc32(0, payload->p, payload->len));
}

static int write_record_at(struct image *im, uint64_t off, uint16_t type, uint16_t flags, uint32_t seq,
			   const struct iovec *iov, int iovcnt, uint64_t payload_len, uint32_t payload_crc)
{
	struct ckimg_record_header rh;
	struct iovec v[16];

	if (iovcnt > 15)
		return -EINVAL;
	memset(&rh, 0, sizeof(rh));
	memcpy(rh.magic, CKIMG_RECORD_MAGIC, 4);
	rh.type = type;
	rh.flags = flags | (type == CKIMG_REC_TREE ? CKIMG_RECF_MUST_UNDERSTAND : 0);
	rh.payload_length = payload_len;
	rh.payload_crc = payload_crc;
	rh.sequence = seq;
	rh.owner_pid = type == CKIMG_REC_TREE ? 0 : im->owner;
	rh.header_crc = ck_crc32(0, &rh, 28);
	v[0] = (struct iovec){ &rh, sizeof(rh) };
	memcpy(v + 1, iov, sizeof(*iov) * (size_t)iovcnt);
	if (im->stage) {                /* gathered (image_stage) */
		uint64_t len = CKIMG_RECORD_HDR_SIZE + payload_len;
		int err = 0;
		if (im->stage_len && (off != im->stage_off + im->stage_len || im->stage_len + len > im->stage_cap))
			err = stage_flush(im);     /* not adjacent, or full: what is gathered goes first */
		if (err)
			return err;
		if (len <= im->stage_cap) {
			if (!im->stage_len)
				im->stage_off = off;
			for (int k = 0; k <= iovcnt; k++) {
				memcpy(im->stage + im->stage_len, v[k].iov_base, v[k].iov_len);
				im->stage_len += v[k].iov_len;
			}
			return 0;
		}
	}
	int err = pwrite_all(im->fd, v, iovcnt + 1, off);
	return err ? cap_fail(err, "write image") : 0;
}

static int stage_flush(struct image *im)
{
	int err = 0;
	if (im->stage_len) {
		struct iovec v = { im->stage, im->stage_len };
		err = pwrite_all(im->fd, &v, 1, im->stage_off);
		if (err)
			err = cap_fail(err, "write image");
	}
	im->stage_len = 0;
	return err;
}

#define STAGE_BYTES (4u << 20)

int image_stage(struct image *im, int on)
{
	if (on) {
		if (!im->stage) {
			im->stage = cap_alloc_buf(STAGE_BYTES);   /* (none: records go one by one) */
			im->stage_cap = im->stage ? STAGE_BYTES : 0;
			im->stage_len = 0;
		}
		return 0;
	}
	int err = stage_flush(im);
	cap_free_buf(im->stage, im->stage_cap);
	im->stage = NULL;
	im->stage_cap = 0;
	return err;
}

int image_record(struct image *im, uint16_t type, const struct buf *payload, uint32_t key32,
		 uint64_t key64)
{
	uint64_t off;
	uint32_t seq;
	int err = image_reserve(im, type, payload->len, key32, key64, 0, 0, &off, &seq);
	if (err)
		return err;
	struct iovec iov = { payload->p, payload->len };
	return image_write_at(im, off, type, seq, &iov, 1, payload->len,
			      ck_crc32(0, payload->p, payload->len));
}

void image_writeback(struct image *im, uint64_t upto)
{
	/* Start writeback of what is written so far, so the final fsync has little left. */
	uint64_t from = im->synced_to;
	if (upto > from + (8u << 20)) {
		sync_file_range(im->fd, (off_t)from, (off_t)(upto - from), SYNC_FILE_RANGE_WRITE);
		im->synced_to = upto;
	}
}

/* A tree image's index: each entry followed by its record's owner (FORMAT.md "Process trees"). */
static uint8_t *tree_index(struct image *im, size_t *len)
{
	const size_t esz = CKIMG_INDEX_ENTRY_SIZE_TREE;
	uint8_t *p = calloc(im->nindex ? im->nindex : 1, esz);

	if (!p)
		return NULL;
	for (size_t i = 0; i < im->nindex; i++) {
		memcpy(p + i * esz, &im->index[i], sizeof(im->index[i]));
		uint32_t owner = im->index[i].type == CKIMG_REC_TREE ? 0 : im->owners[i];
		memcpy(p + i * esz + sizeof(im->index[i]), &owner, 4);
	}
	*len = im->nindex * esz;
	return p;
}

int image_finish(struct image *im)
{
	struct ckimg_index_fixed ix = { sizeof(ix), sizeof(struct ckimg_index_entry), im->nindex };
	size_t ilen = sizeof(struct ckimg_index_entry) * im->nindex;
	uint8_t *entries = (uint8_t *)im->index, *tree_entries = NULL;
	int err = image_stage(im, 0);   /* (gathered records first) */

	if (err)
		return err;

	if (im->tree) {
		tree_entries = tree_index(im, &ilen);
		if (!tree_entries)
			return -ENOMEM;
		entries = tree_entries;
		ix.entry_size = CKIMG_INDEX_ENTRY_SIZE_TREE;
	}
	uint64_t off = im->off, payload = sizeof(ix) + ilen;
	uint32_t crc = ck_crc32(ck_crc32(0, &ix, sizeof(ix)), entries, ilen);
	struct iovec iov[2] = { { &ix, sizeof(ix) }, { entries, ilen } };

	im->owner = 0;
	err = image_write_at(im, off, CKIMG_REC_INDEX, im->seq, iov, 2, payload, crc);
	free(tree_entries);
	if (err)
		return err;
	struct ckimg_trailer t;
	memset(&t, 0, sizeof(t));
	memcpy(t.magic, CKIMG_TRAILER_MAGIC, 8);
	t.index_offset = off;
	t.record_count = im->nindex;
	t.trailer_crc = ck_crc32(0, &t, 28);
	struct iovec tv = { &t, sizeof(t) };
	uint64_t toff = off + CKIMG_RECORD_HDR_SIZE + payload;
	err = pwrite_all(im->fd, &tv, 1, toff);
	if (err)
		return cap_fail(err, "write image");
	if (ftruncate(im->fd, (off_t)(toff + sizeof(t))) < 0)   /* drop any preallocated tail */
		return cap_fail(-errno, "truncate image");
	if (fsync(im->fd) < 0)
		return cap_fail(-errno, "fsync image");
	if (im->tmpfile) {
		char proc[64], tmp[4200], *b = strdup(im->final_path);
		if (!b)
			return -ENOMEM;
		snprintf(tmp, sizeof(tmp), "%s/.%s.ckimg-tmp-%d", im->dir_path, basename(b), (int)getpid());
		free(b);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", im->fd);
		unlink(tmp);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0)
			return cap_fail(-errno, "link %s", tmp);
		im->tmp_path = strdup(tmp);
		if (!im->tmp_path) {
			unlink(tmp);
			return -ENOMEM;
		}
	}
	if (rename(im->tmp_path, im->final_path) < 0)
		return cap_fail(-errno, "rename to %s", im->final_path);
	free(im->tmp_path);
	im->tmp_path = NULL;
	fsync(im->dirfd);
	im->off = toff + sizeof(t);
	close(im->fd);
	close(im->dirfd);
	im->fd = im->dirfd = -1;
	return 0;
}

void image_abort(struct image *im)
{
	cap_free_buf(im->stage, im->stage_cap);
	im->stage = NULL;
	if (im->tmp_path)
		unlink(im->tmp_path);
	if (im->fd >= 0)
		close(im->fd);
	if (im->dirfd >= 0)
		close(im->dirfd);
	im->fd = im->dirfd = -1;
	free(im->tmp_path);
	free(im->final_path);
	free(im->dir_path);
	free(im->index);
	free(im->owners);
	im->tmp_path = im->final_path = im->dir_path = NULL;
	im->index = NULL;
	im->owners = NULL;
}
