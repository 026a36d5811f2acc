/*
 * Page data (FORMAT.md 4.8): the main thread reads the planned pages of each 256-page grid
 * cell with process_vm_readv (one call per chunk, one remote iovec per run of pages; the pages
 * process_vm_readv cannot reach are retried through /proc/PID/mem) into a pool of 1 MiB slots,
 * while the target is frozen. Worker threads (one per core) take the chunks in order, drop
 * all-zero pages of anonymous memory, compute raw_crc, compress, reserve the next file offset
 * in chunk order and pwrite their records concurrently, starting writeback as they go.
 * The pool holds every chunk when memory allows, so the freeze ends when reading ends.
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

struct pipeline {
	struct capture *c;
	struct image *im;
	uint8_t *pool;
	size_t pool_bytes, nslots, n;
	size_t *buf_off;               /* compact mode: where chunk i's pages go in the pool */
	int ring;                      /* ring mode: chunk i uses 1 MiB slot i % nslots */
	/* direct mode (codec NONE): pages are read straight into a shared mapping of the image
	 * file; chunk i's record starts at region[i], its data one page later. */
	int direct;
	uint8_t *map;
	size_t map_len;
	uint64_t *region;
	int mem_fd;
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

static uint8_t *chunk_buf(struct pipeline *pl, size_t i)
{
	if (pl->direct)
		return pl->map + pl->region[i] + PAGE_SIZE_4K;
	return pl->pool + (pl->ring ? (i % pl->nslots) * CHUNK_BYTES : pl->buf_off[i]);
}

static int page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	if (q[0] | q[1] | q[2] | q[3])
		return 0;                  /* most pages with data fail here */
	for (size_t i = 0; i < PAGE_SIZE_4K / 8; i += 8) {
		uint64_t acc = q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] | q[i + 7];
		if (acc)
			return 0;
	}
	return 1;
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

/* Read one chunk's candidate pages, packed, into dst; unreadable pages are marked bad. */
static int read_chunk(struct pipeline *pl, size_t i, uint8_t *dst)
{
	struct chunk *ch = &pl->c->chunks[i];
	struct iovec remote[CKIMG_SPAN_GRID_PAGES], local = { dst, (size_t)ch->cand_pages * PAGE_SIZE_4K };
	int nr = 0;

	for (uint32_t p = 0; p < ch->span_pages;) {
		if (!bit(ch->bits, p)) {
			p++;
			continue;
		}
		uint32_t q = p;
		while (q < ch->span_pages && bit(ch->bits, q))
			q++;
		remote[nr++] = (struct iovec){ (void *)(ch->first_page + (uint64_t)p * PAGE_SIZE_4K),
					       (size_t)(q - p) * PAGE_SIZE_4K };
		p = q;
	}
	ssize_t got = process_vm_readv(pl->c->pid, &local, 1, remote, (unsigned long)nr, 0);
	if (got == (ssize_t)local.iov_len)
		return 0;
	if (got < 0)
		got = 0;
	if (got % PAGE_SIZE_4K)
		got -= got % PAGE_SIZE_4K;
	/* Page by page for the rest: /proc/PID/mem reaches PROT_NONE and other odd areas. */
	uint32_t k = 0;
	for (uint32_t p = 0; p < ch->span_pages; p++) {
		if (!bit(ch->bits, p))
			continue;
		if ((uint64_t)k * PAGE_SIZE_4K >= (uint64_t)got) {
			uint64_t addr = ch->first_page + (uint64_t)p * PAGE_SIZE_4K;
			ssize_t r = pread(pl->mem_fd, dst + (size_t)k * PAGE_SIZE_4K, PAGE_SIZE_4K, (off_t)addr);
			if (r != PAGE_SIZE_4K) {
				pl->bad[i][p / 64] |= 1ull << (p % 64);
				pl->c->areas[ch->area].flags |= CKIMG_AREA_UNREADABLE;
			}
		}
		k++;
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
			err = cap_fail(-EINTR, "interrupted");
		if (err)
			break;
		err = read_chunk(pl, i, chunk_buf(pl, i));
		if (err)
			break;
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
	uint8_t *out;
	size_t out_cap;
};

/* Drop zero / unreadable pages, packing the rest to the front; returns pages kept. */
static uint32_t filter_chunk(struct pipeline *pl, size_t i, uint8_t *slot, uint64_t *final)
{
	const struct chunk *ch = &pl->c->chunks[i];
	uint32_t k = 0, j = 0;
	for (uint32_t p = 0; p < ch->span_pages; p++) {
		if (!bit(ch->bits, p))
			continue;
		uint8_t *src = slot + (size_t)k++ * PAGE_SIZE_4K;
		if (bit(pl->bad[i], p) || (ch->zero_filter && page_is_zero(src)))
			continue;
		if (j != k - 1)
			memcpy(slot + (size_t)j * PAGE_SIZE_4K, src, PAGE_SIZE_4K);
		j++;
		final[p / 64] |= 1ull << (p % 64);
	}
	return j;
}

static size_t compress_chunk(struct worker *w, int codec, const uint8_t *raw, size_t len)
{
	size_t cap = len - 1 < w->out_cap ? len - 1 : w->out_cap;   /* must shrink */
	switch (codec) {
	case CKIMG_CODEC_LZ4: {
		int r = LZ4_compress_fast_extState(w->lz4_state, (const char *)raw, (char *)w->out,
						   (int)len, (int)cap, 1);
		return r > 0 ? (size_t)r : 0;
	}
	case CKIMG_CODEC_LZF:
		return lzf_compress(raw, len, w->out, cap, w->lzf);
	case CKIMG_CODEC_DEFLATE:
		if (!w->z_ok || deflateReset(&w->z) != Z_OK)
			return 0;
		w->z.next_in = (Bytef *)raw;
		w->z.avail_in = (uInt)len;
		w->z.next_out = w->out;
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

static void end_turn(struct pipeline *pl)
{
	pthread_mutex_lock(&pl->mu);
	pl->next_reserve++;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
}

static void mark_written(struct pipeline *pl, size_t i, uint64_t raw_bytes, uint32_t stored, uint64_t bytes)
{
	pthread_mutex_lock(&pl->mu);
	pl->written[i] = 1;
	while (pl->written_low < pl->n && pl->written[pl->written_low])
		pl->written_low++;
	pl->bytes_done += raw_bytes;
	pl->stored_pages += stored;
	pl->stored_bytes += bytes;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
}

static int finish_direct(struct pipeline *pl, size_t i, uint32_t stored, const uint64_t *final);

static int write_chunk(struct worker *w, size_t i)
{
	struct pipeline *pl = w->pl;
	struct capture *c = pl->c;
	const struct chunk *ch = &c->chunks[i];
	uint8_t *slot = chunk_buf(pl, i);
	uint8_t head[48 + CKIMG_SPAN_GRID_PAGES / 8 + PAGE_SIZE_4K];
	uint64_t final[CKIMG_SPAN_GRID_PAGES / 64] = { 0 };
	uint64_t off;
	uint32_t seq;
	int err;

	uint32_t stored = filter_chunk(pl, i, slot, final);
	size_t raw_len = (size_t)stored * PAGE_SIZE_4K;
	if (pl->direct)
		return finish_direct(pl, i, stored, final);
	if (!stored) {
		err = wait_turn(pl, i);
		if (!err)
			end_turn(pl);
		mark_written(pl, i, (uint64_t)ch->cand_pages * PAGE_SIZE_4K, 0, 0);
		return err;
	}
	uint32_t raw_crc = ck_crc32(0, slot, raw_len);
	int codec = c->codec;
	size_t clen = codec == CKIMG_CODEC_NONE ? 0 : compress_chunk(w, codec, slot, raw_len);
	const uint8_t *data = clen ? w->out : slot;
	if (!clen) {
		codec = CKIMG_CODEC_NONE;
		clen = raw_len;
	}
	size_t bm_len = (ch->span_pages + 7) / 8;
	struct ckimg_pages_fixed fx = {
		.fixed_size = sizeof(fx), .area_id = c->areas[ch->area].id, .first_page = ch->first_page,
		.span_pages = ch->span_pages, .stored_pages = stored, .codec = (uint8_t)codec,
		.stored_size = (uint32_t)clen, .raw_crc = raw_crc,
	};

	err = wait_turn(pl, i);
	if (err)
		return err;
	size_t head_len = sizeof(fx) + bm_len;
	if (codec == CKIMG_CODEC_NONE) {
		/* DATA at a page-aligned file offset, so a restorer can mmap it (4.8). */
		uint64_t data_at = pl->im->off + CKIMG_RECORD_HDR_SIZE + head_len;
		head_len += (size_t)(((data_at + PAGE_SIZE_4K - 1) & ~(uint64_t)(PAGE_SIZE_4K - 1)) - data_at);
	}
	fx.data_offset = (uint32_t)head_len;
	uint64_t payload_len = head_len + clen;
	err = image_reserve(pl->im, CKIMG_REC_PAGES, payload_len, fx.area_id, fx.first_page,
			    fx.span_pages, stored, &off, &seq);
	end_turn(pl);
	if (err)
		return err;

	memset(head, 0, head_len);
	memcpy(head, &fx, sizeof(fx));
	memcpy(head + sizeof(fx), final, bm_len);
	uint32_t crc = ck_crc32(0, head, head_len);
	crc = codec == CKIMG_CODEC_NONE ? (uint32_t)crc32_combine(crc, raw_crc, (z_off_t)clen)
					: ck_crc32(crc, data, clen);
	struct iovec iov[2] = { { head, head_len }, { (void *)data, clen } };
	err = image_write_at(pl->im, off, CKIMG_REC_PAGES, seq, iov, 2, payload_len, crc);
	if (err)
		return err;
	sync_file_range(pl->im->fd, (off_t)off, (off_t)(CKIMG_RECORD_HDR_SIZE + payload_len),
			SYNC_FILE_RANGE_WRITE);
	mark_written(pl, i, (uint64_t)ch->cand_pages * PAGE_SIZE_4K, stored, clen);
	return 0;
}

/*
 * Direct mode: the data is already in place one page after region[i]; write the record
 * header, FIXED and bitmap into that first page (data_offset = page - 32, so DATA is
 * page-aligned) and punch out the pages that zero-filtering freed (a gap between records).
 */
static int finish_direct(struct pipeline *pl, size_t i, uint32_t stored, const uint64_t *final)
{
	struct capture *c = pl->c;
	const struct chunk *ch = &c->chunks[i];
	uint64_t at = pl->region[i], next = pl->region[i + 1];
	uint64_t used = stored ? PAGE_SIZE_4K + (uint64_t)stored * PAGE_SIZE_4K : 0;
	uint8_t *rec = pl->map + at;
	uint32_t seq;
	int err;

	if (used < next - at)
		fallocate(pl->im->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(at + used),
			  (off_t)(next - at - used));
	err = wait_turn(pl, i);
	if (err)
		return err;
	if (!stored) {
		end_turn(pl);
		mark_written(pl, i, (uint64_t)ch->cand_pages * PAGE_SIZE_4K, 0, 0);
		return 0;
	}
	size_t raw_len = (size_t)stored * PAGE_SIZE_4K, bm_len = (ch->span_pages + 7) / 8;
	uint64_t payload_len = PAGE_SIZE_4K - CKIMG_RECORD_HDR_SIZE + raw_len;
	uint32_t raw_crc = ck_crc32(0, rec + PAGE_SIZE_4K, raw_len);
	struct ckimg_pages_fixed fx = {
		.fixed_size = sizeof(fx), .area_id = c->areas[ch->area].id, .first_page = ch->first_page,
		.span_pages = ch->span_pages, .stored_pages = stored, .codec = CKIMG_CODEC_NONE,
		.stored_size = (uint32_t)raw_len, .raw_crc = raw_crc,
		.data_offset = PAGE_SIZE_4K - CKIMG_RECORD_HDR_SIZE,
	};
	err = image_reserve_at(pl->im, at, CKIMG_REC_PAGES, payload_len, fx.area_id, fx.first_page,
			       fx.span_pages, stored, &seq);
	end_turn(pl);
	if (err)
		return cap_fail(err, "image layout");
	uint8_t *payload = rec + CKIMG_RECORD_HDR_SIZE;
	memset(payload, 0, PAGE_SIZE_4K - CKIMG_RECORD_HDR_SIZE);
	memcpy(payload, &fx, sizeof(fx));
	memcpy(payload + sizeof(fx), final, bm_len);
	uint32_t crc = ck_crc32(0, payload, PAGE_SIZE_4K - CKIMG_RECORD_HDR_SIZE);
	crc = (uint32_t)crc32_combine(crc, raw_crc, (z_off_t)raw_len);
	struct ckimg_record_header rh;
	memset(&rh, 0, sizeof(rh));
	memcpy(rh.magic, CKIMG_RECORD_MAGIC, 4);
	rh.type = CKIMG_REC_PAGES;
	rh.payload_length = payload_len;
	rh.payload_crc = crc;
	rh.sequence = seq;
	rh.header_crc = ck_crc32(0, &rh, 28);
	memcpy(rec, &rh, sizeof(rh));
	sync_file_range(pl->im->fd, (off_t)at, (off_t)used, SYNC_FILE_RANGE_WRITE);
	mark_written(pl, i, (uint64_t)ch->cand_pages * PAGE_SIZE_4K, stored, raw_len);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pipeline *pl = w->pl;
	int err = 0;

	for (;;) {
		pthread_mutex_lock(&pl->mu);
		size_t i = pl->next_claim < pl->n ? pl->next_claim++ : pl->n;
		while (!pl->err && i < pl->n && pl->read_done <= i)
			pthread_cond_wait(&pl->cv, &pl->mu);
		err = pl->err;
		pthread_mutex_unlock(&pl->mu);
		if (err || i >= pl->n)
			break;
		err = write_chunk(w, i);
		if (err) {
			set_error(pl, err);
			break;
		}
	}
	if (w->z_ok)
		deflateEnd(&w->z);
	free(w->lz4_state);
	free(w->lzf);
	free(w->out);
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
	return budget < (256ull << 20) ? 256ull << 20 : budget;
}

static uint8_t *prealloc_pool, *prealloc_map;
static size_t prealloc_bytes, prealloc_map_len;

/*
 * Before the freeze: make the memory the pages will be read into exist, sized from
 * smaps_rollup (Rss + Swap). First touch of fresh memory (page allocation, zeroing; much
 * slower still in some VMs) is the slowest part of reading; done here it stays out of the
 * freeze. MADV_POPULATE_WRITE faults it in bulk; transparent huge pages are kept off (their
 * allocation stalls cost more than they save).
 * Codec NONE: the memory is the image file itself (fallocate + shared mapping), so pages go
 * from the target to the page cache in one copy. Other codecs: an anonymous buffer.
 */
void pages_prealloc(struct capture *c, struct image *im)
{
	char path[64], *r = NULL;
	unsigned long long rss = 0, swap = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", c->pid);
	if (read_file(path, &r, NULL) == 0) {
		proc_status_value(r, "Rss", 10, &rss);
		proc_status_value(r, "Swap", 10, &swap);
		free(r);
	}
	uint64_t want = (rss + swap) * 1024;
	if (c->codec == CKIMG_CODEC_NONE) {
		/* + one header page per 1 MiB chunk + room for the metadata records */
		want += want / 256 + (4u << 20);
		want = (want + CHUNK_BYTES - 1) & ~(uint64_t)(CHUNK_BYTES - 1);
		if (fallocate(im->fd, 0, 0, (off_t)want) < 0 && ftruncate(im->fd, (off_t)want) < 0)
			return;
		void *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_SHARED, im->fd, 0);
		if (p == MAP_FAILED)
			return;
		madvise(p, want, MADV_NOHUGEPAGE);
#ifdef MADV_POPULATE_WRITE
		madvise(p, want, MADV_POPULATE_WRITE);
#endif
		prealloc_map = p;
		prealloc_map_len = want;
		return;
	}
	uint64_t budget = memory_budget();
	want += 4u << 20;
	if (want > budget)
		want = budget;
	want = (want + CHUNK_BYTES - 1) & ~(uint64_t)(CHUNK_BYTES - 1);
	void *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return;
	madvise(p, want, MADV_NOHUGEPAGE);
#ifdef MADV_POPULATE_WRITE
	madvise(p, want, MADV_POPULATE_WRITE);
#endif
	prealloc_pool = p;
	prealloc_bytes = want;
}

/* Direct mode layout: after the metadata records, one region per chunk (header page + data). */
static int setup_direct(struct pipeline *pl)
{
	struct capture *c = pl->c;
	uint64_t at = (pl->im->off + PAGE_SIZE_4K - 1) & ~(uint64_t)(PAGE_SIZE_4K - 1);

	pl->region = calloc(pl->n + 1, sizeof(*pl->region));
	if (!pl->region)
		return -ENOMEM;
	for (size_t i = 0; i < pl->n; i++) {
		pl->region[i] = at;
		at += PAGE_SIZE_4K + (uint64_t)c->chunks[i].cand_pages * PAGE_SIZE_4K;
	}
	pl->region[pl->n] = at;
	pl->map = prealloc_map;
	pl->map_len = prealloc_map_len;
	prealloc_map = NULL;
	prealloc_map_len = 0;
	if (at > pl->map_len) {
		/* more than smaps_rollup promised: grow (the new part faults in while reading) */
		if (fallocate(pl->im->fd, 0, 0, (off_t)at) < 0 && ftruncate(pl->im->fd, (off_t)at) < 0)
			return cap_fail(-errno, "extend image");
		void *p = pl->map ? mremap(pl->map, pl->map_len, at, MREMAP_MAYMOVE)
				  : mmap(NULL, at, PROT_READ | PROT_WRITE, MAP_SHARED, pl->im->fd, 0);
		if (p == MAP_FAILED)
			return cap_fail(-errno, "map image");
		pl->map = p;
		pl->map_len = at;
	}
	pl->direct = 1;
	return 0;
}

/* The pool for the planned chunks: every chunk packed (compact) when memory allows, else a
 * ring of 1 MiB slots, and the target stays frozen until the writers have drained it. */
static int setup_pool(struct pipeline *pl)
{
	struct capture *c = pl->c;
	uint64_t budget = memory_budget(), need = c->cand_bytes;

	if (c->codec == CKIMG_CODEC_NONE && prealloc_map)
		return setup_direct(pl);
	pl->pool = prealloc_pool;
	pl->pool_bytes = prealloc_bytes;
	prealloc_pool = NULL;
	prealloc_bytes = 0;
	if (need > budget) {
		pl->ring = 1;
		need = budget & ~(uint64_t)(CHUNK_BYTES - 1);
	}
	if (need > pl->pool_bytes) {
		void *p = pl->pool ? mremap(pl->pool, pl->pool_bytes, need, MREMAP_MAYMOVE)
				   : mmap(NULL, need, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return cap_fail(-errno, "allocate %llu MiB page buffer", (unsigned long long)(need >> 20));
		pl->pool = p;
		pl->pool_bytes = need;
	}
	if (pl->ring) {
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
	pl->mem_fd = -1;
	pthread_mutex_init(&pl->mu, NULL);
	pthread_cond_init(&pl->cv, NULL);
	pl->bad = calloc(pl->n ? pl->n : 1, sizeof(*pl->bad));
	pl->written = calloc(pl->n ? pl->n : 1, 1);
	if (!pl->bad || !pl->written)
		return -ENOMEM;
	err = setup_pool(pl);
	if (err)
		return err;
	snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
	pl->mem_fd = open(path, O_RDONLY | O_CLOEXEC);

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nth = ncpu < 1 ? 1 : ncpu > MAX_WORKERS ? MAX_WORKERS : (int)ncpu;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);  /* signals go to the main thread only */
	for (int t = 0; t < nth; t++) {
		struct worker *w = calloc(1, sizeof(*w));
		if (!w) {
			err = -ENOMEM;
			break;
		}
		w->pl = pl;
		w->out_cap = (size_t)LZ4_compressBound(CHUNK_BYTES) + 4096;
		w->out = malloc(w->out_cap);
		w->lz4_state = malloc((size_t)LZ4_sizeofState());
		w->lzf = calloc(1, sizeof(*w->lzf));
		if (deflateInit2(&w->z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK)
			w->z_ok = 1;
		if (!w->out || !w->lz4_state || !w->lzf ||
		    pthread_create(&pl->th[t], NULL, worker_main, w) != 0) {
			if (w->z_ok)
				deflateEnd(&w->z);
			free(w->out);
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
			pl->err = cap_fail(-EINTR, "interrupted");
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
	if (pl->direct) {
		if (!err && pl->region[pl->n] > pl->im->off)
			pl->im->off = pl->region[pl->n];   /* next records after the last region */
		munmap(pl->map, pl->map_len);
	}
	pl->c->stored_pages = pl->stored_pages;
	pl->c->stored_bytes = pl->stored_bytes;
	if (pl->pool)
		munmap(pl->pool, pl->pool_bytes);
	if (pl->mem_fd >= 0)
		close(pl->mem_fd);
	free(pl->bad);
	free(pl->written);
	free(pl->buf_off);
	free(pl->region);
	free(pl);
	return err;
}
