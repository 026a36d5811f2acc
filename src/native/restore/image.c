/*
 * Image reader (see image.h): validation follows docs/FORMAT.md sections 1-5 in order:
 * HEADER, TRAILER, INDEX, then each record the index lists.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "crc32.h"
#include "image.h"

int img_read_payload(const struct img *img, const struct ckimg_index_entry *e, uint8_t **out)
{
	struct ckimg_record_header rh;
	uint8_t *pl = malloc(e->payload_length ? e->payload_length : 1);

	if (!pl)
		return -ENOMEM;
	if (pread(img->fd, &rh, sizeof(rh), (off_t)e->offset) != sizeof(rh) ||
	    pread(img->fd, pl, e->payload_length, (off_t)(e->offset + sizeof(rh))) != (ssize_t)e->payload_length ||
	    ck_crc32(0, pl, e->payload_length) != rh.payload_crc) {
		free(pl);
		return -EBADMSG;
	}
	*out = pl;
	return 0;
}

const char *img_type_name(uint16_t type)
{
	switch (type) {
	case CKIMG_REC_PROCESS: return "PROCESS";
	case CKIMG_REC_ARGV: return "ARGV";
	case CKIMG_REC_ENVIRON: return "ENVIRON";
	case CKIMG_REC_AUXV: return "AUXV";
	case CKIMG_REC_RLIMITS: return "RLIMITS";
	case CKIMG_REC_SIGACTIONS: return "SIGACTIONS";
	case CKIMG_REC_THREAD: return "THREAD";
	case CKIMG_REC_AREA: return "AREA";
	case CKIMG_REC_PAGES: return "PAGES";
	case CKIMG_REC_MAPPED_FILE: return "MAPPED_FILE";
	case CKIMG_REC_FD: return "FD";
	case CKIMG_REC_TIMERS: return "TIMERS";
	case CKIMG_REC_PROCESS_STATE: return "PROCESS_STATE";
	case CKIMG_REC_SECCOMP: return "SECCOMP";
	case CKIMG_REC_THREAD_STATE: return "THREAD_STATE";
	case CKIMG_REC_SIGQUEUE: return "SIGQUEUE";
	case CKIMG_REC_EVENTFD: return "EVENTFD";
	case CKIMG_REC_TIMERFD: return "TIMERFD";
	case CKIMG_REC_SIGNALFD: return "SIGNALFD";
	case CKIMG_REC_EPOLL: return "EPOLL";
	case CKIMG_REC_INOTIFY: return "INOTIFY";
	case CKIMG_REC_FILE_CONTENT: return "FILE_CONTENT";
	case CKIMG_REC_FILE_DATA: return "FILE_DATA";
	case CKIMG_REC_FD_FILE: return "FD_FILE";
	case CKIMG_REC_TTY: return "TTY";
	case CKIMG_REC_PIPE: return "PIPE";
	case CKIMG_REC_UNIX_SOCKET: return "UNIX_SOCKET";
	case CKIMG_REC_INET_SOCKET: return "INET_SOCKET";
	case CKIMG_REC_TCP_STREAM: return "TCP_STREAM";
	case CKIMG_REC_FILE_LOCK: return "FILE_LOCK";
	case CKIMG_REC_UNREADABLE_PAGES: return "UNREADABLE_PAGES";
	case CKIMG_REC_INDEX: return "INDEX";
	default: return "record";
	}
}

static int fail(struct img *img, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(img->err, sizeof(img->err), fmt, ap);
	va_end(ap);
	return err;
}

/* Record context prefix for messages: "THREAD record #3 at offset 1234". */
#define RECFMT "%s record #%u at offset %llu"
#define RECARG(type, seq, off) img_type_name(type), (unsigned)(seq), (unsigned long long)(off)

static int read_exact(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		done += (size_t)n;
	}
	return 0;
}

/* A bounded cursor over one payload's VARIABLE part. */
struct cur {
	const uint8_t *p;
	uint64_t pos, len;
	int bad;
};

static int cur_str(struct cur *c, struct img_str *out)
{
	uint32_t n;

	if (c->bad || c->len - c->pos < 4) {
		c->bad = 1;
		return -1;
	}
	memcpy(&n, c->p + c->pos, 4);
	c->pos += 4;
	if (c->len - c->pos < n) {
		c->bad = 1;
		return -1;
	}
	out->s = malloc((size_t)n + 1);
	if (!out->s) {
		c->bad = 1;
		return -1;
	}
	memcpy(out->s, c->p + c->pos, n);
	out->s[n] = 0;
	out->len = n;
	c->pos += n;
	return 0;
}

static const void *cur_take(struct cur *c, uint64_t n)
{
	const void *r;

	if (c->bad || c->len - c->pos < n) {
		c->bad = 1;
		return NULL;
	}
	r = c->p + c->pos;
	c->pos += n;
	return r;
}

/* Copy the FIXED part: min(known, fixed_size) bytes; the rest of `out` is zero. */
static int take_fixed(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t min_size,
		      void *out, size_t out_size, struct cur *var, uint16_t type, uint32_t seq,
		      uint64_t off)
{
	uint32_t fixed;

	if (plen < 4)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": payload shorter than its size field",
			    RECARG(type, seq, off));
	memcpy(&fixed, pl, 4);
	if (fixed < min_size || fixed > plen)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": fixed_size %u (expected >= %u, <= %llu)",
			    RECARG(type, seq, off), fixed, min_size, (unsigned long long)plen);
	memset(out, 0, out_size);
	memcpy(out, pl, out_size < fixed ? out_size : fixed);
	var->p = pl;
	var->pos = fixed;
	var->len = plen;
	var->bad = 0;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* MUST be unique: area ids, tids, fd numbers, file ids. */
static int check_unique(struct img *img, const char *what, uint64_t *keys, size_t n)
{
	qsort(keys, n, sizeof(*keys), cmp_u64);
	for (size_t i = 1; i < n; i++)
		if (keys[i] == keys[i - 1])
			return fail(img, -EBADMSG, "DUPLICATE_RECORD: two records with %s %llu", what,
				    (unsigned long long)keys[i]);
	return 0;
}

static int parse_process(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off)
{
	struct cur c;
	int err;

	if (img->have_process)
		return fail(img, -EBADMSG, "DUPLICATE_RECORD: " RECFMT ": second PROCESS record",
			    RECARG(CKIMG_REC_PROCESS, seq, off));
	err = take_fixed(img, pl, plen, 176, &img->proc.f, sizeof(img->proc.f), &c, CKIMG_REC_PROCESS, seq, off);
	if (err)
		return err;
	cur_str(&c, &img->proc.comm);
	cur_str(&c, &img->proc.exe);
	cur_str(&c, &img->proc.cwd);
	cur_str(&c, &img->proc.root);
	cur_str(&c, &img->proc.kernel);
	if (c.bad)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": strings run past the payload (rule P2)",
			    RECARG(CKIMG_REC_PROCESS, seq, off));
	img->have_process = 1;
	return 0;
}

/* ARGV, ENVIRON, AUXV, RLIMITS share the {fixed_size=8, count} FIXED part. */
static int parse_list(struct img *img, uint16_t type, const uint8_t *pl, uint64_t plen,
		      uint32_t seq, uint64_t off, int *seen)
{
	struct ckimg_list_fixed lf;
	struct cur c;
	int err;

	if (*seen)
		return fail(img, -EBADMSG, "DUPLICATE_RECORD: " RECFMT ": second record of this type",
			    RECARG(type, seq, off));
	*seen = 1;
	err = take_fixed(img, pl, plen, 8, &lf, sizeof(lf), &c, type, seq, off);
	if (err)
		return err;
	if (type == CKIMG_REC_AUXV) {
		const void *p = cur_take(&c, (uint64_t)lf.count * 16);
		if (!p)
			return fail(img, -EBADMSG, "BAD_RECORD: " RECFMT ": %u entries do not fit",
				    RECARG(type, seq, off), lf.count);
		img->auxv = malloc((size_t)lf.count * 16 + 16);
		if (!img->auxv)
			return -ENOMEM;
		memcpy(img->auxv, p, (size_t)lf.count * 16);
		img->nauxv = lf.count;
	} else if (type == CKIMG_REC_RLIMITS) {
		const void *p = cur_take(&c, (uint64_t)lf.count * 24);
		if (!p)
			return fail(img, -EBADMSG, "BAD_RECORD: " RECFMT ": %u entries do not fit",
				    RECARG(type, seq, off), lf.count);
		img->rlimits = malloc((size_t)lf.count * 24 + 1);
		if (!img->rlimits)
			return -ENOMEM;
		memcpy(img->rlimits, p, (size_t)lf.count * 24);
		img->nrlimits = lf.count;
	}
	/* ARGV and ENVIRON are not needed: the restored memory holds them. */
	return 0;
}

static int parse_sigactions(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off,
			    int *seen)
{
	struct cur c;
	const void *p;
	int err;

	if (*seen)
		return fail(img, -EBADMSG, "DUPLICATE_RECORD: " RECFMT ": second SIGACTIONS record",
			    RECARG(CKIMG_REC_SIGACTIONS, seq, off));
	*seen = 1;
	err = take_fixed(img, pl, plen, 16, &img->sigf, sizeof(img->sigf), &c, CKIMG_REC_SIGACTIONS, seq, off);
	if (err)
		return err;
	p = cur_take(&c, (uint64_t)img->sigf.count * 40);
	if (!p)
		return fail(img, -EBADMSG, "BAD_RECORD: " RECFMT ": %u entries do not fit",
			    RECARG(CKIMG_REC_SIGACTIONS, seq, off), img->sigf.count);
	img->sigs = malloc((size_t)img->sigf.count * 40 + 1);
	if (!img->sigs)
		return -ENOMEM;
	memcpy(img->sigs, p, (size_t)img->sigf.count * 40);
	img->nsigs = img->sigf.count;
	for (uint32_t i = 0; i < img->nsigs; i++)
		if (img->sigs[i].signo < 1 || img->sigs[i].signo > 64)
			return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": signal number %u",
				    RECARG(CKIMG_REC_SIGACTIONS, seq, off), img->sigs[i].signo);
	return 0;
}

static int parse_thread(struct img *img, struct img_thread *t, const uint8_t *pl, uint64_t plen,
			uint32_t seq, uint64_t off)
{
	struct cur c;
	const void *r, *x;
	int err;

	err = take_fixed(img, pl, plen, 88, &t->f, sizeof(t->f), &c, CKIMG_REC_THREAD, seq, off);
	if (err)
		return err;
	t->seq = seq;
	if (t->f.regs_size < 216)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": regs_size %u (expected 216)",
			    RECARG(CKIMG_REC_THREAD, seq, off), t->f.regs_size);
	r = cur_take(&c, t->f.regs_size);
	x = cur_take(&c, t->f.xstate_size);
	if (!r || !x)
		return fail(img, -EBADMSG, "BAD_RECORD: " RECFMT ": regs/xstate run past the payload",
			    RECARG(CKIMG_REC_THREAD, seq, off));
	memcpy(t->regs, r, sizeof(t->regs));
	t->xstate_size = t->f.xstate_size;
	t->xstate = malloc(t->xstate_size + 1);
	if (!t->xstate)
		return -ENOMEM;
	memcpy(t->xstate, x, t->xstate_size);
	return 0;
}

static int parse_area(struct img *img, struct img_area *a, const uint8_t *pl, uint64_t plen,
		      uint32_t seq, uint64_t off)
{
	struct cur c;
	int err;
	uint64_t pm = img->page_size - 1;

	err = take_fixed(img, pl, plen, 64, &a->f, sizeof(a->f), &c, CKIMG_REC_AREA, seq, off);
	if (err)
		return err;
	a->seq = seq;
	cur_str(&c, &a->path);
	cur_str(&c, &a->vmflags);
	if (c.bad)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": strings run past the payload (rule P2)",
			    RECARG(CKIMG_REC_AREA, seq, off));
	if ((a->f.start & pm) || (a->f.end & pm) || a->f.end <= a->f.start ||
	    a->f.end > 0xfffffffffffff000ull)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": area %llx-%llx not page-aligned or empty",
			    RECARG(CKIMG_REC_AREA, seq, off), (unsigned long long)a->f.start,
			    (unsigned long long)a->f.end);
	if (a->f.kind > CKIMG_KIND_SPECIAL)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": kind %u", RECARG(CKIMG_REC_AREA, seq, off),
			    a->f.kind);
	a->file_idx = -1;
	return 0;
}

static int parse_file(struct img *img, struct img_file *f, const uint8_t *pl, uint64_t plen,
		      uint32_t seq, uint64_t off)
{
	struct cur c;
	int err;

	err = take_fixed(img, pl, plen, 80, &f->f, sizeof(f->f), &c, CKIMG_REC_MAPPED_FILE, seq, off);
	if (err)
		return err;
	f->seq = seq;
	cur_str(&c, &f->path);
	cur_str(&c, &f->build_id);
	if (c.bad)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": strings run past the payload (rule P2)",
			    RECARG(CKIMG_REC_MAPPED_FILE, seq, off));
	return 0;
}

static int parse_fd(struct img *img, struct img_fd *d, const uint8_t *pl, uint64_t plen,
		    uint32_t seq, uint64_t off)
{
	struct cur c;
	int err;

	err = take_fixed(img, pl, plen, 56, &d->f, sizeof(d->f), &c, CKIMG_REC_FD, seq, off);
	if (err)
		return err;
	d->seq = seq;
	cur_str(&c, &d->path);
	if (d->f.fixed_size > CKIMG_FD_MIN_FIXED_1_0 && c.pos < c.len)
		cur_str(&c, &d->note);
	else
		d->note.s = calloc(1, 1);
	if (c.bad || !d->note.s)
		return fail(img, -EBADMSG, "BAD_RECORD: " RECFMT ": path runs past the payload",
			    RECARG(CKIMG_REC_FD, seq, off));
	if (d->f.fd > (1u << 20))
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": fd number %u", RECARG(CKIMG_REC_FD, seq, off),
			    d->f.fd);
	return 0;
}

/* PAGES: read FIXED + bitmap only; DATA is read by img_read_chunk(). */
static int parse_pages(struct img *img, struct img_chunk *ch, uint64_t rec_off,
		       const struct ckimg_record_header *rh)
{
	struct ckimg_pages_fixed pf;
	uint64_t plen = rh->payload_length, poff = rec_off + CKIMG_RECORD_HDR_SIZE, bm_bytes, pop = 0;
	uint32_t fixed;
	uint32_t seq = rh->sequence;
	int err;

	if (plen < sizeof(pf))
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": payload too short",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off));
	err = read_exact(img->fd, &pf, sizeof(pf), poff);
	if (err)
		return fail(img, err, "IO: " RECFMT ": %s", RECARG(CKIMG_REC_PAGES, seq, rec_off), strerror(-err));
	fixed = pf.fixed_size;
	if (fixed < 48 || fixed > plen)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": fixed_size %u",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off), fixed);
	if (pf.span_pages < 1 || pf.span_pages > CKIMG_MAX_SPAN_PAGES || pf.stored_pages < 1 ||
	    pf.stored_pages > pf.span_pages)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": span_pages %u stored_pages %u",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off), pf.span_pages, pf.stored_pages);
	if ((uint64_t)pf.stored_pages * img->page_size > CKIMG_MAX_CHUNK_RAW)
		return fail(img, -EBADMSG, "CHUNK_TOO_LARGE: " RECFMT ": %u pages",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off), pf.stored_pages);
	if (pf.codec > CKIMG_CODEC_DEFLATE)
		return fail(img, -EBADMSG, "BAD_CODEC: " RECFMT ": codec %u", RECARG(CKIMG_REC_PAGES, seq, rec_off),
			    pf.codec);
	if (pf.codec == CKIMG_CODEC_NONE && pf.stored_size != (uint64_t)pf.stored_pages * img->page_size)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": codec NONE with stored_size %u for %u pages",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off), pf.stored_size, pf.stored_pages);
	if (pf.first_page & (img->page_size - 1))
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": first_page not aligned",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off));
	bm_bytes = (pf.span_pages + 7) / 8;
	if ((uint64_t)pf.data_offset < fixed + bm_bytes ||
	    (uint64_t)pf.data_offset + pf.stored_size != plen)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": data_offset %u + stored_size %u != payload %llu",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off), pf.data_offset, pf.stored_size,
			    (unsigned long long)plen);
	if ((uint64_t)pf.data_offset - fixed - bm_bytes >= img->page_size)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": %llu bytes of padding before DATA (rule G3)",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off), (unsigned long long)(pf.data_offset - fixed - bm_bytes));
	ch->bitmap = malloc(pf.data_offset - fixed);
	if (!ch->bitmap)
		return -ENOMEM;
	/* the bitmap and the padding after it (G3: zero) */
	err = read_exact(img->fd, ch->bitmap, pf.data_offset - fixed, poff + fixed);
	for (uint64_t i = bm_bytes; !err && i < pf.data_offset - fixed; i++)
		if (ch->bitmap[i])
			return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": padding before DATA is not zero (rule G3)",
				    RECARG(CKIMG_REC_PAGES, seq, rec_off));
	if (err)
		return fail(img, err, "IO: " RECFMT ": %s", RECARG(CKIMG_REC_PAGES, seq, rec_off), strerror(-err));
	for (uint64_t i = 0; i < bm_bytes; i++)
		pop += (uint64_t)__builtin_popcount(ch->bitmap[i]);
	if (pf.span_pages % 8 && (ch->bitmap[bm_bytes - 1] >> (pf.span_pages % 8)))
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": bitmap bits set past span_pages",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off));
	if (pop != pf.stored_pages)
		return fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": bitmap has %llu pages, stored_pages %u",
			    RECARG(CKIMG_REC_PAGES, seq, rec_off), (unsigned long long)pop, pf.stored_pages);
	ch->area_id = pf.area_id;
	ch->first_page = pf.first_page;
	ch->span_pages = pf.span_pages;
	ch->stored_pages = pf.stored_pages;
	ch->codec = pf.codec;
	ch->stored_size = pf.stored_size;
	ch->raw_crc = pf.raw_crc;
	ch->payload_crc = rh->payload_crc;
	ch->rec_offset = rec_off;
	ch->payload_offset = poff;
	ch->payload_length = plen;
	ch->data_offset = poff + pf.data_offset;
	ch->seq = seq;
	return 0;
}

static int load_header(struct img *img)
{
	struct ckimg_header *h = &img->hdr;
	int err;

	if (img->size < CKIMG_HEADER_SIZE) {
		/* H1 then H2: the magic says whether it is a truncated image or no image at all */
		uint8_t m[8] = { 0 };
		int magic = img->size >= 8 && !read_exact(img->fd, m, 8, 0) && !memcmp(m, CKIMG_MAGIC, 8);
		return fail(img, -EBADMSG, "%s: %llu bytes is too short for an image",
			    magic ? "TRUNCATED" : "NOT_AN_IMAGE", (unsigned long long)img->size);
	}
	err = read_exact(img->fd, h, sizeof(*h), 0);
	if (err)
		return fail(img, err, "IO: reading the header: %s", strerror(-err));
	if (memcmp(h->magic, CKIMG_MAGIC, 8))
		return fail(img, -EBADMSG, "NOT_AN_IMAGE: bad magic at offset 0");
	/* H3 before H4: a later major version may not keep its CRC at byte 60 */
	if (h->version_major != CKIMG_VERSION_MAJOR)
		return fail(img, -ENOTSUP, "UNSUPPORTED_VERSION: image version %u.%u (this reader: 1.x)",
			    h->version_major, h->version_minor);
	if (ck_crc32(0, h, 60) != h->header_crc)
		return fail(img, -EBADMSG, "BAD_HEADER: header CRC mismatch at offset 60");
	if (h->header_size < CKIMG_HEADER_SIZE || h->header_size > 65536 || h->header_size > img->size)
		return fail(img, -EBADMSG, "BAD_HEADER: header_size %u", h->header_size);
	if (h->page_size < 4096 || h->page_size > 65536 || (h->page_size & (h->page_size - 1)))
		return fail(img, -EBADMSG, "BAD_HEADER: page_size %u", h->page_size);
	if (h->machine != CKIMG_EM_X86_64)
		return fail(img, -ENOTSUP, "UNSUPPORTED_MACHINE: machine %u is not x86-64 (rule H7)", h->machine);
	if (h->page_size != (uint32_t)sysconf(_SC_PAGESIZE))
		return fail(img, -ENOTSUP, "BAD_HEADER: page size %u differs from this machine's", h->page_size);
	img->page_size = h->page_size;
	return 0;
}

static int load_index(struct img *img)
{
	struct ckimg_trailer tr;
	struct ckimg_record_header rh;
	struct ckimg_index_fixed ix;
	uint8_t *pl = NULL;
	uint64_t plen, esz, prev_end;
	int err;

	if (img->size < (uint64_t)img->hdr.header_size + 2 * CKIMG_RECORD_HDR_SIZE + 16)
		return fail(img, -EBADMSG, "TRUNCATED: %llu bytes cannot hold an index and trailer",
			    (unsigned long long)img->size);
	err = read_exact(img->fd, &tr, sizeof(tr), img->size - CKIMG_TRAILER_SIZE);
	if (err)
		return fail(img, err, "IO: reading the trailer: %s", strerror(-err));
	if (memcmp(tr.magic, CKIMG_TRAILER_MAGIC, 8))
		return fail(img, -EBADMSG, "BAD_TRAILER: bad magic at offset %llu (truncated image?)",
			    (unsigned long long)(img->size - 32));
	if (ck_crc32(0, &tr, 28) != tr.trailer_crc)
		return fail(img, -EBADMSG, "BAD_TRAILER: trailer CRC mismatch");
	if (tr.index_offset < img->hdr.header_size ||
	    tr.index_offset > img->size - CKIMG_TRAILER_SIZE - CKIMG_RECORD_HDR_SIZE)
		return fail(img, -EBADMSG, "BAD_TRAILER: index_offset %llu", (unsigned long long)tr.index_offset);
	err = read_exact(img->fd, &rh, sizeof(rh), tr.index_offset);
	if (err)
		return fail(img, err, "IO: reading the index: %s", strerror(-err));
	if (memcmp(rh.magic, CKIMG_RECORD_MAGIC, 4) || ck_crc32(0, &rh, 28) != rh.header_crc ||
	    rh.type != CKIMG_REC_INDEX)
		return fail(img, -EBADMSG, "BAD_INDEX: bad INDEX record header at offset %llu",
			    (unsigned long long)tr.index_offset);
	plen = img->size - CKIMG_TRAILER_SIZE - CKIMG_RECORD_HDR_SIZE - tr.index_offset;
	if (rh.payload_length != plen || plen < 16)
		return fail(img, -EBADMSG, "BAD_INDEX: index payload_length %llu does not end at the trailer",
			    (unsigned long long)rh.payload_length);
	pl = malloc(plen);
	if (!pl)
		return -ENOMEM;
	err = read_exact(img->fd, pl, plen, tr.index_offset + CKIMG_RECORD_HDR_SIZE);
	if (err) {
		free(pl);
		return fail(img, err, "IO: reading the index: %s", strerror(-err));
	}
	if (ck_crc32(0, pl, plen) != rh.payload_crc) {
		free(pl);
		return fail(img, -EBADMSG, "BAD_CHECKSUM: INDEX payload CRC mismatch at offset %llu",
			    (unsigned long long)tr.index_offset);
	}
	memcpy(&ix, pl, sizeof(ix));
	esz = ix.entry_size;
	if (ix.fixed_size < 16 || ix.fixed_size > plen || esz < 40 ||
	    ix.entry_count > (img->size - 64) / 32 ||
	    ix.fixed_size + ix.entry_count * esz != plen || ix.entry_count != tr.record_count) {
		free(pl);
		return fail(img, -EBADMSG, "BAD_INDEX: %llu entries of %llu bytes do not fill the index",
			    (unsigned long long)ix.entry_count, (unsigned long long)esz);
	}
	if (rh.sequence != ix.entry_count) {     /* I5: the INDEX is numbered after every record */
		free(pl);
		return fail(img, -EBADMSG, "BAD_INDEX: INDEX sequence %u, %llu records before it (rule I5)",
			    rh.sequence, (unsigned long long)ix.entry_count);
	}
	img->nents = ix.entry_count;
	img->ents = calloc(img->nents + 1, sizeof(*img->ents));
	img->owners = calloc(img->nents + 1, sizeof(*img->owners));
	if (!img->ents || !img->owners) {
		free(pl);
		return -ENOMEM;
	}
	prev_end = img->hdr.header_size;
	for (uint64_t i = 0; i < img->nents; i++) {
		struct ckimg_index_entry *e = &img->ents[i];
		memcpy(e, pl + ix.fixed_size + i * esz, sizeof(*e));
		if (esz >= CKIMG_INDEX_ENTRY_SIZE_TREE)
			memcpy(&img->owners[i], pl + ix.fixed_size + i * esz + sizeof(*e), 4);
		if (e->offset < prev_end || e->payload_length > tr.index_offset ||
		    e->offset + CKIMG_RECORD_HDR_SIZE + e->payload_length > tr.index_offset) {
			free(pl);
			return fail(img, -EBADMSG, "BAD_INDEX: entry %llu (%s at offset %llu) overlaps or runs past the index",
				    (unsigned long long)i, img_type_name(e->type), (unsigned long long)e->offset);
		}
		prev_end = e->offset + CKIMG_RECORD_HDR_SIZE + e->payload_length;
	}
	free(pl);
	return 0;
}

/* Format 1.2: the TREE record (FORMAT.md "Process trees"), checked whole: pids unique,
 * parents listed first, zombies without threads; then every record's owner is a live process. */
static int load_tree(struct img *img)
{
	const struct ckimg_index_entry *te = NULL;
	struct ckimg_record_header rh;
	struct ckimg_tree_fixed f;
	uint8_t *pl;
	int err;

	for (uint64_t i = 0; i < img->nents; i++)
		if (img->ents[i].type == CKIMG_REC_TREE) {
			if (te)
				return fail(img, -EBADMSG, "DUPLICATE_RECORD: second TREE record at offset %llu",
					    (unsigned long long)img->ents[i].offset);
			te = &img->ents[i];
			if (img->owners[i])
				return fail(img, -EBADMSG, "BAD_FIELD: TREE record owned by process %u", img->owners[i]);
		}
	if (!te) {
		for (uint64_t i = 0; i < img->nents; i++)
			if (img->owners[i])
				return fail(img, -EBADMSG, "BAD_FIELD: record at offset %llu owned by process %u in an image "
					    "without a TREE record", (unsigned long long)img->ents[i].offset, img->owners[i]);
		if (img->owner)
			return fail(img, -ESRCH, "NO_SUCH_PROCESS: a single-process image has no process %u", img->owner);
		return 0;
	}
	if (te->payload_length > CKIMG_MAX_METADATA_PAYLOAD || te->payload_length < sizeof(f))
		return fail(img, -EBADMSG, "BAD_FIELD: TREE payload of %llu bytes", (unsigned long long)te->payload_length);
	pl = malloc(te->payload_length);
	if (!pl)
		return -ENOMEM;
	err = read_exact(img->fd, &rh, sizeof(rh), te->offset);
	if (!err)
		err = read_exact(img->fd, pl, te->payload_length, te->offset + CKIMG_RECORD_HDR_SIZE);
	if (err) {
		free(pl);
		return fail(img, err, "IO: TREE record: %s", strerror(-err));
	}
	if (memcmp(rh.magic, CKIMG_RECORD_MAGIC, 4) || ck_crc32(0, &rh, 28) != rh.header_crc ||
	    rh.type != CKIMG_REC_TREE || ck_crc32(0, pl, te->payload_length) != rh.payload_crc) {
		free(pl);
		return fail(img, -EBADMSG, "BAD_CHECKSUM: TREE record at offset %llu", (unsigned long long)te->offset);
	}
	memcpy(&f, pl, sizeof(f));
	if (f.fixed_size < sizeof(f) || f.fixed_size > te->payload_length || f.entry_size < sizeof(struct ckimg_tree_entry) ||
	    f.entry_size > 4096 || f.count < 1 || f.count > (te->payload_length - f.fixed_size) / f.entry_size) {
		free(pl);
		return fail(img, -EBADMSG, "BAD_FIELD: TREE record at offset %llu: %u entries of %u bytes do not fit",
			    (unsigned long long)te->offset, f.count, f.entry_size);
	}
	img->tree = calloc(f.count, sizeof(*img->tree));
	if (!img->tree) {
		free(pl);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < f.count; i++) {
		struct ckimg_tree_entry *e = &img->tree[i];
		int parent_seen = i == 0, dup = 0;
		memcpy(e, pl + f.fixed_size + (size_t)i * f.entry_size, sizeof(*e));
		for (uint32_t k = 0; k < i; k++) {
			dup |= img->tree[k].pid == e->pid;
			parent_seen |= img->tree[k].pid == e->ppid;
		}
		int zombie = (e->flags & CKIMG_TREE_ZOMBIE) != 0;
		if (dup || !e->pid || e->pid > 0x3fffffff || !parent_seen || (i == 0 && (zombie || e->pid != f.root_pid)) ||
		    zombie != (e->thread_count == 0)) {
			free(pl);
			return fail(img, -EBADMSG, "BAD_FIELD: TREE entry %u (pid %u, parent %u) is not a valid tree entry",
				    i, e->pid, e->ppid);
		}
	}
	img->ntree = f.count;
	img->tree_root = f.root_pid;
	free(pl);
	if (!img->owner)
		img->owner = img->tree_root;
	for (uint64_t i = 0; i < img->nents; i++) {
		int live = 0;
		if (&img->ents[i] == te)
			continue;
		for (uint32_t k = 0; k < img->ntree; k++)
			live |= img->tree[k].pid == img->owners[i] && !(img->tree[k].flags & CKIMG_TREE_ZOMBIE);
		if (!live)
			return fail(img, -EBADMSG, "BAD_FIELD: record at offset %llu owned by process %u, not a live "
				    "process of the TREE", (unsigned long long)img->ents[i].offset, img->owners[i]);
	}
	for (uint32_t k = 0; k < img->ntree; k++)
		if (img->tree[k].pid == img->owner && !(img->tree[k].flags & CKIMG_TREE_ZOMBIE))
			return 0;
	return fail(img, -ESRCH, "NO_SUCH_PROCESS: the image holds no live process %u", img->owner);
}

static int load_records(struct img *img)
{
	size_t cap_t = 0, cap_a = 0, cap_f = 0, cap_d = 0, cap_c = 0, cap_r = 0;
	int seen_argv = 0, seen_env = 0, seen_auxv = 0, seen_rl = 0, seen_sig = 0;
	int err = load_tree(img);

	if (err)
		return err;
	for (uint64_t i = 0; i < img->nents; i++) {
		const struct ckimg_index_entry *e = &img->ents[i];
		struct ckimg_record_header rh;
		uint8_t *pl;
		uint64_t off = e->offset;

		if (e->type == CKIMG_REC_TREE || (img->tree && img->owners[i] != img->owner))
			continue;       /* another process's record, or the TREE (load_tree) */

		err = read_exact(img->fd, &rh, sizeof(rh), off);
		if (err)
			return fail(img, err, "IO: record at offset %llu: %s", (unsigned long long)off, strerror(-err));
		if (memcmp(rh.magic, CKIMG_RECORD_MAGIC, 4) || ck_crc32(0, &rh, 28) != rh.header_crc)
			return fail(img, -EBADMSG, "BAD_RECORD: bad record header at offset %llu (index entry %llu)",
				    (unsigned long long)off, (unsigned long long)i);
		if (rh.type != e->type || rh.flags != e->flags || rh.payload_length != e->payload_length || rh.owner_pid != img->owners[i])
			return fail(img, -EBADMSG, "BAD_INDEX: index entry %llu disagrees with " RECFMT,
				    (unsigned long long)i, RECARG(rh.type, rh.sequence, off));
		if (rh.sequence != i)   /* R3 */
			return fail(img, -EBADMSG, "BAD_RECORD: " RECFMT ": sequence where %llu was expected",
				    RECARG(rh.type, rh.sequence, off), (unsigned long long)i);
		if (rh.type == 0 || rh.type == 0xffff)   /* R5 */
			return fail(img, -EBADMSG, "BAD_RECORD: record type 0x%04x at offset %llu is not a record type",
				    rh.type, (unsigned long long)off);
		if (rh.type == CKIMG_REC_PAGES) {
			if (img->nchunks == cap_c) {
				cap_c = cap_c ? cap_c * 2 : 64;
				void *n = realloc(img->chunks, cap_c * sizeof(*img->chunks));
				if (!n)
					return -ENOMEM;
				img->chunks = n;
			}
			struct img_chunk *ch = &img->chunks[img->nchunks];
			memset(ch, 0, sizeof(*ch));
			img->nchunks++;
			err = parse_pages(img, ch, off, &rh);
			if (err)
				return err;
			continue;
		}
		if (rh.type == CKIMG_REC_FILE_DATA) {
			if ((err = img_files_data_ref(img, off, &rh)))
				return err;
			continue;
		}
		switch (rh.type) {
		case CKIMG_REC_PROCESS: case CKIMG_REC_ARGV: case CKIMG_REC_ENVIRON: case CKIMG_REC_AUXV:
		case CKIMG_REC_RLIMITS: case CKIMG_REC_SIGACTIONS: case CKIMG_REC_THREAD: case CKIMG_REC_AREA:
		case CKIMG_REC_MAPPED_FILE: case CKIMG_REC_FD:
		case CKIMG_REC_FILE_CONTENT: case CKIMG_REC_FD_FILE: case CKIMG_REC_TTY:
			break;
		case CKIMG_REC_TIMERS: case CKIMG_REC_PROCESS_STATE: case CKIMG_REC_SECCOMP:
		case CKIMG_REC_THREAD_STATE: case CKIMG_REC_SIGQUEUE:
			break;
		case CKIMG_REC_PARENT: case CKIMG_REC_PAGE_DIGESTS:
			break;
		case CKIMG_REC_INDEX:
			return fail(img, -EBADMSG, "BAD_INDEX: second INDEX record at offset %llu", (unsigned long long)off);
		case IMG_FDREC_FIRST ... IMG_FDREC_LAST:
			break;          /* kept whole for the fd kinds */
		default:
			if (rh.flags & CKIMG_RECF_MUST_UNDERSTAND)
				return fail(img, -ENOTSUP, "UNSUPPORTED_RECORD: record type 0x%04x at offset %llu must be understood",
					    rh.type, (unsigned long long)off);
			continue;       /* forward compatibility: skip */
		}
		if (rh.payload_length > CKIMG_MAX_METADATA_PAYLOAD)
			return fail(img, -EBADMSG, "RECORD_TOO_LARGE: " RECFMT ": %llu bytes",
				    RECARG(rh.type, rh.sequence, off), (unsigned long long)rh.payload_length);
		pl = malloc(rh.payload_length + 1);
		if (!pl)
			return -ENOMEM;
		err = read_exact(img->fd, pl, rh.payload_length, off + CKIMG_RECORD_HDR_SIZE);
		if (err) {
			free(pl);
			return fail(img, err, "IO: " RECFMT ": %s", RECARG(rh.type, rh.sequence, off), strerror(-err));
		}
		if (ck_crc32(0, pl, rh.payload_length) != rh.payload_crc) {
			free(pl);
			return fail(img, -EBADMSG, "BAD_CHECKSUM: " RECFMT ": payload CRC mismatch",
				    RECARG(rh.type, rh.sequence, off));
		}
#define GROW(arr, n, cap) do { if ((n) == (cap)) { (cap) = (cap) ? (cap) * 2 : 16; \
		void *nn_ = realloc((arr), (cap) * sizeof(*(arr))); if (!nn_) { free(pl); return -ENOMEM; } \
		(arr) = nn_; } memset(&(arr)[n], 0, sizeof(*(arr))); } while (0)
		switch (rh.type) {
		case CKIMG_REC_PROCESS:
			err = parse_process(img, pl, rh.payload_length, rh.sequence, off);
			break;
		case CKIMG_REC_ARGV:
			err = parse_list(img, rh.type, pl, rh.payload_length, rh.sequence, off, &seen_argv);
			break;
		case CKIMG_REC_ENVIRON:
			err = parse_list(img, rh.type, pl, rh.payload_length, rh.sequence, off, &seen_env);
			break;
		case CKIMG_REC_AUXV:
			err = parse_list(img, rh.type, pl, rh.payload_length, rh.sequence, off, &seen_auxv);
			break;
		case CKIMG_REC_RLIMITS:
			err = parse_list(img, rh.type, pl, rh.payload_length, rh.sequence, off, &seen_rl);
			break;
		case CKIMG_REC_SIGACTIONS:
			err = parse_sigactions(img, pl, rh.payload_length, rh.sequence, off, &seen_sig);
			break;
		case CKIMG_REC_THREAD:
			GROW(img->threads, img->nthreads, cap_t);
			err = parse_thread(img, &img->threads[img->nthreads++], pl, rh.payload_length, rh.sequence, off);
			break;
		case CKIMG_REC_AREA:
			GROW(img->areas, img->nareas, cap_a);
			err = parse_area(img, &img->areas[img->nareas++], pl, rh.payload_length, rh.sequence, off);
			break;
		case CKIMG_REC_MAPPED_FILE:
			GROW(img->files, img->nfiles, cap_f);
			err = parse_file(img, &img->files[img->nfiles++], pl, rh.payload_length, rh.sequence, off);
			break;
		case CKIMG_REC_TIMERS: case CKIMG_REC_PROCESS_STATE: case CKIMG_REC_SECCOMP:
		case CKIMG_REC_THREAD_STATE:
			err = img_parse_state(img, rh.type, pl, rh.payload_length, rh.sequence, off);
			break;
		case CKIMG_REC_SIGQUEUE:
			err = img_parse_sigqueue(img, pl, rh.payload_length, rh.sequence, off);
			break;
		case CKIMG_REC_FD:
			GROW(img->fds, img->nfds, cap_d);
			err = parse_fd(img, &img->fds[img->nfds++], pl, rh.payload_length, rh.sequence, off);
			break;
		case CKIMG_REC_FILE_CONTENT: case CKIMG_REC_FD_FILE: case CKIMG_REC_TTY:
			err = img_files_parse(img, rh.type, pl, rh.payload_length, rh.sequence, off);
			break;
		case CKIMG_REC_PARENT: case CKIMG_REC_PAGE_DIGESTS:
			err = img_chain_record(img, rh.type, pl, rh.payload_length, rh.sequence, off);
			break;
		default: {
			GROW(img->fdrecs, img->nfdrecs, cap_r);
			struct img_fdrec *r = &img->fdrecs[img->nfdrecs++];
			*r = (struct img_fdrec){ .type = rh.type, .seq = rh.sequence, .key32 = e->key32,
						 .key64 = e->key64, .off = off, .p = pl, .len = rh.payload_length };
			pl = NULL;      /* kept */
			break;
		}
		}
#undef GROW
		free(pl);
		if (err)
			return err;
	}
	return 0;
}

const struct img_fdrec *img_fdrec_by_fd(const struct img *img, uint16_t type, uint32_t key32)
{
	for (size_t i = 0; i < img->nfdrecs; i++)
		if (img->fdrecs[i].type == type && img->fdrecs[i].key32 == key32)
			return &img->fdrecs[i];
	return NULL;
}

const struct img_fdrec *img_fdrec_by_id(const struct img *img, uint16_t type, uint64_t key64)
{
	for (size_t i = 0; i < img->nfdrecs; i++)
		if (img->fdrecs[i].type == type && img->fdrecs[i].key64 == key64)
			return &img->fdrecs[i];
	return NULL;
}

int img_area_by_id(const struct img *img, uint32_t area_id)
{
	/* areas are sorted by id after img_open (cross_check) */
	size_t lo = 0, hi = img->nareas;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (img->areas[mid].f.area_id == area_id)
			return (int)mid;
		if (img->areas[mid].f.area_id < area_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int cmp_area_id(const void *a, const void *b)
{
	uint32_t x = ((const struct img_area *)a)->f.area_id, y = ((const struct img_area *)b)->f.area_id;
	return x < y ? -1 : x > y;
}

static int cmp_chunk(const void *a, const void *b)
{
	const struct img_chunk *x = a, *y = b;
	if (x->area_idx != y->area_idx)
		return x->area_idx < y->area_idx ? -1 : 1;
	return x->first_page < y->first_page ? -1 : x->first_page > y->first_page;
}

/* Cross-record rules: uniqueness, references, spans inside their areas, no overlaps. */
static int cross_check(struct img *img)
{
	size_t nmax = img->nareas + img->nthreads + img->nfds + img->nfiles + 1;
	uint64_t *keys = malloc(nmax * sizeof(*keys));
	int err = 0, main_found = 0;

	if (!keys)
		return -ENOMEM;
	if (!img->have_process) {
		err = fail(img, -EBADMSG, "MISSING_RECORD: no PROCESS record");
		goto out;
	}
	if (img->nthreads == 0) {
		err = fail(img, -EBADMSG, "MISSING_RECORD: no THREAD record");
		goto out;
	}
	for (size_t i = 0; i < img->nthreads; i++) {
		keys[i] = img->threads[i].f.tid;
		if (img->threads[i].f.tid == img->proc.f.pid)
			main_found = 1;
	}
	if (!main_found) {
		err = fail(img, -EBADMSG, "MISSING_RECORD: no THREAD record for the main thread (tid %u)", img->proc.f.pid);
		goto out;
	}
	if ((err = check_unique(img, "tid", keys, img->nthreads)))
		goto out;
	for (size_t i = 0; i < img->nfds; i++)
		keys[i] = img->fds[i].f.fd;
	if ((err = check_unique(img, "fd", keys, img->nfds)))
		goto out;
	for (size_t i = 0; i < img->nfiles; i++)
		keys[i] = img->files[i].f.file_id;
	if ((err = check_unique(img, "file_id", keys, img->nfiles)))
		goto out;
	qsort(img->areas, img->nareas, sizeof(*img->areas), cmp_area_id);
	for (size_t i = 1; i < img->nareas; i++)
		if (img->areas[i].f.area_id == img->areas[i - 1].f.area_id) {
			err = fail(img, -EBADMSG, "DUPLICATE_RECORD: two AREA records with area_id %u",
				   img->areas[i].f.area_id);
			goto out;
		}
	for (size_t i = 0; i < img->nareas; i++) {
		struct img_area *a = &img->areas[i];
		if (a->f.file_id == CKIMG_NO_FILE)
			continue;
		for (size_t j = 0; j < img->nfiles; j++)
			if (img->files[j].f.file_id == a->f.file_id)
				a->file_idx = (int)j;
		if (a->file_idx < 0) {
			err = fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": file_id %u names no MAPPED_FILE",
				   RECARG(CKIMG_REC_AREA, a->seq, 0ull), a->f.file_id);
			goto out;
		}
	}
	for (size_t i = 0; i < img->nchunks; i++) {
		struct img_chunk *c = &img->chunks[i];
		int ai = img_area_by_id(img, c->area_id);
		if (ai < 0) {
			err = fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": area_id %u names no AREA",
				   RECARG(CKIMG_REC_PAGES, c->seq, c->rec_offset), c->area_id);
			goto out;
		}
		struct img_area *a = &img->areas[ai];
		c->area_idx = ai;
		if (c->first_page < a->f.start ||
		    c->first_page + (uint64_t)c->span_pages * img->page_size > a->f.end) {
			err = fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": span %llx+%u pages outside AREA %llx-%llx",
				   RECARG(CKIMG_REC_PAGES, c->seq, c->rec_offset), (unsigned long long)c->first_page,
				   c->span_pages, (unsigned long long)a->f.start, (unsigned long long)a->f.end);
			goto out;
		}
		a->has_pages = 1;
	}
	qsort(img->chunks, img->nchunks, sizeof(*img->chunks), cmp_chunk);
	for (size_t i = 1; i < img->nchunks; i++) {
		struct img_chunk *p = &img->chunks[i - 1], *c = &img->chunks[i];
		if (p->area_idx == c->area_idx &&
		    p->first_page + (uint64_t)p->span_pages * img->page_size > c->first_page) {
			err = fail(img, -EBADMSG, "BAD_FIELD: " RECFMT ": span overlaps the previous span of its area",
				   RECARG(CKIMG_REC_PAGES, c->seq, c->rec_offset));
			goto out;
		}
	}
out:
	free(keys);
	return err;
}

/* Areas must not overlap: checked on a start-sorted copy. */
static int check_area_overlap(struct img *img)
{
	size_t n = img->nareas;
	uint64_t (*r)[2] = malloc((n + 1) * sizeof(*r));

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r[i][0] = img->areas[i].f.start;
		r[i][1] = img->areas[i].f.end;
	}
	qsort(r, n, sizeof(*r), cmp_u64);
	for (size_t i = 1; i < n; i++)
		if (r[i][0] < r[i - 1][1]) {
			unsigned long long s = r[i][0];
			free(r);
			return fail(img, -EBADMSG, "BAD_FIELD: AREA at %llx overlaps another area", s);
		}
	free(r);
	return 0;
}

int img_open(struct img *img, const char *path)
{
	return img_open_process(img, path, 0);
}

int img_open_process(struct img *img, const char *path, uint32_t pid)
{
	struct stat st;
	int err;

	memset(img, 0, sizeof(*img));
	img->path = path;
	img->owner = pid;
	img->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (img->fd < 0)
		return fail(img, -errno, "IO: %s", strerror(errno));
	if (fstat(img->fd, &st) < 0)
		return fail(img, -errno, "IO: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(img, -EINVAL, "IO: not a regular file");
	img->size = (uint64_t)st.st_size;
	if ((err = load_header(img)) || (err = load_index(img)) || (err = load_records(img)) ||
	    (err = cross_check(img)) || (err = img_check_rules(img)) || (err = check_area_overlap(img)) || (err = img_check_state(img)) ||
	    (err = img_check_sigqueue(img)) ||
	    (err = img_files_check(img)))
		return err;
	return 0;
}

static void str_free(struct img_str *s)
{
	free(s->s);
	s->s = NULL;
}

void img_close(struct img *img)
{
	img_chain_free(img);
	if (img->map)
		munmap((void *)img->map, img->size);
	img->map = NULL;
	if (img->fd > 0)
		close(img->fd);
	img->fd = -1;
	str_free(&img->proc.comm);
	str_free(&img->proc.exe);
	str_free(&img->proc.cwd);
	str_free(&img->proc.root);
	str_free(&img->proc.kernel);
	for (size_t i = 0; i < img->nthreads; i++)
		free(img->threads[i].xstate);
	for (size_t i = 0; i < img->nareas; i++) {
		str_free(&img->areas[i].path);
		str_free(&img->areas[i].vmflags);
	}
	for (size_t i = 0; i < img->nfiles; i++) {
		str_free(&img->files[i].path);
		str_free(&img->files[i].build_id);
	}
	for (size_t i = 0; i < img->nfds; i++) {
		str_free(&img->fds[i].path);
		str_free(&img->fds[i].note);
	}
	for (size_t i = 0; i < img->nfdrecs; i++)
		free(img->fdrecs[i].p);
	free(img->fdrecs);
	for (size_t i = 0; i < img->nchunks; i++)
		free(img->chunks[i].bitmap);
	free(img->threads);
	free(img->areas);
	free(img->files);
	free(img->fds);
	free(img->chunks);
	img_files_free(img);
	free(img->ents);
	free(img->owners);
	free(img->tree);
	free(img->auxv);
	free(img->rlimits);
	free(img->sigs);
	img_free_state(img);
	free(img->sigq);
	img->sigq = NULL;
	img->nsigq = 0;
	img->have_sigq = 0;
}

int img_map(struct img *img)
{
	void *m;

	if (img->map)
		return 0;
	m = mmap(NULL, img->size, PROT_READ, MAP_SHARED, img->fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	madvise(m, img->size, MADV_SEQUENTIAL);
	img->map = m;
	return 0;
}

int img_read_chunk(const struct img *img, const struct img_chunk *c, uint8_t *buf, uint8_t *raw,
		   const uint8_t **data_out, char *errbuf, size_t errlen)
{
	uint64_t raw_len = (uint64_t)c->stored_pages * img->page_size;
	uint64_t drel = c->data_offset - c->payload_offset;
	const uint8_t *payload, *data;
	uint32_t crc;
	int err;

	if (img->map) {
		payload = img->map + c->payload_offset;
	} else {
		err = read_exact(img->fd, buf, c->payload_length, c->payload_offset);
		if (err) {
			snprintf(errbuf, errlen, "IO: " RECFMT ": %s", RECARG(CKIMG_REC_PAGES, c->seq, c->rec_offset),
				 strerror(-err));
			return err;
		}
		payload = buf;
	}
	data = payload + drel;
	if (c->codec == CKIMG_CODEC_NONE) {
		/* one pass over the pages: the payload CRC is the prefix's combined with the data's */
		uint32_t dcrc = ck_crc32(0, data, raw_len);
		crc = (uint32_t)crc32_combine(ck_crc32(0, payload, drel), dcrc, (z_off_t)raw_len);
		if (crc != c->payload_crc)
			goto bad_payload;
		if (dcrc != c->raw_crc)
			goto bad_raw;
		*data_out = data;
		return 0;
	}
	if (ck_crc32(0, payload, c->payload_length) != c->payload_crc)
		goto bad_payload;
	if (rst_decompress(c->codec, data, c->stored_size, raw, raw_len)) {
		snprintf(errbuf, errlen, "BAD_CODEC: " RECFMT ": data does not decompress to %llu bytes",
			 RECARG(CKIMG_REC_PAGES, c->seq, c->rec_offset), (unsigned long long)raw_len);
		return -EBADMSG;
	}
	if (ck_crc32(0, raw, raw_len) != c->raw_crc)
		goto bad_raw;
	*data_out = raw;
	return 0;
bad_payload:
	snprintf(errbuf, errlen, "BAD_CHECKSUM: " RECFMT ": payload CRC mismatch",
		 RECARG(CKIMG_REC_PAGES, c->seq, c->rec_offset));
	return -EBADMSG;
bad_raw:
	snprintf(errbuf, errlen, "BAD_CHECKSUM: " RECFMT ": raw CRC mismatch",
		 RECARG(CKIMG_REC_PAGES, c->seq, c->rec_offset));
	return -EBADMSG;
}
