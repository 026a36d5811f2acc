/*
 * Incremental images (FORMAT.md "Incremental images"): every image carries PAGE_DIGESTS, the
 * pages it holds with a (CRC-32, Adler-32) digest each; `--parent A.img` reads A's digests
 * (its index and those records only, no page data) and stores in the new image only the pages
 * whose digest differs from A's, or that A does not hold. Pages A holds and the new image
 * holds with the same digest are inherited: the reader takes them from A (or A's parents).
 *
 * Why digests and not chunk CRCs alone: a chunk covers 256 pages, and a process that writes
 * 1% of its pages scattered touches nearly every chunk; per-page digests keep the image at
 * what changed. Why two 32-bit sums: CRC-32 catches every change of up to 32 bits (a counter)
 * and random changes with 2^-32; Adler-32 is computed differently (not linear in GF(2)), so
 * a change both miss is ~2^-64 for random data. Both run at memory speed (libdeflate) and a
 * TypeScript reader has CRC-32 natively and Adler-32 in a few lines.
 *
 * The parent must be a capture of the same process: same pid and start time (checked before
 * the freeze), and its image_id goes into the PARENT record the reader checks the chain by.
 */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "crc32.h"

struct parent_cell {
	uint64_t first_page;
	uint32_t span, nheld;
	const uint8_t *bitmap;         /* into payloads */
	const uint32_t *dig;           /* 2 per held page */
	uint32_t *rank;                /* held pages before each 64-page word */
};

struct parent_image {
	uint8_t image_id[16];
	uint64_t created_ns, start_time;
	uint32_t pid, depth;
	char *hint;
	struct parent_cell *cells;     /* sorted by first_page, non-overlapping */
	size_t ncells;
	uint8_t **payloads;
	size_t npayloads;
	uint8_t *span;                 /* the PAGE_DIGESTS records, read at once (cap_alloc_buf) */
	size_t span_len;
};

struct digest_cell {
	uint64_t bits[CKIMG_SPAN_GRID_PAGES / 64];
	uint32_t nheld;
	const uint32_t *dig;           /* its place in the arena, or the parent's (the cell carried whole) */
	uint32_t *place;               /* its place in the arena (incr_alloc_cells) */
};

static uint32_t zero_crc, zero_adler;
static unsigned long crc_op_page;  /* crc32_combine_op operator for one page */

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* One record of the parent, whole and checked (header magic/CRC, type, payload CRC). */
static int read_parent_record(const char *path, int fd, uint64_t size, const struct ckimg_index_entry *e,
			      uint8_t **out)
{
	struct ckimg_record_header rh;
	*out = NULL;
	if (e->payload_length > CKIMG_MAX_METADATA_PAYLOAD ||
	    e->offset + CKIMG_RECORD_HDR_SIZE + e->payload_length > size)
		return cap_fail(-EBADMSG, "parent %s: record at offset %llu is larger than the file allows", path,
				(unsigned long long)e->offset);
	int err = pread_full(fd, &rh, sizeof(rh), e->offset);
	if (err)
		return cap_fail(err, "parent %s: read at offset %llu", path, (unsigned long long)e->offset);
	if (memcmp(rh.magic, CKIMG_RECORD_MAGIC, 4) || rh.header_crc != ck_crc32(0, &rh, 28) ||
	    rh.type != e->type || rh.payload_length != e->payload_length)
		return cap_fail(-EBADMSG, "parent %s: damaged record header at offset %llu", path,
				(unsigned long long)e->offset);
	uint8_t *p = malloc(e->payload_length ? e->payload_length : 1);
	if (!p)
		return -ENOMEM;
	err = pread_full(fd, p, e->payload_length, e->offset + CKIMG_RECORD_HDR_SIZE);
	if (!err && ck_crc32(0, p, e->payload_length) != rh.payload_crc)
		err = cap_fail(-EBADMSG, "parent %s: payload checksum mismatch at offset %llu", path,
			       (unsigned long long)e->offset);
	if (err) {
		free(p);
		return err;
	}
	*out = p;
	return 0;
}

/* One record of the parent from the buffer holding bytes [base, base + len) of the file:
 * checked as read_parent_record does; *out points into the buffer. */
static int parent_record_in(const char *path, const uint8_t *buf, uint64_t base, uint64_t len,
			    const struct ckimg_index_entry *e, const uint8_t **out)
{
	struct ckimg_record_header rh;
	if (e->payload_length > CKIMG_MAX_METADATA_PAYLOAD || e->offset < base ||
	    e->offset - base + CKIMG_RECORD_HDR_SIZE + e->payload_length > len)
		return cap_fail(-EBADMSG, "parent %s: record at offset %llu is larger than the file allows", path,
				(unsigned long long)e->offset);
	const uint8_t *r = buf + (e->offset - base);
	memcpy(&rh, r, sizeof(rh));
	if (memcmp(rh.magic, CKIMG_RECORD_MAGIC, 4) || rh.header_crc != ck_crc32(0, &rh, 28) ||
	    rh.type != e->type || rh.payload_length != e->payload_length)
		return cap_fail(-EBADMSG, "parent %s: damaged record header at offset %llu", path,
				(unsigned long long)e->offset);
	if (ck_crc32(0, r + CKIMG_RECORD_HDR_SIZE, e->payload_length) != rh.payload_crc)
		return cap_fail(-EBADMSG, "parent %s: payload checksum mismatch at offset %llu", path,
				(unsigned long long)e->offset);
	*out = r + CKIMG_RECORD_HDR_SIZE;
	return 0;
}

static int add_cell(struct parent_image *pi, size_t *cap, const char *path, const uint8_t *p, uint64_t len,
		    uint64_t off)
{
	struct ckimg_page_digests_fixed f;
	if (len < sizeof(f))
		return cap_fail(-EBADMSG, "parent %s: PAGE_DIGESTS at offset %llu is too short", path, (unsigned long long)off);
	memcpy(&f, p, sizeof(f));
	uint64_t bm = (f.span_pages + 7) / 8, bm8 = (bm + 7) & ~7ull;
	if (f.fixed_size < sizeof(f) || f.span_pages < 1 || f.span_pages > CKIMG_MAX_SPAN_PAGES ||
	    f.digest_kind != CKIMG_DIGEST_CRC_ADLER || f.first_page % PAGE_SIZE_4K ||
	    f.fixed_size + bm8 + (uint64_t)f.held_pages * 8 != len)
		return cap_fail(-EBADMSG, "parent %s: PAGE_DIGESTS at offset %llu has inconsistent sizes", path,
				(unsigned long long)off);
	const uint8_t *bitmap = p + f.fixed_size;
	uint32_t words = (f.span_pages + 63) / 64, n = 0;
	uint32_t *rank = malloc(((size_t)words + 1) * sizeof(*rank));
	if (!rank)
		return -ENOMEM;
	for (uint32_t w = 0; w < words; w++) {
		uint64_t v = 0;
		memcpy(&v, bitmap + (size_t)w * 8, (size_t)w * 8 + 8 <= bm ? 8 : bm - (size_t)w * 8);
		if (w == words - 1 && f.span_pages % 64)
			v &= (1ull << (f.span_pages % 64)) - 1;
		rank[w] = n;
		n += (uint32_t)__builtin_popcountll(v);
	}
	rank[words] = n;
	if (n != f.held_pages) {
		free(rank);
		return cap_fail(-EBADMSG, "parent %s: PAGE_DIGESTS at offset %llu: bitmap holds %u pages, held_pages %u",
				path, (unsigned long long)off, n, f.held_pages);
	}
	if (pi->ncells == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		struct parent_cell *nc = realloc(pi->cells, *cap * sizeof(*nc));
		if (!nc) {
			free(rank);
			return -ENOMEM;
		}
		pi->cells = nc;
	}
	pi->cells[pi->ncells++] = (struct parent_cell){
		.first_page = f.first_page, .span = f.span_pages, .nheld = f.held_pages, .bitmap = bitmap,
		.dig = (const uint32_t *)(p + f.fixed_size + bm8), .rank = rank,
	};
	return 0;
}

static int cmp_cell(const void *a, const void *b)
{
	const struct parent_cell *x = a, *y = b;
	return x->first_page < y->first_page ? -1 : x->first_page > y->first_page;
}

/* The hint the child records: the parent's name when both live in one directory (a chain can
 * then be moved as a whole), else its absolute path. */
static char *path_hint(const char *parent, const char *child)
{
	char rp[PATH_MAX], pd[PATH_MAX], cd[PATH_MAX];
	char *a = strdup(parent), *b = strdup(child), *out = NULL;
	if (a && b && realpath(parent, rp) && realpath(dirname(a), pd) && realpath(dirname(b), cd)) {
		free(a);
		a = strdup(rp);
		out = strdup(!strcmp(pd, cd) && a ? basename(a) : rp);
	}
	free(a);
	free(b);
	return out ? out : strdup(parent);
}

/*
 * The records of process `pid` in the parent image at path (PROCESS, PARENT, PAGE_DIGESTS):
 * a tree image's records of that owner, a single-process image's all. *found: the image holds
 * that process live; *tree_root: the parent's TREE root pid (0: no TREE).
 */
static int load_parent_proc(const char *path, pid_t pid, struct parent_image *pi, int *found, uint32_t *tree_root)
{
	struct ckimg_header h;
	struct ckimg_trailer t;
	struct stat st;
	uint8_t *index = NULL;
	size_t cap = 0;
	int err = 0, have_process = 0;

	*found = 0;
	*tree_root = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cap_fail(-errno, "parent %s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = cap_fail(-EINVAL, "parent %s: not a regular file", path);
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (size < sizeof(h) + sizeof(t) + CKIMG_RECORD_HDR_SIZE ||
	    pread_full(fd, &h, sizeof(h), 0) || pread_full(fd, &t, sizeof(t), size - sizeof(t))) {
		err = cap_fail(-EBADMSG, "parent %s: not a ckimg image (too short)", path);
		goto out;
	}
	if (memcmp(h.magic, CKIMG_MAGIC, 8) || h.header_crc != ck_crc32(0, &h, 60) || h.version_major != 1) {
		err = cap_fail(-EBADMSG, "parent %s: not a ckimg 1.x image (bad header)", path);
		goto out;
	}
	if (memcmp(t.magic, CKIMG_TRAILER_MAGIC, 8) || t.trailer_crc != ck_crc32(0, &t, 28) ||
	    t.index_offset < h.header_size || t.index_offset + CKIMG_RECORD_HDR_SIZE + sizeof(struct ckimg_index_fixed) > size - sizeof(t)) {
		err = cap_fail(-EBADMSG, "parent %s: damaged trailer (verify it)", path);
		goto out;
	}
	memcpy(pi->image_id, h.image_id, 16);
	pi->created_ns = h.created_ns;
	struct ckimg_index_entry ie = {
		.type = CKIMG_REC_INDEX, .offset = t.index_offset,
		.payload_length = size - sizeof(t) - t.index_offset - CKIMG_RECORD_HDR_SIZE,
	};
	err = read_parent_record(path, fd, size, &ie, &index);
	if (err)
		goto out;
	struct ckimg_index_fixed ix;
	memcpy(&ix, index, sizeof(ix));
	if (ix.fixed_size < sizeof(ix) || ix.entry_size < sizeof(struct ckimg_index_entry) ||
	    ix.entry_count > (ie.payload_length - ix.fixed_size) / ix.entry_size ||
	    ix.fixed_size + ix.entry_count * ix.entry_size != ie.payload_length) {
		err = cap_fail(-EBADMSG, "parent %s: damaged index", path);
		goto out;
	}
	/*
	 * The PAGE_DIGESTS records (8 bytes a page: 2 MiB for 1 GiB) lie together before the
	 * index (incr_put_digests writes them one after the other): read at once into huge pages
	 * when they do, instead of a pread and a fresh malloc each (a page fault per 4 KiB costs
	 * 11-17 us on the VM here). Either way each is checked (header, payload CRC).
	 */
	uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
	for (uint64_t i = 0; i < ix.entry_count; i++) {
		struct ckimg_index_entry e;
		memcpy(&e, index + ix.fixed_size + i * ix.entry_size, sizeof(e));
		if (e.type != CKIMG_REC_PAGE_DIGESTS || e.offset > size || e.payload_length > size)
			continue;
		lo = e.offset < lo ? e.offset : lo;
		hi = e.offset + CKIMG_RECORD_HDR_SIZE + e.payload_length > hi ? e.offset + CKIMG_RECORD_HDR_SIZE + e.payload_length : hi;
		sum += CKIMG_RECORD_HDR_SIZE + e.payload_length;
	}
	if (hi > lo && hi <= size && hi - lo <= sum + sum / 4 + 4096) {
		pi->span = cap_alloc_buf(hi - lo);
		if (pi->span && pread_full(fd, pi->span, hi - lo, lo) == 0) {
			pi->span_len = hi - lo;
		} else {
			cap_free_buf(pi->span, hi - lo);
			pi->span = NULL;
		}
	}
	/* A tree image (FORMAT.md "Process trees"): the owner of each entry at bytes 40..43. */
	for (uint64_t i = 0; !err && i < ix.entry_count; i++) {
		struct ckimg_index_entry e;
		memcpy(&e, index + ix.fixed_size + i * ix.entry_size, sizeof(e));
		if (e.type != CKIMG_REC_TREE)
			continue;
		uint8_t *p;
		if (ix.entry_size < sizeof(e) + 4) {
			err = cap_fail(-EBADMSG, "parent %s: a tree image with index entries of %u bytes", path, ix.entry_size);
			break;
		}
		err = read_parent_record(path, fd, size, &e, &p);
		if (err)
			break;
		struct ckimg_tree_fixed tf;
		if (e.payload_length < sizeof(tf)) {
			free(p);
			err = cap_fail(-EBADMSG, "parent %s: TREE record too short", path);
			break;
		}
		memcpy(&tf, p, sizeof(tf));
		free(p);
		*tree_root = tf.root_pid;
	}
	for (uint64_t i = 0; !err && i < ix.entry_count; i++) {
		struct ckimg_index_entry e;
		const uint8_t *ent = index + ix.fixed_size + i * ix.entry_size;
		memcpy(&e, ent, sizeof(e));
		if (e.type != CKIMG_REC_PROCESS && e.type != CKIMG_REC_PARENT && e.type != CKIMG_REC_PAGE_DIGESTS)
			continue;
		if (*tree_root) {
			uint32_t owner;
			memcpy(&owner, ent + sizeof(e), 4);
			if ((pid_t)owner != pid)
				continue;       /* another process's record */
		}
		const uint8_t *p = NULL;
		if (e.type == CKIMG_REC_PAGE_DIGESTS && pi->span) {
			err = parent_record_in(path, pi->span, lo, pi->span_len, &e, &p);
			if (!err)
				err = add_cell(pi, &cap, path, p, e.payload_length, e.offset);
			continue;
		}
		uint8_t *q;
		err = read_parent_record(path, fd, size, &e, &q);
		if (err)
			break;
		uint8_t **np = realloc(pi->payloads, (pi->npayloads + 1) * sizeof(*np));
		if (!np) {
			free(q);
			err = -ENOMEM;
			break;
		}
		pi->payloads = np;
		pi->payloads[pi->npayloads++] = q;
		p = q;
		if (e.type == CKIMG_REC_PROCESS) {
			struct ckimg_process_fixed pf;
			if (e.payload_length < sizeof(pf)) {
				err = cap_fail(-EBADMSG, "parent %s: PROCESS record too short", path);
				break;
			}
			memcpy(&pf, p, sizeof(pf));
			pi->pid = pf.pid;
			pi->start_time = pf.start_time;
			have_process = 1;
		} else if (e.type == CKIMG_REC_PARENT) {
			struct ckimg_parent_fixed pf;
			if (e.payload_length < sizeof(pf)) {
				err = cap_fail(-EBADMSG, "parent %s: PARENT record too short", path);
				break;
			}
			memcpy(&pf, p, sizeof(pf));
			pi->depth = pf.depth;
		} else {
			err = add_cell(pi, &cap, path, p, e.payload_length, e.offset);
		}
	}
	if (err)
		goto out;
	if (!have_process) {
		if (!*tree_root)
			err = cap_fail(-EBADMSG, "parent %s: no PROCESS record", path);
		goto out;               /* a tree without this process: *found stays 0 */
	}
	if ((pid_t)pi->pid != pid && *tree_root) {
		err = cap_fail(-EBADMSG, "parent %s: the records of process %d hold a PROCESS of pid %u", path, pid, pi->pid);
		goto out;
	}
	*found = (pid_t)pi->pid == pid;
	if (!pi->ncells && h.version_minor < 2) {
		err = cap_fail(-EINVAL, "parent %s: format %u.%u image without page digests; take a full capture first",
			       path, h.version_major, h.version_minor);
		goto out;
	}
	if (pi->depth + 1 >= CKIMG_MAX_CHAIN_DEPTH) {
		err = cap_fail(-EINVAL, "parent %s: chain of %u images is the longest allowed; take a full capture",
			       path, pi->depth + 1);
		goto out;
	}
	qsort(pi->cells, pi->ncells, sizeof(*pi->cells), cmp_cell);
	for (size_t i = 1; i < pi->ncells; i++)
		if (pi->cells[i].first_page < pi->cells[i - 1].first_page + (uint64_t)pi->cells[i - 1].span * PAGE_SIZE_4K) {
			err = cap_fail(-EBADMSG, "parent %s: overlapping PAGE_DIGESTS spans", path);
			goto out;
		}
out:
	free(index);
	close(fd);
	return err;
}

int incr_load_parent(struct capture *c)
{
	const char *path = c->parent_path;
	uint32_t tree_root = 0;
	int err, found = 0;

	zero_crc = ck_crc32(0, (const uint8_t[PAGE_SIZE_4K]){ 0 }, PAGE_SIZE_4K);
	zero_adler = libdeflate_adler32(1, (const uint8_t[PAGE_SIZE_4K]){ 0 }, PAGE_SIZE_4K);
	crc_op_page = crc32_combine_gen(PAGE_SIZE_4K);
	if (!path)
		return 0;
	struct parent_image *pi = calloc(1, sizeof(*pi));
	if (!pi)
		return -ENOMEM;
	c->parent = pi;
	err = load_parent_proc(path, c->pid, pi, &found, &tree_root);
	if (err)
		return err;
	c->parent_tree_root = tree_root;
	/* One tree continued: a tree capture's parent tree has the same root. */
	if (tree_root && (pid_t)tree_root != c->pid && !c->no_children)
		return cap_fail(-EINVAL, "parent %s is a capture of another process tree (its root is pid %u, this capture's is "
				"pid %d)", path, tree_root, c->pid);
	if (!found && tree_root)
		return cap_fail(-EINVAL, "parent %s is a capture of another process tree (it holds no process %d)", path, c->pid);
	/* Same process: pid and start time (a reused pid has another start time). */
	uint64_t live = 0;
	err = proc_start_time(c->pid, &live);
	if (err)
		return cap_fail(err, "process %d is gone", c->pid);
	if ((pid_t)pi->pid != c->pid || pi->start_time != live)
		return cap_fail(-EINVAL, "parent %s is a capture of another process%s (pid %u, start time %llu; "
				"this is pid %d, start time %llu)", path, tree_root ? " tree" : "", pi->pid,
				(unsigned long long)pi->start_time, c->pid, (unsigned long long)live);
	pi->hint = path_hint(path, c->out_path);
	if (!pi->hint)
		return -ENOMEM;
	return 0;
}

/*
 * A descendant of a tree capture (root: the capture of the tree's root, its parent loaded),
 * before it is frozen: the same process in the parent image (same pid and start time) is its
 * parent; none when the parent image does not hold it (forked since: stored whole).
 */
int incr_load_parent_of_child(const struct capture *root, struct capture *c)
{
	const struct parent_image *rp = root->parent;
	uint32_t tree_root = 0;
	uint64_t live = 0;
	int found = 0;

	if (!rp || !root->parent_tree_root)
		return 0;               /* a single-process parent: every child is new */
	struct parent_image *pi = calloc(1, sizeof(*pi));
	if (!pi)
		return -ENOMEM;
	int err = load_parent_proc(root->parent_path, c->pid, pi, &found, &tree_root);
	if (!err && found && memcmp(pi->image_id, rp->image_id, 16))
		err = cap_fail(-EINVAL, "parent %s changed during the capture", root->parent_path);
	if (!err && found && proc_start_time(c->pid, &live) == 0 && live == pi->start_time) {
		pi->hint = strdup(rp->hint);
		if (!pi->hint)
			err = -ENOMEM;
		else {
			c->parent = pi;
			c->parent_path = root->parent_path;
			c->parent_tree_root = tree_root;
			return 0;
		}
	}
	/* not in the parent image, or its pid reused since: a new process */
	c->parent = pi;
	incr_free(c);
	return err;
}

int incr_check_process(struct capture *c)
{
	const struct parent_image *pi = c->parent;
	if (pi && (pi->pid != c->proc.pid || pi->start_time != c->proc.start_time))
		return cap_fail(-EINVAL, "parent %s is a capture of another process", c->parent_path);
	return 0;
}

/* The parent cell holding addr (binary search), or NULL. */
static const struct parent_cell *cell_at(const struct parent_image *pi, uint64_t addr)
{
	size_t lo = 0, hi = pi->ncells;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct parent_cell *pc = &pi->cells[mid];
		if (addr < pc->first_page)
			hi = mid;
		else if (addr >= pc->first_page + (uint64_t)pc->span * PAGE_SIZE_4K)
			lo = mid + 1;
		else
			return pc;
	}
	return NULL;
}

static inline int cell_bit(const struct parent_cell *pc, uint32_t i)
{
	return (pc->bitmap[i / 8] >> (i % 8)) & 1;
}

/* The parent's digest of the page at addr: 1 and dig[2] when the parent holds it. *last: the
 * cell found by the previous call (pages are looked up in address order), or NULL. */
static int parent_digest_at(const struct parent_image *pi, const struct parent_cell **last, uint64_t addr,
			    uint32_t dig[2])
{
	const struct parent_cell *pc = *last;
	if (!pc || addr < pc->first_page || addr >= pc->first_page + (uint64_t)pc->span * PAGE_SIZE_4K)
		pc = *last = pi ? cell_at(pi, addr) : NULL;
	if (!pc)
		return 0;
	uint32_t i = (uint32_t)((addr - pc->first_page) / PAGE_SIZE_4K);
	if (!cell_bit(pc, i))
		return 0;
	uint64_t w = 0;
	size_t bm = (pc->span + 7) / 8, at = (size_t)(i / 64) * 8;
	memcpy(&w, pc->bitmap + at, at + 8 <= bm ? 8 : bm - at);
	uint32_t k = pc->rank[i / 64] + (uint32_t)__builtin_popcountll(w & ((1ull << (i % 64)) - 1));
	memcpy(dig, pc->dig + 2 * (size_t)k, 8);     /* (the parent's buffer: maybe unaligned) */
	return 1;
}

static int parent_digest(const struct parent_image *pi, uint64_t addr, uint32_t dig[2])
{
	const struct parent_cell *pc = NULL;
	return parent_digest_at(pi, &pc, addr, dig);
}

int incr_parent_holds(const struct capture *c, uint64_t addr)
{
	uint32_t d[2];
	return parent_digest(c->parent, addr, d);
}

int incr_parent_holds_range(const struct capture *c, uint64_t start, uint64_t end)
{
	const struct parent_image *pi = c->parent;
	if (!pi)
		return 0;
	for (size_t k = 0; k < pi->ncells; k++) {       /* areas are few: a scan is fine */
		const struct parent_cell *pc = &pi->cells[k];
		uint64_t ce = pc->first_page + (uint64_t)pc->span * PAGE_SIZE_4K;
		if (pc->first_page >= end)
			break;
		if (ce <= start || !pc->nheld)
			continue;
		for (uint32_t i = 0; i < pc->span; i++) {
			uint64_t a = pc->first_page + (uint64_t)i * PAGE_SIZE_4K;
			if (a >= start && a < end && cell_bit(pc, i))
				return 1;
		}
	}
	return 0;
}

/*
 * Per chunk, the pages the image holds and their digests. The digests go into one arena (a
 * chunk's place: 8 bytes per page of its span, laid out in chunk order), faulted in by
 * huge pages as the writers fill it, rather than a malloc per chunk (fresh memory is costly:
 * cap_alloc_buf).
 */
int incr_alloc_cells(struct capture *c)
{
	size_t pages = 0;
	c->dcells = calloc(c->nchunks ? c->nchunks : 1, sizeof(*c->dcells));
	if (!c->dcells)
		return cap_fail(-ENOMEM, "page digests");
	for (size_t i = 0; i < c->nchunks; i++)
		pages += c->chunks[i].span_pages;
	c->dig_arena_len = (pages ? pages : 1) * 8;
	c->dig_arena = cap_alloc_buf(c->dig_arena_len);
	if (!c->dig_arena)
		return cap_fail(-ENOMEM, "page digests");
	for (size_t i = 0, at = 0; i < c->nchunks; i++) {
		c->dcells[i].place = c->dig_arena + at;
		at += 2 * (size_t)c->chunks[i].span_pages;
	}
	return 0;
}

/* A chunk with nothing to read whose cell the parent holds exactly (same first page and
 * span, the pages carried are all it holds: a tracked capture's unwritten cells): its held
 * bits and digests are the parent's, taken as they are (no per-page look-up). */
static int carry_whole_cell(struct capture *c, const struct chunk *ch, struct digest_cell *dc)
{
	const struct parent_cell *pc = c->parent ? cell_at(c->parent, ch->first_page) : NULL;
	if (ch->cand_pages || !pc || pc->first_page != ch->first_page || pc->span != ch->span_pages)
		return 0;
	uint64_t w[CKIMG_SPAN_GRID_PAGES / 64] = { 0 };
	memcpy(w, pc->bitmap, (pc->span + 7) / 8);
	if (pc->span % 64)
		w[pc->span / 64] &= (1ull << (pc->span % 64)) - 1;
	if (memcmp(w, ch->carry, sizeof(w)))
		return 0;
	memcpy(dc->bits, w, sizeof(w));
	dc->nheld = pc->nheld;
	dc->dig = pc->dig;
	return 1;
}

static int page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	uint64_t acc = 0;
	for (size_t i = 0; i < PAGE_SIZE_4K / 8; i++)
		acc |= q[i];
	return acc == 0;
}

uint32_t incr_filter_chunk(struct capture *c, size_t i, uint8_t *slot, const uint64_t *bad,
			   uint64_t *final, uint32_t *raw_crc)
{
	const struct chunk *ch = &c->chunks[i];
	struct digest_cell *dc = &c->dcells[i];
	const struct parent_cell *pc = NULL;
	uint32_t *dig = dc->place;
	uint32_t k = 0, j = 0, crc_all = 0;

	memset(dc->bits, 0, sizeof(dc->bits));
	dc->nheld = 0;
	dc->dig = dig;
	*raw_crc = 0;
	if (carry_whole_cell(c, ch, dc))
		return 0;
	/* The parent's cell at the same place (the usual case): its digests are taken in order,
	 * a running index instead of a look-up per page; else looked up (parent_digest_at). */
	const struct parent_cell *same = c->parent ? cell_at(c->parent, ch->first_page) : NULL;
	uint32_t sk = 0;
	if (same && (same->first_page != ch->first_page || same->span != ch->span_pages))
		same = NULL;
	for (uint32_t p = 0; p < ch->span_pages; p++) {
		int same_held = same && cell_bit(same, p);
		uint32_t pd[2];
		if (same_held) {
			memcpy(pd, same->dig + 2 * (size_t)sk++, 8);
		}
		if (!((ch->bits[p / 64] >> (p % 64)) & 1)) {
			/* tracked, not written since the parent: held as it holds it */
			if (((ch->carry[p / 64] >> (p % 64)) & 1) &&
			    (same ? same_held : parent_digest_at(c->parent, &pc, ch->first_page + (uint64_t)p * PAGE_SIZE_4K, pd))) {
				dc->bits[p / 64] |= 1ull << (p % 64);
				dig[2 * dc->nheld] = pd[0];
				dig[2 * dc->nheld + 1] = pd[1];
				dc->nheld++;
			}
			continue;
		}
		uint8_t *src = slot + (size_t)k++ * PAGE_SIZE_4K;
		if ((bad[p / 64] >> (p % 64)) & 1)
			continue;                          /* unreadable: neither stored nor held */
		uint32_t crc = ck_crc32(0, src, PAGE_SIZE_4K);
		uint32_t adl = libdeflate_adler32(1, src, PAGE_SIZE_4K);
		int in_parent = same ? same_held : parent_digest_at(c->parent, &pc, ch->first_page + (uint64_t)p * PAGE_SIZE_4K, pd);
		int store;
		if (in_parent)
			store = pd[0] != crc || pd[1] != adl;  /* same digest: inherited */
		else if (ch->zero_filter && crc == zero_crc && adl == zero_adler && page_is_zero(src))
			continue;                          /* fresh anonymous memory reads as zero */
		else
			store = 1;
		dc->bits[p / 64] |= 1ull << (p % 64);
		dig[2 * dc->nheld] = crc;
		dig[2 * dc->nheld + 1] = adl;
		dc->nheld++;
		if (!store)
			continue;
		if (j != k - 1)
			memmove(slot + (size_t)j * PAGE_SIZE_4K, src, PAGE_SIZE_4K);
		crc_all = j ? (uint32_t)crc32_combine_op(crc_all, crc, crc_op_page) : crc;
		j++;
		final[p / 64] |= 1ull << (p % 64);
	}
	*raw_crc = crc_all;
	return j;
}

const uint8_t *incr_parent_id(const struct capture *c)
{
	return c->parent ? c->parent->image_id : NULL;
}

void incr_parent_held_bits(const struct capture *c, uint64_t first, uint32_t span, uint64_t *out)
{
	const struct parent_image *pi = c->parent;
	uint64_t end = first + (uint64_t)span * PAGE_SIZE_4K;
	memset(out, 0, CKIMG_SPAN_GRID_PAGES / 8);
	if (!pi)
		return;
	size_t lo = 0, hi = pi->ncells;        /* the first cell ending after first */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct parent_cell *pc = &pi->cells[mid];
		if (pc->first_page + (uint64_t)pc->span * PAGE_SIZE_4K <= first)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = lo; k < pi->ncells && pi->cells[k].first_page < end; k++) {
		const struct parent_cell *pc = &pi->cells[k];
		if (!pc->nheld)
			continue;
		if (pc->first_page == first && pc->span == span) {   /* the same cell: its bitmap */
			memcpy(out, pc->bitmap, (span + 7) / 8);
			if (span % 64)
				out[span / 64] &= (1ull << (span % 64)) - 1;
			continue;
		}
		for (uint32_t i = 0; i < pc->span; i++) {
			uint64_t a = pc->first_page + (uint64_t)i * PAGE_SIZE_4K;
			if (a >= first && a < end && cell_bit(pc, i)) {
				uint32_t p = (uint32_t)((a - first) / PAGE_SIZE_4K);
				out[p / 64] |= 1ull << (p % 64);
			}
		}
	}
}

int incr_put_parent(struct capture *c, struct image *im)
{
	const struct parent_image *pi = c->parent;
	if (!pi)
		return 0;
	struct ckimg_parent_fixed f = {
		.fixed_size = sizeof(f), .depth = pi->depth + 1, .parent_pid = pi->pid,
		.parent_start_time = pi->start_time, .parent_created_ns = pi->created_ns,
	};
	memcpy(f.parent_image_id, pi->image_id, 16);
	struct buf b = { 0 };
	int err = buf_put(&b, &f, sizeof(f));
	if (!err)
		err = buf_put_cstr(&b, pi->hint);
	if (!err)
		err = image_record_ex(im, CKIMG_REC_PARENT, CKIMG_RECF_MUST_UNDERSTAND, &b, 0, 0, 0, 0);
	buf_free(&b);
	return err;
}

int incr_put_digests(struct capture *c, struct image *im)
{
	int err = image_stage(im, 1);   /* a record per chunk (~1000 per GiB): written at once */
	c->held_pages = 0;
	for (size_t i = 0; !err && i < c->nchunks; i++) {
		const struct chunk *ch = &c->chunks[i];
		const struct digest_cell *dc = &c->dcells[i];
		uint32_t n = 0;
		for (int w = 0; w < CKIMG_SPAN_GRID_PAGES / 64; w++)
			n += (uint32_t)__builtin_popcountll(dc->bits[w]);
		if (n != dc->nheld || (n && !dc->dig)) {
			err = cap_fail(-ENOMEM, "page digests of chunk %zu", i);
			break;
		}
		if (!n)
			continue;
		struct ckimg_page_digests_fixed f = {
			.fixed_size = sizeof(f), .area_id = c->areas[ch->area].id, .first_page = ch->first_page,
			.span_pages = ch->span_pages, .held_pages = n, .digest_kind = CKIMG_DIGEST_CRC_ADLER,
		};
		size_t bm = (ch->span_pages + 7) / 8, bm8 = (bm + 7) & ~(size_t)7;
		uint8_t bitmap[CKIMG_SPAN_GRID_PAGES / 8] = { 0 };
		memcpy(bitmap, dc->bits, bm);
		struct buf b = { 0 };
		err = buf_put(&b, &f, sizeof(f));
		if (!err)
			err = buf_put(&b, bitmap, bm8);
		if (!err)
			err = buf_put(&b, dc->dig, (size_t)n * 8);
		if (!err)
			err = image_record_ex(im, CKIMG_REC_PAGE_DIGESTS, 0, &b, f.area_id, f.first_page, f.span_pages, n);
		buf_free(&b);
		c->held_pages += n;
	}
	int e2 = image_stage(im, 0);
	if (!err)
		err = e2;
	if (!err)
		c->inherited_pages = c->held_pages - c->stored_pages;
	return err;
}

void incr_free(struct capture *c)
{
	struct parent_image *pi = c->parent;
	if (pi) {
		for (size_t i = 0; i < pi->ncells; i++)
			free(pi->cells[i].rank);
		for (size_t i = 0; i < pi->npayloads; i++)
			free(pi->payloads[i]);
		free(pi->payloads);
		cap_free_buf(pi->span, pi->span_len);
		free(pi->cells);
		free(pi->hint);
		free(pi);
		c->parent = NULL;
	}
	if (c->dcells) {
		free(c->dcells);
		c->dcells = NULL;
		cap_free_buf(c->dig_arena, c->dig_arena_len);
		c->dig_arena = NULL;
	}
}
