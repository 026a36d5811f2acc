/*
 * Page data (FORMAT.md 4.8). The main thread reads the planned pages of each 256-page grid
 * cell with process_vm_readv (one call per chunk, one remote iovec per run of pages; pages it
 * cannot reach are retried through /proc/PID/mem) into a buffer, while the target is frozen
 * (stop-and-copy), or, in a copy-on-write capture, from the twin after the release (cow.c).
 * Worker threads take the chunks in order, drop all-zero pages of anonymous memory, compute
 * raw_crc, compress, reserve the next file offset in chunk order and write their records
 * concurrently.
 *
 * Why this shape (measured on 2-core VMs where first touch of fresh memory is the slowest
 * thing there is): page data is written with O_DIRECT from the buffer, so no page cache is
 * allocated for the image and the final fsync has almost nothing to flush; every PAGES record
 * therefore starts at a 4 KiB-aligned offset (the spec allows gaps between records), and codec
 * NONE data is page-aligned in the file as the spec recommends. The buffer is faulted in
 * before the freeze. By default it is a ring of 1 MiB slots (--buffer-mb, 16 MiB) that the
 * reader refills as the writers drain it: the target stays frozen until all but the last ring
 * of pages is written, and the capture touches little fresh memory. With a buffer as large as
 * the memory to read (--buffer-mb all, or when the memory fits), the target is released as
 * soon as its memory is read.
 */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "crc32.h"
#include "lzf.h"

#define MAX_WORKERS 8
#define ALIGN       4096u

struct pipeline {
	struct capture *c;
	struct image *im;
	uint8_t *pool;
	size_t pool_bytes, nslots, n;
	int ring;                      /* ring: chunk i uses 1 MiB slot i % nslots */
	size_t *buf_off;               /* compact: where chunk i's pages go in the pool */
	int mem_fd, out_fd, direct;    /* out_fd: O_DIRECT when direct */
	uint64_t (*bad)[CKIMG_SPAN_GRID_PAGES / 64];  /* pages that could not be read */
	uint8_t *written;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t read_done, next_claim, next_reserve, written_low;
	int err;
	pthread_t th[MAX_WORKERS];
	int nth;
	uint64_t bytes_done, stored_pages, stored_bytes;
};

static inline uint64_t align_up(uint64_t v)
{
	return (v + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
}

static uint8_t *chunk_buf(struct pipeline *pl, size_t i)
{
	if (pl->c->preread)            /* track.c: the pages were copied while frozen, kept there */
		return pl->c->preread[i];
	return pl->pool + (pl->ring ? (i % pl->nslots) * CHUNK_BYTES : pl->buf_off[i]);
}

static inline int bit(const uint64_t *b, uint32_t i)
{
	return (int)((b[i / 64] >> (i % 64)) & 1);
}

static void set_error(struct pipeline *pl, int err)
{
	pthread_mutex_lock(&pl->mu);
	if (!pl->err)
		pl->err = err;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
}

/* The next run of candidate pages of ch at or after *p: [*p, *q). 0 when there is none. */
int next_run(const struct chunk *ch, uint32_t *p, uint32_t *q)
{
	while (*p < ch->span_pages && !bit(ch->bits, *p))
		(*p)++;
	if (*p >= ch->span_pages)
		return 0;
	for (*q = *p; *q < ch->span_pages && bit(ch->bits, *q);)
		(*q)++;
	return 1;
}

/*
 * Chunk ch's candidate pages, packed into dst, read from a /proc/PID/mem fd (a run of pages at
 * a time, page by page inside a run that reads short); pages that cannot be read are marked in
 * bad. /proc/PID/mem reaches PROT_NONE and other odd areas, and does not pin: the copy-on-write
 * twin (cow.c) and trees read through it, because process_vm_readv pins pages, and pinning a
 * page still shared copy-on-write unshares it (kernel >= 5.19) — the capture itself would copy
 * every page a parent shares with its forked children (no longer seen as SHARED_PAGES).
 */
void pages_read_packed(int mem_fd, const struct chunk *ch, uint8_t *dst, uint64_t *bad)
{
	uint32_t k = 0;
	for (uint32_t p = 0, q; next_run(ch, &p, &q); p = q) {
		size_t len = (size_t)(q - p) * PAGE_SIZE_4K;
		ssize_t n = pread(mem_fd, dst + (size_t)k * PAGE_SIZE_4K, len,
				  (off_t)(ch->first_page + (uint64_t)p * PAGE_SIZE_4K));
		if (n != (ssize_t)len) {
			for (uint32_t r = p; r < q; r++) {
				uint64_t addr = ch->first_page + (uint64_t)r * PAGE_SIZE_4K;
				if (pread(mem_fd, dst + (size_t)(k + r - p) * PAGE_SIZE_4K, PAGE_SIZE_4K,
					  (off_t)addr) != PAGE_SIZE_4K)
					bad[r / 64] |= 1ull << (r % 64);
			}
		}
		k += q - p;
	}
}

/* A chunk of a single-process target in one process_vm_readv: true when every page came. */
static int read_chunk_vm(struct pipeline *pl, const struct chunk *ch, uint8_t *dst)
{
	struct iovec remote[CKIMG_SPAN_GRID_PAGES], local = { dst, (size_t)ch->cand_pages * PAGE_SIZE_4K };
	int nr = 0;

	for (uint32_t p = 0, q; next_run(ch, &p, &q); p = q)
		remote[nr++] = (struct iovec){ (void *)(ch->first_page + (uint64_t)p * PAGE_SIZE_4K),
					       (size_t)(q - p) * PAGE_SIZE_4K };
	return process_vm_readv(pl->c->pid, &local, 1, remote, (unsigned long)nr, 0) == (ssize_t)local.iov_len;
}

/* Read one chunk's candidate pages, packed, into dst; unreadable pages are marked bad. */
static int read_chunk(struct pipeline *pl, size_t i, uint8_t *dst)
{
	struct chunk *ch = &pl->c->chunks[i];
	if (pl->c->preread)            /* track.c: read while frozen (dst is that copy) */
		memcpy(pl->bad[i], pl->c->preread_bad[i], sizeof(pl->c->preread_bad[i]));
	else if (pl->c->twin)
		cow_read_chunk(pl->c, i, dst, pl->bad[i]);   /* cow.c: from the twin */
	else if (!pl->c->tree && read_chunk_vm(pl, ch, dst))
		return 0;
	else   /* a tree (no pinning), or a short read: page by page where needed */
		pages_read_packed(pl->mem_fd, ch, dst, pl->bad[i]);
	for (size_t w = 0; w < CKIMG_SPAN_GRID_PAGES / 64; w++)
		if (pl->bad[i][w]) {
			pl->c->areas[ch->area].flags |= CKIMG_AREA_UNREADABLE;
			break;
		}
	return 0;
}

int pages_read_all(struct pipeline *pl)
{
	int err = 0;
	for (size_t i = 0; i < pl->n; i++) {
		pthread_mutex_lock(&pl->mu);
		while (pl->ring && !pl->err && i >= pl->nslots && pl->written_low + pl->nslots <= i)
			pthread_cond_wait(&pl->cv, &pl->mu);
		err = pl->err;
		pthread_mutex_unlock(&pl->mu);
		if (!err && cap_abort)
			err = (cap_fail(0, "interrupted by a signal; the target was released"), -EINTR);
		if (err)
			break;
		err = read_chunk(pl, i, chunk_buf(pl, i));
		if (err)
			break;
		if (pl->c->preread && i + 1 < pl->n)
			continue;       /* all in memory already: the writers are told once */
		pthread_mutex_lock(&pl->mu);
		pl->read_done = i + 1;
		pthread_cond_broadcast(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
	}
	if (err)
		set_error(pl, err);
	return err;
}

struct worker {
	struct pipeline *pl;
	void *lz4_state;
	struct lzf_state *lzf;
	z_stream z;
	int z_ok;
	uint8_t *out;                  /* ALIGN-aligned: a whole record, padded */
	size_t out_cap;
};

/* Compress raw into dst (at most cap bytes); 0 when it does not fit. */
static size_t compress_chunk(struct worker *w, int codec, const uint8_t *raw, size_t len,
			     uint8_t *dst, size_t cap)
{
	switch (codec) {
	case CKIMG_CODEC_LZ4: {
		int r = LZ4_compress_fast_extState(w->lz4_state, (const char *)raw, (char *)dst,
						   (int)len, (int)cap, 1);
		return r > 0 ? (size_t)r : 0;
	}
	case CKIMG_CODEC_LZF:
		return lzf_compress(raw, len, dst, cap, w->lzf);
	case CKIMG_CODEC_DEFLATE:
		if (!w->z_ok || deflateReset(&w->z) != Z_OK)
			return 0;
		w->z.next_in = (Bytef *)raw;
		w->z.avail_in = (uInt)len;
		w->z.next_out = dst;
		w->z.avail_out = (uInt)cap;
		return deflate(&w->z, Z_FINISH) == Z_STREAM_END ? cap - w->z.avail_out : 0;
	}
	return 0;
}

/* Wait for chunk i's turn to reserve file space (chunks go to the file in order). */
static int wait_turn(struct pipeline *pl, size_t i)
{
	pthread_mutex_lock(&pl->mu);
	while (!pl->err && pl->next_reserve != i)
		pthread_cond_wait(&pl->cv, &pl->mu);
	int err = pl->err;
	pthread_mutex_unlock(&pl->mu);
	return err;
}

static void end_turn(struct pipeline *pl, size_t next)
{
	pthread_mutex_lock(&pl->mu);
	pl->next_reserve = next;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
}

static int pwritev_all(int fd, struct iovec *v, int cnt, uint64_t off)
{
	while (cnt > 0) {
		ssize_t n = pwritev(fd, v, cnt, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt > 0) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static void put_record_header(uint8_t *at, uint64_t payload_len, uint32_t payload_crc, uint32_t seq, uint32_t owner)
{
	struct ckimg_record_header rh;
	memset(&rh, 0, sizeof(rh));
	memcpy(rh.magic, CKIMG_RECORD_MAGIC, 4);
	rh.type = CKIMG_REC_PAGES;
	rh.payload_length = payload_len;
	rh.payload_crc = payload_crc;
	rh.sequence = seq;
	rh.owner_pid = owner;       /* format 1.2 trees */
	rh.header_crc = ck_crc32(0, &rh, 28);
	memcpy(at, &rh, sizeof(rh));
}

/* A chunk's PAGES record, made, waiting for its place in the file. */
struct prep {
	uint32_t stored, seq;
	uint64_t raw_bytes, payload_len, clen, off;
	uint32_t crc;                  /* of the payload */
	struct ckimg_pages_fixed fx;
	uint8_t *rec;                  /* in w->out: the record (header filled in at its turn) */
	size_t rec_bytes, padded;      /* in w->out; in the file (NONE: + DATA from the slot) */
	const uint8_t *data;           /* NONE: DATA, written straight from the slot */
};

/*
 * Chunk i's PAGES record into rec (w->out), all but the record header (its sequence number
 * comes with its file offset). Layout:
 *   [record header 32][FIXED 48][bitmap][pad][DATA][zero pad to ALIGN]
 * NONE: header+FIXED+bitmap padded to one 4 KiB page (data_offset = 4064) and DATA written
 * straight from the buffer; compressed: DATA follows the bitmap, compressed into rec.
 * Uses at most the chunk's candidate bytes of rec (ALIGN at least).
 */
static void prepare_chunk(struct worker *w, size_t i, uint8_t *rec, struct prep *p)
{
	struct pipeline *pl = w->pl;
	struct capture *c = pl->c;
	const struct chunk *ch = &c->chunks[i];
	uint8_t *slot = chunk_buf(pl, i);
	uint64_t final[CKIMG_SPAN_GRID_PAGES / 64] = { 0 };
	uint32_t raw_crc;

	memset(p, 0, sizeof(*p));
	/* incremental.c: zero / unreadable / inherited pages dropped, the rest packed; digests */
	p->stored = incr_filter_chunk(c, i, slot, pl->bad[i], final, &raw_crc);
	p->raw_bytes = (uint64_t)ch->cand_pages * PAGE_SIZE_4K;
	if (!p->stored)
		return;
	size_t raw_len = (size_t)p->stored * PAGE_SIZE_4K, bm_len = (ch->span_pages + 7) / 8;
	size_t head = CKIMG_RECORD_HDR_SIZE + sizeof(struct ckimg_pages_fixed) + bm_len;
	int codec = c->codec;
	size_t clen = 0;
	if (codec != CKIMG_CODEC_NONE)
		clen = compress_chunk(w, codec, slot, raw_len, rec + head, raw_len - ALIGN);
	if (!clen) {
		codec = CKIMG_CODEC_NONE;
		head = ALIGN;             /* DATA page-aligned in the file (4.8) */
		clen = raw_len;
	}
	p->fx = (struct ckimg_pages_fixed){
		.fixed_size = sizeof(p->fx), .area_id = c->areas[ch->area].id, .first_page = ch->first_page,
		.span_pages = ch->span_pages, .stored_pages = p->stored, .codec = (uint8_t)codec,
		.stored_size = (uint32_t)clen, .raw_crc = raw_crc,
		.data_offset = (uint32_t)(head - CKIMG_RECORD_HDR_SIZE),
	};
	p->payload_len = head - CKIMG_RECORD_HDR_SIZE + clen;
	p->clen = clen;
	size_t rec_len = head + clen;
	p->padded = (size_t)align_up(rec_len);
	p->rec = rec;
	memset(rec + CKIMG_RECORD_HDR_SIZE, 0, (codec == CKIMG_CODEC_NONE ? ALIGN : head) - CKIMG_RECORD_HDR_SIZE);
	memcpy(rec + CKIMG_RECORD_HDR_SIZE, &p->fx, sizeof(p->fx));
	memcpy(rec + CKIMG_RECORD_HDR_SIZE + sizeof(p->fx), final, bm_len);
	uint32_t crc = ck_crc32(0, rec + CKIMG_RECORD_HDR_SIZE, head - CKIMG_RECORD_HDR_SIZE);
	if (codec == CKIMG_CODEC_NONE) {
		p->crc = (uint32_t)crc32_combine(crc, raw_crc, (z_off_t)raw_len);
		p->rec_bytes = ALIGN;
		p->data = slot;
	} else {
		p->crc = ck_crc32(crc, rec + head, clen);
		memset(rec + rec_len, 0, p->padded - rec_len);
		p->rec_bytes = p->padded;
	}
}

static void mark_written(struct pipeline *pl, size_t i0, const struct prep *pp, size_t n)
{
	pthread_mutex_lock(&pl->mu);
	for (size_t k = 0; k < n; k++) {
		pl->written[i0 + k] = 1;
		pl->bytes_done += pp[k].raw_bytes;
		pl->stored_pages += pp[k].stored;
		pl->stored_bytes += pp[k].stored ? pp[k].clen : 0;
	}
	while (pl->written_low < pl->n && pl->written[pl->written_low])
		pl->written_low++;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
}

/*
 * Chunks [i0, i1): their records made (prepare_chunk, into w->out one after the other), then,
 * at their turn, their places in the file reserved (in chunk order, each at the next
 * ALIGN-aligned offset) and written, adjacent ones in one pwritev. One chunk at a time except
 * in a tracked incremental capture, whose chunks hold a few pages each: there the handover
 * between workers (a futex wake each, ~1000 for 1 GiB, costly on this VM) is once a batch.
 */
#define BATCH_CHUNKS 64

static int write_batch(struct worker *w, size_t i0, size_t i1)
{
	struct pipeline *pl = w->pl;
	struct prep pp[BATCH_CHUNKS];
	struct iovec iov[2 * BATCH_CHUNKS];
	size_t used = 0, k, n = i1 - i0;
	int err, cnt = 0;

	for (k = 0; k < n; k++) {
		prepare_chunk(w, i0 + k, w->out + used, &pp[k]);
		if (pp[k].stored)
			used += pp[k].rec_bytes;
	}
	err = wait_turn(pl, i0);
	if (!err) {
		for (k = 0; !err && k < n; k++) {
			struct prep *p = &pp[k];
			if (!p->stored)
				continue;
			p->off = align_up(pl->im->off);
			err = image_reserve_at(pl->im, p->off, CKIMG_REC_PAGES, p->payload_len, p->fx.area_id,
					       p->fx.first_page, p->fx.span_pages, p->stored, &p->seq);
			if (!err)
				pl->im->off = p->off + p->padded;   /* the next record aligned, padding written */
		}
		end_turn(pl, i1);
	}
	if (err)
		return cap_fail(err, "image layout");
	uint64_t at = 0, next = 0;
	for (k = 0; k <= n; k++) {
		struct prep *p = k < n ? &pp[k] : NULL;
		if (p && !p->stored)
			continue;
		if (cnt && (!p || p->off != next)) {     /* a run of adjacent records: one write */
			err = pwritev_all(pl->out_fd, iov, cnt, at);
			if (err)
				return cap_fail(err, "write image");
			if (!pl->direct)        /* writeback starts now: the final fsync has little left */
				sync_file_range(pl->out_fd, (off_t)at, (off_t)(next - at), SYNC_FILE_RANGE_WRITE);
			cnt = 0;
		}
		if (!p)
			break;
		put_record_header(p->rec, p->payload_len, p->crc, p->seq, pl->im->owner);
		if (!cnt)
			at = p->off;
		iov[cnt++] = (struct iovec){ p->rec, p->rec_bytes };
		if (p->data)
			iov[cnt++] = (struct iovec){ (void *)p->data, p->padded - p->rec_bytes };
		next = p->off + p->padded;
	}
	mark_written(pl, i0, pp, n);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pipeline *pl = w->pl;
	const struct chunk *chunks = pl->c->chunks;
	int err = 0;

	for (;;) {
		pthread_mutex_lock(&pl->mu);
		size_t i = pl->n, j = pl->n;
		if (pl->next_claim < pl->n) {
			i = pl->next_claim;
			j = i + 1;
			/* a batch: as many chunks as w->out holds whatever they compress to */
			uint64_t bytes = (uint64_t)chunks[i].cand_pages * PAGE_SIZE_4K + ALIGN;
			while (pl->c->preread && j < pl->n && j - i < BATCH_CHUNKS &&
			       bytes + (uint64_t)chunks[j].cand_pages * PAGE_SIZE_4K + ALIGN <= w->out_cap) {
				bytes += (uint64_t)chunks[j].cand_pages * PAGE_SIZE_4K + ALIGN;
				j++;
			}
			pl->next_claim = j;
		}
		while (!pl->err && i < pl->n && pl->read_done < j)
			pthread_cond_wait(&pl->cv, &pl->mu);
		err = pl->err;
		pthread_mutex_unlock(&pl->mu);
		if (err || i >= pl->n)
			break;
		err = write_batch(w, i, j);
		if (err) {
			set_error(pl, err);
			break;
		}
	}
	if (w->z_ok)
		deflateEnd(&w->z);
	free(w->lz4_state);
	free(w->lzf);
	cap_free_buf(w->out, w->out_cap);
	free(w);
	return NULL;
}

static uint64_t memory_budget(void)
{
	unsigned long long avail_kb = 0;
	char *mi = NULL;
	if (read_file("/proc/meminfo", &mi, NULL) == 0) {
		proc_status_value(mi, "MemAvailable", 10, &avail_kb);
		free(mi);
	}
	uint64_t budget = avail_kb ? avail_kb * 1024 / 2 : (1ull << 30);
	return budget < (64ull << 20) ? 64ull << 20 : budget;
}

static uint8_t *prealloc_pool;
static size_t prealloc_bytes;

static void *alloc_buffer(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_NOHUGEPAGE);  /* THP allocation stalls cost more than they save */
	return p;
}

/* Buffer size wanted: the ring (c->buffer_bytes) or, for "all" (0), the memory to read. */
static uint64_t wanted_buffer(const struct capture *c, uint64_t need)
{
	uint64_t budget = memory_budget(), want = need;
	if (c->buffer_bytes && want > c->buffer_bytes)
		want = c->buffer_bytes;
	if (want > budget)
		want = budget;
	return (want + CHUNK_BYTES - 1) & ~(uint64_t)(CHUNK_BYTES - 1);
}

/*
 * Before the freeze: fault the buffer in (MADV_POPULATE_WRITE, in bulk), sized from
 * smaps_rollup (Rss + Swap) or the ring size, so first touch stays out of the freeze.
 */
void pages_prealloc(struct capture *c, struct image *im)
{
	char path[64], *r = NULL;
	unsigned long long rss = 0, swap = 0;

	/* An incremental capture on the tracked baseline reads the pages written since into
	 * buffers of its own while frozen (track.c) and writes its few MiB through the page
	 * cache: no page buffer here, no blocks allocated ahead (the file's tail would have to be
	 * cut at the end: measured 8 ms of ftruncate for 3 MB of unwritten extents), and no
	 * smaps_rollup (it walks every page table: ~8 ms per GiB). */
	if (track_direct(c))
		return;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", c->pid);
	if (read_file(path, &r, NULL) == 0) {
		proc_status_value(r, "Rss", 10, &rss);
		proc_status_value(r, "Swap", 10, &swap);
		free(r);
	}
	/* Allocate the file's blocks up front (and set its size): O_DIRECT writes inside the
	 * file then run concurrently instead of serialising on extending the file. The image is
	 * truncated to its real size at the end. */
	uint64_t est = (rss + swap) * 1024;
	est += est / 256 + (4u << 20);
	if (fallocate(im->fd, 0, 0, (off_t)est) == 0)
		im->prealloc = est;
	uint64_t want = wanted_buffer(c, (rss + swap) * 1024 + (4u << 20));
	uint8_t *p = alloc_buffer(want);
	if (!p)
		return;
#ifdef MADV_POPULATE_WRITE
	madvise(p, want, MADV_POPULATE_WRITE);
#endif
	prealloc_pool = p;
	prealloc_bytes = want;
}

/* Compact when every planned chunk fits, else a ring of 1 MiB slots. */
static int setup_pool(struct pipeline *pl)
{
	struct capture *c = pl->c;
	uint64_t need = (c->cand_bytes + CHUNK_BYTES - 1) & ~(uint64_t)(CHUNK_BYTES - 1);
	uint64_t want = wanted_buffer(c, need);

	if (c->preread)                /* no buffer: each chunk is compressed from its copy */
		return 0;

	pl->pool = prealloc_pool;
	pl->pool_bytes = prealloc_bytes;
	prealloc_pool = NULL;
	prealloc_bytes = 0;
	if (want < CHUNK_BYTES)
		want = CHUNK_BYTES;
	if (want > pl->pool_bytes) {
		void *p = pl->pool ? mremap(pl->pool, pl->pool_bytes, want, MREMAP_MAYMOVE) : alloc_buffer(want);
		if (!p || p == MAP_FAILED)
			return cap_fail(-ENOMEM, "allocate %llu MiB page buffer", (unsigned long long)(want >> 20));
		pl->pool = p;
		pl->pool_bytes = want;
	}
	if (c->cand_bytes > pl->pool_bytes) {
		pl->ring = 1;
		pl->nslots = pl->pool_bytes / CHUNK_BYTES;
		return 0;
	}
	pl->buf_off = calloc(pl->n ? pl->n : 1, sizeof(*pl->buf_off));
	if (!pl->buf_off)
		return -ENOMEM;
	size_t off = 0;
	for (size_t i = 0; i < pl->n; i++) {
		pl->buf_off[i] = off;
		off += (size_t)c->chunks[i].cand_pages * PAGE_SIZE_4K;
	}
	return 0;
}

/* A second descriptor of the image for page data: O_DIRECT where the filesystem allows.
 * Not for a tracked incremental capture: its few MiB go through the page cache and the final
 * fsync writes them at once (measured: 1024 small O_DIRECT writes, each waiting for the
 * device, cost more than the page cache they save). */
static void open_output(struct pipeline *pl)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", pl->im->fd);
	pl->out_fd = getenv("CKIMG_NO_DIRECT") || pl->c->preread ? -1 : open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	pl->direct = pl->out_fd >= 0;
	if (!pl->direct)
		pl->out_fd = pl->im->fd;
}

int pages_start(struct capture *c, struct image *im, struct pipeline **out)
{
	char path[64];
	sigset_t all, old;
	struct pipeline *pl = calloc(1, sizeof(*pl));
	int err = 0;

	*out = pl;
	if (!pl)
		return -ENOMEM;
	pl->c = c;
	pl->im = im;
	pl->n = c->nchunks;
	pl->mem_fd = pl->out_fd = -1;
	pthread_mutex_init(&pl->mu, NULL);
	pthread_cond_init(&pl->cv, NULL);
	pl->bad = calloc(pl->n ? pl->n : 1, sizeof(*pl->bad));
	pl->written = calloc(pl->n ? pl->n : 1, 1);
	if (!pl->bad || !pl->written)
		return -ENOMEM;
	err = setup_pool(pl);
	if (err)
		return err;
	open_output(pl);
	snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
	pl->mem_fd = open(path, O_RDONLY | O_CLOEXEC);

	/* Compression keeps every core busy; plain writes wait on the device, so more of them
	 * keep more requests in flight. */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nth = c->codec == CKIMG_CODEC_NONE ? 4 : (ncpu < 1 ? 1 : (int)ncpu) + 2;
	if (c->preread)                /* all in memory, written through the page cache: no waits */
		nth = ncpu < 1 ? 1 : ncpu > MAX_WORKERS ? MAX_WORKERS : (int)ncpu;
	if (getenv("CKIMG_WORKERS"))
		nth = atoi(getenv("CKIMG_WORKERS")) > 0 ? atoi(getenv("CKIMG_WORKERS")) : 1;
	if (nth > MAX_WORKERS)
		nth = MAX_WORKERS;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);  /* signals go to the main thread only */
	for (int t = 0; t < nth; t++) {
		struct worker *w = calloc(1, sizeof(*w));
		if (!w) {
			err = -ENOMEM;
			break;
		}
		w->pl = pl;
		w->out_cap = (size_t)align_up((uint64_t)LZ4_compressBound(CHUNK_BYTES) + 2 * ALIGN);
		w->out = cap_alloc_buf(w->out_cap);   /* (huge pages: fresh memory, written at once) */
		/* only the codec's own state (deflate's is ~256 KiB of fresh memory) */
		w->lz4_state = c->codec == CKIMG_CODEC_LZ4 ? malloc((size_t)LZ4_sizeofState()) : NULL;
		w->lzf = c->codec == CKIMG_CODEC_LZF ? calloc(1, sizeof(*w->lzf)) : NULL;
		if (c->codec == CKIMG_CODEC_DEFLATE &&
		    deflateInit2(&w->z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK)
			w->z_ok = 1;
		if (!w->out || (c->codec == CKIMG_CODEC_LZ4 && !w->lz4_state) ||
		    (c->codec == CKIMG_CODEC_LZF && !w->lzf) ||
		    pthread_create(&pl->th[t], NULL, worker_main, w) != 0) {
			if (w->z_ok)
				deflateEnd(&w->z);
			cap_free_buf(w->out, w->out_cap);
			free(w->lz4_state);
			free(w->lzf);
			free(w);
			err = -ENOMEM;
			break;
		}
		pl->nth++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		set_error(pl, err);
	return err;
}

void pages_progress(struct pipeline *pl, uint64_t *done, uint64_t *total)
{
	pthread_mutex_lock(&pl->mu);
	*done = pl->bytes_done;
	pthread_mutex_unlock(&pl->mu);
	*total = pl->c->cand_bytes;
}

/*
 * The pages that failed to read (pl->bad), as sorted [start, end) runs per area: chunks are in
 * address order, so each run either extends the area's last one or starts a new one.
 */
static int collect_unreadable(struct pipeline *pl)
{
	struct capture *c = pl->c;
	for (size_t i = 0; i < pl->n; i++) {
		const struct chunk *ch = &c->chunks[i];
		struct area *a = &c->areas[ch->area];
		for (uint32_t p = 0; p < ch->span_pages; p++) {
			if (!((pl->bad[i][p / 64] >> (p % 64)) & 1))
				continue;
			uint64_t s = ch->first_page + (uint64_t)p * PAGE_SIZE_4K;
			if (a->nunreadable && a->unreadable[a->nunreadable - 1][1] == s) {
				a->unreadable[a->nunreadable - 1][1] = s + PAGE_SIZE_4K;
				continue;
			}
			void *n = realloc(a->unreadable, (a->nunreadable + 1) * sizeof(*a->unreadable));
			if (!n)
				return -ENOMEM;
			a->unreadable = n;
			a->unreadable[a->nunreadable][0] = s;
			a->unreadable[a->nunreadable++][1] = s + PAGE_SIZE_4K;
		}
	}
	return 0;
}

/*
 * One UNREADABLE_PAGES record per area some of whose pages failed to read (after the AREA
 * records: rule U1). An area flagged UNREADABLE from the start (VM_IO, VM_PFNMAP) was not read
 * at all and gets no record: all its content is unknown.
 */
int pages_put_unreadable(struct capture *c, struct image *im)
{
	int err = 0;
	for (size_t i = 0; i < c->nareas; i++) {
		struct area *a = &c->areas[i];
		if (!a->nunreadable)
			continue;
		struct ckimg_unreadable_fixed f = {
			.fixed_size = sizeof(f), .area_id = a->id, .count = (uint32_t)a->nunreadable, .entry_size = 16,
		};
		struct buf b = { 0 };
		err = buf_put(&b, &f, sizeof(f));
		if (!err)
			err = buf_put(&b, a->unreadable, a->nunreadable * sizeof(*a->unreadable));
		if (!err)
			err = image_record(im, CKIMG_REC_UNREADABLE_PAGES, &b, a->id, 0);
		buf_free(&b);
		free(a->unreadable);
		a->unreadable = NULL;
		a->nunreadable = 0;
		if (err)
			break;
	}
	return err;
}

/* Wait for the writers (progress callback every ~200 ms), then free. Returns the first error. */
int pages_finish(struct pipeline *pl, void (*tick)(struct pipeline *))
{
	int err;
	if (!pl)
		return -ENOMEM;
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&pl->mu);
		if (cap_abort && !pl->err) {
			pl->err = (cap_fail(0, "interrupted by a signal; the target was released"), -EINTR);
			pthread_cond_broadcast(&pl->cv);
		}
		int done = pl->err || pl->written_low >= pl->n;
		if (!done)
			pthread_cond_timedwait(&pl->cv, &pl->mu, &ts);
		pthread_mutex_unlock(&pl->mu);
		if (done)
			break;
		if (tick)
			tick(pl);
	}
	for (int t = 0; t < pl->nth; t++)
		pthread_join(pl->th[t], NULL);
	err = pl->err;
	if (!err)
		err = collect_unreadable(pl);
	pl->c->stored_pages = pl->stored_pages;
	pl->c->stored_bytes = pl->stored_bytes;
	pl->c->direct_io = pl->direct;
	if (pl->pool)
		munmap(pl->pool, pl->pool_bytes);
	if (pl->mem_fd >= 0)
		close(pl->mem_fd);
	if (pl->direct)
		close(pl->out_fd);
	free(pl->bad);
	free(pl->written);
	free(pl->buf_off);
	free(pl);
	return err;
}
