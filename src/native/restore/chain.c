/*
 * Incremental images (FORMAT.md "Incremental images") for restore: an image with a PARENT
 * record holds the pages its PAGE_DIGESTS list; those its own PAGES do not store come from
 * the nearest image of its chain that stores them. img_chain_open() opens the chain (the
 * PARENT path hint, relative to the image's directory, then the hint's base name there),
 * checks each parent is the image PARENT names (image_id, pid, start time), refuses loops and
 * over-long chains, and appends to img->chunks one derived chunk per ancestor chunk that
 * supplies pages: a copy of that chunk (read from the ancestor: c->src) with a mask of the
 * pages to write (c->take). The page fill then writes them like any chunk; the child's own
 * chunks and the derived ones never write the same page.
 */
#include <errno.h>
#include <stdarg.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32.h"
#include "image.h"

struct held_cell {
	struct ckimg_page_digests_fixed f;
	uint8_t *bitmap;
	uint32_t seq;
};

struct img_chain {
	int have_parent;
	struct ckimg_parent_fixed parent;
	char *hint;
	struct held_cell *cells;
	size_t ncells, cap;
	struct img *up;                /* the opened parent */
	char *up_path;
	uint32_t depth_seen;           /* images above this one while opening (loop guard) */
};

static int cfail(struct img *img, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfail(struct img *img, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(img->err, sizeof(img->err), fmt, ap);
	va_end(ap);
	return err;
}

static struct img_chain *chain_of(struct img *img)
{
	if (!img->chain)
		img->chain = calloc(1, sizeof(*img->chain));
	return img->chain;
}

int img_chain_record(struct img *img, uint16_t type, const uint8_t *pl, uint64_t len, uint32_t seq, uint64_t off)
{
	struct img_chain *ch = chain_of(img);
	if (!ch)
		return -ENOMEM;
	if (type == CKIMG_REC_PARENT) {
		uint32_t hl;
		if (ch->have_parent)
			return cfail(img, -EBADMSG, "DUPLICATE_RECORD: second PARENT record #%u at offset %llu", seq,
				     (unsigned long long)off);
		if (len < sizeof(ch->parent) + 4)
			return cfail(img, -EBADMSG, "BAD_FIELD: PARENT record #%u at offset %llu is too short", seq,
				     (unsigned long long)off);
		memcpy(&ch->parent, pl, sizeof(ch->parent));
		if (ch->parent.fixed_size < sizeof(ch->parent) || (uint64_t)ch->parent.fixed_size + 4 > len ||
		    ch->parent.depth < 1 || ch->parent.depth > CKIMG_MAX_CHAIN_DEPTH)
			return cfail(img, -EBADMSG, "BAD_FIELD: PARENT record #%u at offset %llu: fixed_size %u, depth %u",
				     seq, (unsigned long long)off, ch->parent.fixed_size, ch->parent.depth);
		memcpy(&hl, pl + ch->parent.fixed_size, 4);
		if (!hl || hl > len - ch->parent.fixed_size - 4 || hl >= PATH_MAX)
			return cfail(img, -EBADMSG, "BAD_FIELD: PARENT record #%u at offset %llu: path hint of %u bytes",
				     seq, (unsigned long long)off, hl);
		ch->hint = strndup((const char *)pl + ch->parent.fixed_size + 4, hl);
		if (!ch->hint)
			return -ENOMEM;
		ch->have_parent = 1;
		return 0;
	}
	struct ckimg_page_digests_fixed f;
	if (len < sizeof(f))
		return cfail(img, -EBADMSG, "BAD_FIELD: PAGE_DIGESTS record #%u at offset %llu is too short", seq,
			     (unsigned long long)off);
	memcpy(&f, pl, sizeof(f));
	uint64_t bm = ((uint64_t)f.span_pages + 7) / 8, bm8 = (bm + 7) & ~7ull;
	if (f.fixed_size < sizeof(f) || f.span_pages < 1 || f.span_pages > CKIMG_MAX_SPAN_PAGES ||
	    f.digest_kind != CKIMG_DIGEST_CRC_ADLER || f.fixed_size + bm8 + (uint64_t)f.held_pages * 8 != len ||
	    f.first_page % img->page_size)
		return cfail(img, -EBADMSG, "BAD_FIELD: PAGE_DIGESTS record #%u at offset %llu has inconsistent sizes",
			     seq, (unsigned long long)off);
	uint64_t n = 0;
	for (uint64_t i = 0; i < bm; i++)
		n += (uint64_t)__builtin_popcount(pl[f.fixed_size + i]);
	if (n != f.held_pages || ((f.span_pages & 7) && (pl[f.fixed_size + bm - 1] >> (f.span_pages & 7))))
		return cfail(img, -EBADMSG, "BAD_FIELD: PAGE_DIGESTS record #%u at offset %llu: bitmap disagrees with held_pages",
			     seq, (unsigned long long)off);
	if (ch->ncells == ch->cap) {
		ch->cap = ch->cap ? ch->cap * 2 : 64;
		void *nc = realloc(ch->cells, ch->cap * sizeof(*ch->cells));
		if (!nc)
			return -ENOMEM;
		ch->cells = nc;
	}
	struct held_cell *c = &ch->cells[ch->ncells];
	c->f = f;
	c->seq = seq;
	c->bitmap = malloc(bm);
	if (!c->bitmap)
		return -ENOMEM;
	memcpy(c->bitmap, pl + f.fixed_size, bm);
	ch->ncells++;
	return 0;
}

static inline int bit(const uint8_t *b, uint64_t i)
{
	return (b[i / 8] >> (i % 8)) & 1;
}

/* Chunks of one image sorted by address (own chunks only), for lookups by page. */
struct by_addr {
	const struct img *img;
	size_t *idx, n;
};

static const struct img *sort_img;
static int cmp_by_addr(const void *a, const void *b)
{
	uint64_t x = sort_img->chunks[*(const size_t *)a].first_page, y = sort_img->chunks[*(const size_t *)b].first_page;
	return x < y ? -1 : x > y;
}

static int index_chunks(struct by_addr *ix, const struct img *img, size_t own)
{
	ix->img = img;
	ix->n = own;
	ix->idx = malloc((own + 1) * sizeof(*ix->idx));
	if (!ix->idx)
		return -ENOMEM;
	for (size_t i = 0; i < own; i++)
		ix->idx[i] = i;
	sort_img = img;
	qsort(ix->idx, own, sizeof(*ix->idx), cmp_by_addr);
	return 0;
}

/* The chunk whose span holds addr, or -1. */
static long chunk_at(const struct by_addr *ix, uint64_t addr)
{
	size_t lo = 0, hi = ix->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct img_chunk *c = &ix->img->chunks[ix->idx[mid]];
		if (addr < c->first_page)
			hi = mid;
		else if (addr >= c->first_page + (uint64_t)c->span_pages * ix->img->page_size)
			lo = mid + 1;
		else
			return (long)ix->idx[mid];
	}
	return -1;
}

static int cmp_cell(const void *a, const void *b)
{
	uint64_t x = ((const struct held_cell *)a)->f.first_page, y = ((const struct held_cell *)b)->f.first_page;
	return x < y ? -1 : x > y;
}

/* Does img hold the page at addr (its PAGE_DIGESTS, sorted by img_chain_open)? */
static int holds(const struct img *img, uint64_t addr)
{
	const struct img_chain *ch = img->chain;
	size_t lo = 0, hi = ch ? ch->ncells : 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct held_cell *c = &ch->cells[mid];
		if (addr < c->f.first_page)
			hi = mid;
		else if (addr >= c->f.first_page + (uint64_t)c->f.span_pages * img->page_size)
			lo = mid + 1;
		else
			return bit(c->bitmap, (addr - c->f.first_page) / img->page_size);
	}
	return 0;
}

static void hexid(const uint8_t id[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* Open img's parent (not its chain yet): hint, then the hint's base name next to img. */
static int open_parent(struct img *img, const char *const *seen_ids, uint32_t nseen)
{
	struct img_chain *ch = img->chain;
	char dir[PATH_MAX], cand[2][PATH_MAX * 2], want[33], got[33];
	char *d = strdup(img->path), *h = strdup(ch->hint);
	int err = -ENOENT;

	if (!d || !h) {
		free(d);
		free(h);
		return -ENOMEM;
	}
	snprintf(dir, sizeof(dir), "%s", dirname(d));
	if (ch->hint[0] == '/')
		snprintf(cand[0], sizeof(cand[0]), "%s", ch->hint);
	else
		snprintf(cand[0], sizeof(cand[0]), "%s/%s", dir, ch->hint);
	snprintf(cand[1], sizeof(cand[1]), "%s/%s", dir, basename(h));
	free(d);
	free(h);
	hexid(ch->parent.parent_image_id, want);
	for (uint32_t i = 0; i < nseen; i++)
		if (!memcmp(seen_ids[i], ch->parent.parent_image_id, 16))
			return cfail(img, -EBADMSG, "BAD_PARENT: the chain loops: parent image %s is already part of it", want);
	if (!memcmp(img->hdr.image_id, ch->parent.parent_image_id, 16))
		return cfail(img, -EBADMSG, "BAD_PARENT: the image names itself as its parent");
	err = 0;
	for (int k = 0; k < 2; k++) {
		struct stat st;
		if (k == 1 && !strcmp(cand[0], cand[1]))
			break;
		if (stat(cand[k], &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		struct img *up = calloc(1, sizeof(*up));
		char *path = strdup(cand[k]);
		if (!up || !path) {
			free(up);
			free(path);
			return -ENOMEM;
		}
		int e = img_open(up, path);
		if (!e && up->tree && up->proc.f.pid != ch->parent.parent_pid) {
			/* a tree image: the process PARENT names (FORMAT.md "Incremental images", trees) */
			img_close(up);
			e = img_open_process(up, path, ch->parent.parent_pid);
			if (e == -ESRCH) {
				img_close(up);
				free(up);
				free(path);
				return cfail(img, -EBADMSG, "BAD_PARENT: wrong parent: %s is a capture of another process tree "
					     "(it holds no process %u)", cand[k], ch->parent.parent_pid);
			}
		}
		if (e) {
			int r = cfail(img, e, "parent %s: %s", path, up->err);
			img_close(up);
			free(up);
			free(path);
			return r;
		}
		hexid(up->hdr.image_id, got);
		if (memcmp(up->hdr.image_id, ch->parent.parent_image_id, 16))
			err = cfail(img, -EBADMSG, "BAD_PARENT: wrong parent: %s has image_id %s, PARENT names %s", path, got, want);
		else if (up->proc.f.pid != ch->parent.parent_pid || up->proc.f.start_time != ch->parent.parent_start_time ||
			 up->proc.f.pid != img->proc.f.pid || up->proc.f.start_time != img->proc.f.start_time)
			err = cfail(img, -EBADMSG, "BAD_PARENT: wrong parent: %s is a capture of another process (pid %u)",
				    path, up->proc.f.pid);
		else {
			ch->up = up;
			ch->up_path = path;
			return 0;
		}
		img_close(up);
		free(up);
		free(path);
	}
	if (err)
		return err;
	return cfail(img, -ENOENT, "MISSING_PARENT: parent image %s not found (looked for %s%s%s)", want, cand[0],
		     strcmp(cand[0], cand[1]) ? ", " : "", strcmp(cand[0], cand[1]) ? cand[1] : "");
}

/* Derived chunk: a copy of ancestor chunk `ci` writing only the pages in its take mask. */
static int derive(struct img *img, size_t *cap, struct img *src, long ci, int area_idx, uint64_t page, long *slot)
{
	const struct img_chunk *sc = &src->chunks[ci];
	size_t bm = (sc->span_pages + 7) / 8;
	if (*slot < 0) {
		if (img->nchunks == *cap) {
			*cap = *cap ? *cap * 2 : img->nchunks + 64;
			void *n = realloc(img->chunks, *cap * sizeof(*img->chunks));
			if (!n)
				return -ENOMEM;
			img->chunks = n;
		}
		struct img_chunk *d = &img->chunks[img->nchunks];
		*d = *sc;
		d->src = src;
		d->area_idx = area_idx;
		d->bitmap = malloc(bm);
		d->take = calloc(bm, 1);
		if (!d->bitmap || !d->take) {
			free(d->bitmap);
			free(d->take);
			return -ENOMEM;
		}
		memcpy(d->bitmap, sc->bitmap, bm);
		*slot = (long)img->nchunks++;
	}
	struct img_chunk *d = &img->chunks[*slot];
	uint64_t k = (page - d->first_page) / img->page_size;
	d->take[k / 8] |= (uint8_t)(1u << (k % 8));
	d->take_pages++;
	return 0;
}

int img_chain_open(struct img *img)
{
	const char *seen[CKIMG_MAX_CHAIN_DEPTH];
	struct img *imgs[CKIMG_MAX_CHAIN_DEPTH];
	size_t own[CKIMG_MAX_CHAIN_DEPTH], n = 0, cap = img->nchunks;
	long **slot = NULL;
	struct by_addr ix[CKIMG_MAX_CHAIN_DEPTH];
	int err = 0;

	if (!img->chain || !img->chain->have_parent)
		return 0;
	/* Open the chain upwards, checking every link. */
	for (struct img *cur = img; cur; cur = cur->chain && cur->chain->have_parent ? cur->chain->up : NULL) {
		if (n >= CKIMG_MAX_CHAIN_DEPTH)
			return cfail(img, -EBADMSG, "BAD_PARENT: chain longer than %d images", CKIMG_MAX_CHAIN_DEPTH);
		imgs[n] = cur;
		own[n] = cur->nchunks;
		if (cur->chain)
			qsort(cur->chain->cells, cur->chain->ncells, sizeof(*cur->chain->cells), cmp_cell);
		seen[n++] = (const char *)cur->hdr.image_id;
		if (cur->chain && cur->chain->have_parent) {
			err = open_parent(cur, seen, (uint32_t)n);
			if (err) {
				if (cur != img)
					snprintf(img->err, sizeof(img->err), "%s", cur->err);
				return err;
			}
			img_map(cur->chain->up);
		}
	}
	/* Per held page of img not stored by img: the nearest ancestor that stores it. */
	slot = calloc(n, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	memset(ix, 0, sizeof(*ix) * n);
	for (size_t k = 0; k < n; k++)
		if (index_chunks(&ix[k], imgs[k], own[k])) {
			err = -ENOMEM;
			goto out;
		}
	for (size_t k = 1; k < n; k++) {
		slot[k] = malloc((own[k] + 1) * sizeof(long));
		if (!slot[k]) {
			err = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < own[k]; i++)
			slot[k][i] = -1;
	}
	const struct img_chain *ch = img->chain;
	for (size_t ci = 0; !err && ci < ch->ncells; ci++) {
		const struct held_cell *hc = &ch->cells[ci];
		int ai = img_area_by_id(img, hc->f.area_id);
		if (ai < 0 || hc->f.first_page < img->areas[ai].f.start ||
		    hc->f.first_page + (uint64_t)hc->f.span_pages * img->page_size > img->areas[ai].f.end) {
			err = cfail(img, -EBADMSG, "BAD_FIELD: PAGE_DIGESTS record #%u: span outside its AREA %u", hc->seq,
				    hc->f.area_id);
			break;
		}
		for (uint64_t p = 0; !err && p < hc->f.span_pages; p++) {
			if (!bit(hc->bitmap, p))
				continue;
			uint64_t addr = hc->f.first_page + p * img->page_size;
			long mine = chunk_at(&ix[0], addr);
			if (mine >= 0 && bit(img->chunks[mine].bitmap, (addr - img->chunks[mine].first_page) / img->page_size))
				continue;                  /* stored here */
			size_t k = 1;
			for (; k < n; k++) {
				long sc = chunk_at(&ix[k], addr);
				if (sc >= 0) {
					const struct img_chunk *c = &imgs[k]->chunks[sc];
					if (bit(c->bitmap, (addr - c->first_page) / img->page_size)) {
						err = derive(img, &cap, imgs[k], sc, ai, addr, &slot[k][sc]);
						break;
					}
				}
				if (!holds(imgs[k], addr) || !imgs[k]->chain || !imgs[k]->chain->have_parent) {
					k = n;
					break;
				}
			}
			if (!err && k >= n)
				err = cfail(img, -EBADMSG, "BAD_PARENT: page %llx is inherited (PAGE_DIGESTS record #%u) but "
					    "no image of the chain stores it", (unsigned long long)addr, hc->seq);
		}
		if (!err)
			img->areas[ai].has_pages = 1;
	}
out:
	for (size_t k = 0; k < n; k++) {
		free(ix[k].idx);
		free(slot[k]);
	}
	free(slot);
	return err;
}

void img_chain_free(struct img *img)
{
	struct img_chain *ch = img->chain;
	if (!ch)
		return;
	for (size_t i = 0; i < img->nchunks; i++)
		free(img->chunks[i].take);
	for (size_t i = 0; i < ch->ncells; i++)
		free(ch->cells[i].bitmap);
	free(ch->cells);
	free(ch->hint);
	if (ch->up) {
		img_close(ch->up);
		free(ch->up);
		free(ch->up_path);
	}
	free(ch);
	img->chain = NULL;
}

/*
 * A tree image: the chain of every other live process that has a PARENT, opened and checked
 * now (then closed again), so that a bad link is refused before anything is made or printed.
 */
int img_chain_check_tree(struct img *img)
{
	for (uint32_t i = 0; img->tree && i < img->ntree; i++) {
		uint32_t pid = img->tree[i].pid;
		int has_parent = 0;
		if (pid == img->tree_root || (img->tree[i].flags & CKIMG_TREE_ZOMBIE))
			continue;
		for (uint64_t k = 0; k < img->nents && !has_parent; k++)
			has_parent = img->ents[k].type == CKIMG_REC_PARENT && img->owners[k] == pid;
		if (!has_parent)
			continue;
		if (!img->chain || !img->chain->have_parent)
			return cfail(img, -EBADMSG, "BAD_PARENT: process %u has a PARENT and the root process %u none "
				     "(an incremental image continues one tree)", pid, img->tree_root);
		struct img p;
		int err = img_open_process(&p, img->path, pid);
		if (!err && p.chain && p.chain->have_parent &&
		    memcmp(p.chain->parent.parent_image_id, img->chain->parent.parent_image_id, 16))
			err = cfail(&p, -EBADMSG, "BAD_PARENT: the processes of the tree name different parent images");
		if (!err)
			err = img_chain_open(&p);
		if (err)
			cfail(img, err, "%s (process %u)", p.err, pid);
		img_close(&p);
		if (err)
			return err;
	}
	return 0;
}
