/*
 * Format 1.1 files and terminals, read side (FORMAT.md "Files and terminals"): FILE_CONTENT,
 * FD_FILE and TTY are loaded like other metadata (their payload CRC checked by image.c);
 * FILE_DATA is only described from its FIXED part, its DATA read when the file is rebuilt
 * (img_read_run). Images are hostile: every field that sizes or points at something is
 * checked here, and img_files_check() enforces the cross-record rules (ids unique, runs
 * inside their file and not overlapping, run_count and data_bytes as the runs add up, every
 * FD_FILE and TTY belonging to an FD record).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32.h"
#include "image.h"

#define RECFMT "%s record #%u at offset %llu"
#define RECARG(type, seq, off) img_type_name(type), (unsigned)(seq), (unsigned long long)(off)

static int bad(struct img *img, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(struct img *img, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(img->err, sizeof(img->err), fmt, ap);
	va_end(ap);
	return err;
}

/* Room for one more element at arr[n], zeroed; 0 when out of memory. */
#define GROW(arr, n, cap) ({						\
	int ok_ = 1;							\
	if ((n) == (cap)) {						\
		size_t c_ = (cap) ? (cap) * 2 : 16;			\
		void *p_ = realloc((arr), c_ * sizeof(*(arr)));		\
		if (p_) {						\
			(arr) = p_;					\
			(cap) = c_;					\
		} else {						\
			ok_ = 0;					\
		}							\
	}								\
	if (ok_)							\
		memset(&(arr)[n], 0, sizeof(*(arr)));			\
	ok_;								\
})

/* FIXED part: min(known, fixed_size) bytes copied; *var = offset of VARIABLE. */
static int fixed(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t min, void *out, size_t out_size,
		 uint64_t *var, uint16_t type, uint32_t seq, uint64_t off)
{
	uint32_t fs;

	if (plen < 4)
		return bad(img, -EBADMSG, "BAD_FIELD: " RECFMT ": payload shorter than its size field", RECARG(type, seq, off));
	memcpy(&fs, pl, 4);
	if (fs < min || fs > plen)
		return bad(img, -EBADMSG, "BAD_FIELD: " RECFMT ": fixed_size %u (expected >= %u, <= %llu)",
			   RECARG(type, seq, off), fs, min, (unsigned long long)plen);
	memset(out, 0, out_size);
	memcpy(out, pl, out_size < fs ? out_size : fs);
	*var = fs;
	return 0;
}

static int str_at(const uint8_t *pl, uint64_t plen, uint64_t *pos, struct img_str *out)
{
	uint32_t n;

	if (plen - *pos < 4)
		return -1;
	memcpy(&n, pl + *pos, 4);
	*pos += 4;
	if (plen - *pos < n)
		return -1;
	out->s = malloc((size_t)n + 1);
	if (!out->s)
		return -1;
	memcpy(out->s, pl + *pos, n);
	out->s[n] = 0;
	out->len = n;
	*pos += n;
	return 0;
}

int img_files_parse(struct img *img, uint16_t type, const uint8_t *pl, uint64_t plen, uint32_t seq,
		    uint64_t off)
{
	uint64_t var;
	int err;

	switch (type) {
	case CKIMG_REC_FILE_CONTENT: {
		if (!GROW(img->contents, img->ncontents, img->cap_contents))
			return -ENOMEM;
		struct img_content *c = &img->contents[img->ncontents];
		if ((err = fixed(img, pl, plen, CKIMG_CONTENT_MIN_FIXED, &c->f, sizeof(c->f), &var, type, seq, off)))
			return err;
		if (c->f.fixed_size < sizeof(c->f))
			c->f.uid = c->f.gid = CKIMG_CONTENT_NO_OWNER;   /* older record: owner not recorded */
		img->ncontents++;
		c->seq = seq;
		if (str_at(pl, plen, &var, &c->path))
			return bad(img, -EBADMSG, "BAD_RECORD: " RECFMT ": path runs past the payload", RECARG(type, seq, off));
		if (c->f.content_id == 0 || (c->f.kind != CKIMG_CONTENT_DELETED && c->f.kind != CKIMG_CONTENT_MEMFD))
			return bad(img, -EBADMSG, "BAD_FIELD: " RECFMT ": content id %u, kind %u", RECARG(type, seq, off),
				   c->f.content_id, c->f.kind);
		if (c->f.size > (1ull << 50) || memchr(c->path.s, 0, c->path.len))
			return bad(img, -EBADMSG, "BAD_FIELD: " RECFMT ": size %llu or path", RECARG(type, seq, off),
				   (unsigned long long)c->f.size);
		return 0;
	}
	case CKIMG_REC_FD_FILE: {
		if (!GROW(img->fd_files, img->nfd_files, img->cap_fd_files))
			return -ENOMEM;
		struct img_fd_file *x = &img->fd_files[img->nfd_files];
		if ((err = fixed(img, pl, plen, 40, &x->f, sizeof(x->f), &var, type, seq, off)))
			return err;
		img->nfd_files++;
		x->seq = seq;
		x->content_idx = -1;
		return 0;
	}
	case CKIMG_REC_TTY: {
		if (!GROW(img->ttys, img->nttys, img->cap_ttys))
			return -ENOMEM;
		struct img_tty *t = &img->ttys[img->nttys];
		if ((err = fixed(img, pl, plen, CKIMG_TTY_MIN_FIXED, &t->f, sizeof(t->f), &var, type, seq, off)))
			return err;
		if (t->f.fixed_size < offsetof(struct ckimg_tty_fixed, reserved2))
			t->f.uid = t->f.gid = t->f.mode = CKIMG_TTY_NONE;       /* older record: owner not recorded */
		img->nttys++;
		t->seq = seq;
		if (str_at(pl, plen, &var, &t->name) || plen - var < t->f.data_length)
			return bad(img, -EBADMSG, "BAD_RECORD: " RECFMT ": name or %u bytes of data run past the payload",
				   RECARG(type, seq, off), t->f.data_length);
		if (t->f.data_length) {
			t->data = malloc(t->f.data_length);
			if (!t->data)
				return -ENOMEM;
			memcpy(t->data, pl + var, t->f.data_length);
		}
		return 0;
	}
	}
	return 0;
}

int img_files_data_ref(struct img *img, uint64_t rec_off, const struct ckimg_record_header *rh)
{
	uint64_t poff = rec_off + CKIMG_RECORD_HDR_SIZE, plen = rh->payload_length;
	struct ckimg_file_data_fixed f;
	uint32_t seq = rh->sequence;

	if (plen < sizeof(f))
		return bad(img, -EBADMSG, "BAD_FIELD: " RECFMT ": payload too short", RECARG(CKIMG_REC_FILE_DATA, seq, rec_off));
	if (pread(img->fd, &f, sizeof(f), (off_t)poff) != (ssize_t)sizeof(f))
		return bad(img, -EIO, "IO: " RECFMT ": cannot read", RECARG(CKIMG_REC_FILE_DATA, seq, rec_off));
	if (f.fixed_size < sizeof(f) || f.fixed_size > plen || f.length < 1 || f.length > CKIMG_MAX_FILE_RUN ||
	    (uint64_t)f.fixed_size + f.stored_size != plen || f.codec > CKIMG_CODEC_DEFLATE ||
	    (f.codec == CKIMG_CODEC_NONE && f.stored_size != f.length))
		return bad(img, -EBADMSG, "BAD_FIELD: " RECFMT ": fixed_size %u, length %u, codec %u, stored_size %u "
			   "(payload %llu)", RECARG(CKIMG_REC_FILE_DATA, seq, rec_off), f.fixed_size, f.length, f.codec,
			   f.stored_size, (unsigned long long)plen);
	if (!GROW(img->runs, img->nruns, img->cap_runs))
		return -ENOMEM;
	struct img_run *r = &img->runs[img->nruns++];
	r->f = f;
	r->content_idx = -1;
	r->rec_offset = rec_off;
	r->payload_offset = poff;
	r->payload_length = plen;
	r->payload_crc = rh->payload_crc;
	r->seq = seq;
	return 0;
}

static int cmp_run(const void *a, const void *b)
{
	const struct img_run *x = a, *y = b;
	if (x->content_idx != y->content_idx)
		return x->content_idx < y->content_idx ? -1 : 1;
	return x->f.offset < y->f.offset ? -1 : x->f.offset > y->f.offset;
}

static int has_fd(const struct img *img, uint32_t fd)
{
	for (size_t i = 0; i < img->nfds; i++)
		if (img->fds[i].f.fd == fd)
			return 1;
	return 0;
}

static int content_idx(const struct img *img, uint32_t id)
{
	for (size_t i = 0; i < img->ncontents; i++)
		if (img->contents[i].f.content_id == id)
			return (int)i;
	return -1;
}

int img_files_check(struct img *img)
{
	for (size_t i = 0; i < img->ncontents; i++)
		for (size_t k = 0; k < i; k++)
			if (img->contents[i].f.content_id == img->contents[k].f.content_id)
				return bad(img, -EBADMSG, "DUPLICATE_RECORD: FILE_CONTENT record #%u: content id %u appears twice",
					   img->contents[i].seq, img->contents[i].f.content_id);
	for (size_t i = 0; i < img->nruns; i++) {
		struct img_run *r = &img->runs[i];
		r->content_idx = content_idx(img, r->f.content_id);
		if (r->content_idx < 0)
			return bad(img, -EBADMSG, "BAD_FIELD: FILE_DATA record #%u: unknown file content %u", r->seq,
				   r->f.content_id);
	}
	qsort(img->runs, img->nruns, sizeof(*img->runs), cmp_run);
	for (size_t i = 0; i < img->nruns; i++) {
		const struct img_run *r = &img->runs[i];
		struct img_content *c = &img->contents[r->content_idx];
		if (r->f.offset > c->f.size || c->f.size - r->f.offset < r->f.length)
			return bad(img, -EBADMSG, "BAD_FIELD: FILE_DATA record #%u: run %llu+%u lies past the size %llu of %s",
				   r->seq, (unsigned long long)r->f.offset, r->f.length, (unsigned long long)c->f.size, c->path.s);
		if (c->nruns && r->f.offset < r[-1].f.offset + r[-1].f.length)
			return bad(img, -EBADMSG, "BAD_FIELD: FILE_DATA record #%u: run at %llu overlaps the previous one",
				   r->seq, (unsigned long long)r->f.offset);
		if (!c->nruns)
			c->first_run = i;
		c->nruns++;
	}
	for (size_t i = 0; i < img->ncontents; i++) {
		const struct img_content *c = &img->contents[i];
		uint64_t bytes = 0;
		for (size_t k = 0; k < c->nruns; k++)
			bytes += img->runs[c->first_run + k].f.length;
		if (c->nruns != c->f.run_count || bytes != c->f.data_bytes)
			return bad(img, -EBADMSG, "MISSING_RECORD: FILE_CONTENT record #%u (%s): %zu runs of %llu bytes, "
				   "the record says %u of %llu", c->seq, c->path.s, c->nruns, (unsigned long long)bytes,
				   c->f.run_count, (unsigned long long)c->f.data_bytes);
	}
	for (size_t i = 0; i < img->nfd_files; i++) {
		struct img_fd_file *x = &img->fd_files[i];
		if (!has_fd(img, x->f.fd))
			return bad(img, -EBADMSG, "BAD_FIELD: FD_FILE record #%u: no FD record for fd %u", x->seq, x->f.fd);
		for (size_t k = 0; k < i; k++)
			if (img->fd_files[k].f.fd == x->f.fd)
				return bad(img, -EBADMSG, "DUPLICATE_RECORD: FD_FILE record #%u: fd %u twice", x->seq, x->f.fd);
		if (x->f.content_id && (x->content_idx = content_idx(img, x->f.content_id)) < 0)
			return bad(img, -EBADMSG, "BAD_FIELD: FD_FILE record #%u: unknown file content %u", x->seq,
				   x->f.content_id);
	}
	for (size_t i = 0; i < img->nttys; i++) {
		const struct img_tty *t = &img->ttys[i];
		if (!has_fd(img, t->f.fd) || (t->f.peer_fd != CKIMG_TTY_NONE && !has_fd(img, t->f.peer_fd)))
			return bad(img, -EBADMSG, "BAD_FIELD: TTY record #%u: fd %u or peer fd %u has no FD record", t->seq,
				   t->f.fd, t->f.peer_fd);
		for (size_t k = 0; k < i; k++)
			if (img->ttys[k].f.fd == t->f.fd)
				return bad(img, -EBADMSG, "DUPLICATE_RECORD: TTY record #%u: fd %u twice", t->seq, t->f.fd);
	}
	return 0;
}

void img_files_free(struct img *img)
{
	for (size_t i = 0; i < img->ncontents; i++)
		free(img->contents[i].path.s);
	for (size_t i = 0; i < img->nttys; i++) {
		free(img->ttys[i].name.s);
		free(img->ttys[i].data);
	}
	free(img->contents);
	free(img->runs);
	free(img->fd_files);
	free(img->ttys);
	img->contents = NULL;
	img->runs = NULL;
	img->fd_files = NULL;
	img->ttys = NULL;
	img->ncontents = img->nruns = img->nfd_files = img->nttys = 0;
}

int img_read_run(const struct img *img, const struct img_run *r, uint8_t *out, char *errbuf, size_t errlen)
{
	size_t plen = (size_t)r->payload_length;
	uint8_t *pl = malloc(plen ? plen : 1);
	int err = 0;

	if (!pl)
		return -ENOMEM;
	size_t done = 0;
	while (done < plen) {
		ssize_t n = pread(img->fd, pl + done, plen - done, (off_t)(r->payload_offset + done));
		if (n <= 0) {
			err = n < 0 ? -errno : -ENODATA;
			snprintf(errbuf, errlen, "IO: FILE_DATA record #%u: %s", r->seq, strerror(-err));
			goto out;
		}
		done += (size_t)n;
	}
	if (ck_crc32(0, pl, plen) != r->payload_crc) {
		err = -EBADMSG;
		snprintf(errbuf, errlen, "BAD_CHECKSUM: FILE_DATA record #%u at offset %llu: payload CRC mismatch", r->seq,
			 (unsigned long long)r->rec_offset);
		goto out;
	}
	const uint8_t *data = pl + r->f.fixed_size;
	if (r->f.codec == CKIMG_CODEC_NONE)
		memcpy(out, data, r->f.length);
	else if (rst_decompress(r->f.codec, data, r->f.stored_size, out, r->f.length)) {
		err = -EBADMSG;
		snprintf(errbuf, errlen, "BAD_CODEC: FILE_DATA record #%u at offset %llu: does not decompress to %u bytes",
			 r->seq, (unsigned long long)r->rec_offset, r->f.length);
		goto out;
	}
	if (ck_crc32(0, out, r->f.length) != r->f.raw_crc) {
		err = -EBADMSG;
		snprintf(errbuf, errlen, "BAD_CHECKSUM: FILE_DATA record #%u at offset %llu: raw CRC mismatch", r->seq,
			 (unsigned long long)r->rec_offset);
	}
out:
	free(pl);
	return err;
}

const struct img_fd_file *img_fd_file(const struct img *img, uint32_t fd)
{
	for (size_t i = 0; i < img->nfd_files; i++)
		if (img->fd_files[i].f.fd == fd)
			return &img->fd_files[i];
	return NULL;
}

const struct img_tty *img_tty(const struct img *img, uint32_t fd)
{
	for (size_t i = 0; i < img->nttys; i++)
		if (img->ttys[i].f.fd == fd)
			return &img->ttys[i];
	return NULL;
}

int img_content_for_file(const struct img *img, const struct img_file *f)
{
	for (size_t i = 0; i < img->ncontents; i++)
		if (img->contents[i].f.dev_major == f->f.dev_major && img->contents[i].f.dev_minor == f->f.dev_minor &&
		    img->contents[i].f.inode == f->f.inode)
			return (int)i;
	return -1;
}
