/*
 * The memory map: areas from /proc/PID/maps, their VmFlags and Rss/Swap from /proc/PID/smaps
 * (of the target, or of its copy-on-write twin after the release: cow.c), and which of
 * their pages must be stored, from /proc/PID/pagemap (bit 63 present, 62 swapped, 61 file page
 * or shared-anon; Documentation/admin-guide/mm/pagemap.rst) and, for shared memory, the data
 * extents of its shmem file (SEEK_DATA/SEEK_HOLE on /proc/PID/map_files/...).
 *
 * Which pages are candidates (FORMAT.md 4.7 "Pages not stored"):
 *   ANON/HEAP/STACK private  present or swapped (all-zero ones are dropped after reading)
 *   FILE private             present anonymous copies (bit 61 clear) or swapped; a present
 *                            page with bit 61 set is still the file's page-cache page
 *   FILE shared              none: the file holds the content
 *   FILE deleted             every page inside the file: it cannot be re-mapped at restore
 *   SHMEM                    present, swapped, or allocated in the shmem object (zero dropped)
 *   VDSO/VVAR/VSYSCALL/other [special] areas, VM_IO/VM_PFNMAP areas: none
 */
#include "capture.h"
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PM_PRESENT (1ull << 63)
#define PM_SWAP    (1ull << 62)
#define PM_FILE    (1ull << 61)
#define PM_MARKER_SWAP_TYPE 31  /* the highest swap type: pte markers (no page) */

/*
 * A swapped-out page, by its pagemap entry. Not every PM_SWAP entry is one: a pte marker (the
 * uffd-wp marker that WP_UNPOPULATED write-protection leaves on every hole of a tracked area,
 * a guard region, a poisoned page) shows as PM_SWAP of the marker swap type, and holds no
 * page. The type is shown to CAP_SYS_ADMIN only; hidden (0), the entry counts as a page.
 */
int pm_swapped_page(uint64_t e8)
{
	return (e8 & PM_SWAP) && (e8 & 0x1f) != PM_MARKER_SWAP_TYPE;
}

/* A page of this process, in memory or swapped out. */
static int pm_page(uint64_t e8)
{
	return (e8 & PM_PRESENT) || pm_swapped_page(e8);
}

/* A page of a private file mapping that is the process's own (it wrote it): swapped out, or in
 * memory and no longer the file's. */
int pm_own_private_page(uint64_t e8)
{
	return pm_swapped_page(e8) || ((e8 & PM_PRESENT) && !(e8 & PM_FILE));
}

struct vmflag_bit {
	char name[3];
	uint32_t bit;
};
static const struct vmflag_bit vmflag_bits[] = {
	{ "gd", CKIMG_AREA_GROWSDOWN }, { "dd", CKIMG_AREA_DONTDUMP }, { "hg", CKIMG_AREA_HUGEPAGE },
	{ "nh", CKIMG_AREA_NOHUGEPAGE }, { "lo", CKIMG_AREA_LOCKED }, { "nr", CKIMG_AREA_NORESERVE },
	{ "dc", CKIMG_AREA_DONTFORK }, { "wf", CKIMG_AREA_WIPEONFORK }, { "mg", CKIMG_AREA_MERGEABLE },
};

static int has_vmflag(const char *vmflags, const char *f)
{
	for (const char *p = vmflags; p && *p;) {
		while (*p == ' ')
			p++;
		if (p[0] == f[0] && p[1] == f[1] && (p[2] == ' ' || p[2] == 0))
			return 1;
		while (*p && *p != ' ')
			p++;
	}
	return 0;
}

static uint32_t area_kind(const struct area *a)
{
	const char *p = a->path;
	if (!p[0] || !strncmp(p, "[anon:", 6))
		return CKIMG_KIND_ANON;
	if (!strncmp(p, "[anon_shmem:", 12))
		return CKIMG_KIND_SHMEM;
	if (!strcmp(p, "[heap]"))
		return CKIMG_KIND_HEAP;
	if (!strcmp(p, "[stack]") || !strncmp(p, "[stack:", 7))
		return CKIMG_KIND_STACK;
	if (!strcmp(p, "[vdso]"))
		return CKIMG_KIND_VDSO;
	if (!strcmp(p, "[vvar]"))          /* [vvar_vclock] and other [names] are SPECIAL (4.7) */
		return CKIMG_KIND_VVAR;
	if (!strcmp(p, "[vsyscall]"))
		return CKIMG_KIND_VSYSCALL;
	if (p[0] == '[')
		return CKIMG_KIND_SPECIAL;
	if (!strcmp(p, "/dev/zero"))
		return a->shared ? CKIMG_KIND_SHMEM : CKIMG_KIND_ANON;
	if (a->shared && (a->flags & CKIMG_AREA_DELETED) && !strncmp(p, "/SYSV", 5))
		return CKIMG_KIND_SHMEM;
	return CKIMG_KIND_FILE;
}

static int add_area(struct capture *c, size_t *cap, const char *line)
{
	unsigned long long s, e, off, ino;
	unsigned maj, min;
	char perms[8];
	int pos = 0;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &s, &e, perms, &off, &maj, &min, &ino, &pos) < 7)
		return -EINVAL;
	if (c->nareas == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		struct area *n = realloc(c->areas, *cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		c->areas = n;
	}
	struct area *a = &c->areas[c->nareas];
	memset(a, 0, sizeof(*a));
	a->id = (uint32_t)c->nareas;
	a->start = s;
	a->end = e;
	a->file_offset = off;
	a->dev_major = maj;
	a->dev_minor = min;
	a->inode = ino;
	a->prot = (perms[0] == 'r' ? CKIMG_PROT_READ : 0) | (perms[1] == 'w' ? CKIMG_PROT_WRITE : 0) |
		  (perms[2] == 'x' ? CKIMG_PROT_EXEC : 0);
	a->shared = perms[3] == 's';
	a->flags = a->shared ? CKIMG_AREA_SHARED : 0;
	a->file_id = CKIMG_NO_FILE;
	const char *path = pos ? line + pos : "";
	size_t l = strlen(path);
	while (l && (path[l - 1] == '\n' || path[l - 1] == ' '))
		l--;
	if (l >= 10 && !memcmp(path + l - 10, " (deleted)", 10) && path[0] == '/') {
		l -= 10;
		a->flags |= CKIMG_AREA_DELETED;
	}
	a->path = strndup(path, l);
	if (!a->path)
		return -ENOMEM;
	a->kind = area_kind(a);
	c->nareas++;
	return 0;
}

static void set_vmflags(struct area *a, const char *v)
{
	while (*v == ' ')
		v++;
	size_t l = strlen(v);
	while (l && v[l - 1] == ' ')
		l--;
	char *d = strndup(v, l);
	if (!d)
		return;                 /* (flags below still come from v) */
	free(a->vmflags);
	a->vmflags = d;
	for (size_t i = 0; i < sizeof(vmflag_bits) / sizeof(vmflag_bits[0]); i++)
		if (has_vmflag(d, vmflag_bits[i].name))
			a->flags |= vmflag_bits[i].bit;
	if (has_vmflag(d, "io") || has_vmflag(d, "pf"))
		a->flags |= CKIMG_AREA_UNREADABLE;
}

int collect_areas(struct capture *c)
{
	int err = collect_areas_maps(c);
	return err ? err : areas_apply_smaps(c, c->pid, 0);
}

/*
 * The areas from /proc/PID/maps: the same lines as smaps without walking the page tables
 * (smaps counts every page: ~10 ms per GiB). VmFlags and Rss are not known yet (vmflags NULL,
 * any_rss 1): areas_apply_smaps fills them in, from the target or from a copy-on-write twin.
 */
int collect_areas_maps(struct capture *c)
{
	char path[64], *maps = NULL;
	size_t cap = 0;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/maps", c->pid);
	err = read_file(path, &maps, NULL);
	if (err)
		return cap_fail(err, "read %s", path);
	for (char *line = maps, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		err = add_area(c, &cap, line);
		if (err) {
			cap_fail(err, "parse %s", path);
			break;
		}
		c->areas[c->nareas - 1].any_rss = 1;
	}
	free(maps);
	return err;
}

static struct area *area_at(struct capture *c, uint64_t start, uint64_t end)
{
	size_t lo = 0, hi = c->nareas;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->areas[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->nareas && c->areas[lo].start == start && c->areas[lo].end == end ? &c->areas[lo] : NULL;
}

/*
 * VmFlags and Rss/Swap from /proc/PID/smaps for the areas with the same bounds (pid: the
 * target, or its copy-on-write twin, whose areas are the target's at the fork instant);
 * only_unknown: leave areas whose flags are known alone (and fail quietly: best effort);
 * 2: an area without an exact match takes the flags of an overlapping one (it grew or shrank).
 * Areas without a match keep theirs.
 */
static void apply_smaps_text(struct capture *c, char *smaps, int only_unknown);

int areas_apply_smaps(struct capture *c, pid_t pid, int only_unknown)
{
	char path[64], *smaps = NULL;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	err = read_file(path, &smaps, NULL);
	if (err)
		return only_unknown ? err : cap_fail(err, "read %s", path);
	apply_smaps_text(c, smaps, only_unknown);
	free(smaps);
	return 0;
}

/*
 * A tracked incremental capture (its pages read while frozen) takes VmFlags after the release,
 * best effort, as areas_apply_smaps(c, pid, 1) then (.., 2) would: smaps walks every page table
 * (~15 ms for 1 GiB here), so it is read once, by a thread, while the pages are compressed and
 * written; areas_smaps_end applies it (before the AREA records are written).
 */
static struct {
	pthread_t th;
	int started;
	pid_t pid;
	char *text;
} smaps_reader;

static void *smaps_reader_main(void *arg)
{
	char path[64];
	(void)arg;
	snprintf(path, sizeof(path), "/proc/%d/smaps", smaps_reader.pid);
	if (read_file(path, &smaps_reader.text, NULL))
		smaps_reader.text = NULL;
	return NULL;
}

void areas_smaps_begin(struct capture *c)
{
	sigset_t all, old;
	if (smaps_reader.started)
		return;
	smaps_reader.pid = c->pid;
	smaps_reader.text = NULL;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);  /* signals go to the main thread only */
	smaps_reader.started = pthread_create(&smaps_reader.th, NULL, smaps_reader_main, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!smaps_reader.started)
		smaps_reader_main(NULL);     /* read here, then */
}

void areas_smaps_end(struct capture *c)
{
	if (smaps_reader.started)
		pthread_join(smaps_reader.th, NULL);
	smaps_reader.started = 0;
	char *t = smaps_reader.text, *copy = t ? strdup(t) : NULL;
	smaps_reader.text = NULL;
	if (copy) {
		apply_smaps_text(c, copy, 1);
		apply_smaps_text(c, t, 2);
		c->vmflags_known = 1;
	}
	free(copy);
	free(t);
}

/* areas_apply_smaps's work on the text of an smaps file (cut into lines in place). */
static void apply_smaps_text(struct capture *c, char *smaps, int only_unknown)
{
	struct area *a = NULL;

	for (char *line = smaps, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if ((*line >= '0' && *line <= '9') || (*line >= 'a' && *line <= 'f')) {
			unsigned long long s, e;
			a = sscanf(line, "%llx-%llx", &s, &e) == 2 ? area_at(c, s, e) : NULL;
			for (size_t k = 0; !a && only_unknown == 2 && k < c->nareas; k++)
				if (!c->areas[k].vmflags && c->areas[k].start < e && s < c->areas[k].end)
					a = &c->areas[k];   /* bounds changed since: the area it became */
			if (a && only_unknown && a->vmflags)
				a = NULL;
			if (a)
				a->any_rss = 0;
		} else if (a && !strncmp(line, "VmFlags:", 8)) {
			set_vmflags(a, line + 8);
		} else if (a && (!strncmp(line, "Rss:", 4) || !strncmp(line, "Swap:", 5))) {
			/* Rss + Swap == 0: nothing present, no pagemap walk needed (this keeps
			 * huge PROT_NONE reservations cheap). */
			if (strtoull(strchr(line, ':') + 1, NULL, 10))
				a->any_rss = 1;
		}
	}
}

/* Data extents of the shmem object behind a shared-memory area, as [start,end) file offsets. */
struct extents {
	uint64_t (*r)[2];
	size_t n, cap;
};

static void shmem_extents(struct capture *c, const struct area *a, struct extents *ex)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", c->pid,
		 (unsigned long long)a->start, (unsigned long long)a->end);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t pos = (off_t)a->file_offset, lim = (off_t)(a->file_offset + (a->end - a->start));
	while (pos < lim) {
		off_t d = lseek(fd, pos, SEEK_DATA);
		if (d < 0 || d >= lim)
			break;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h > lim)
			h = lim;
		if (ex->n == ex->cap) {
			size_t cap = ex->cap ? ex->cap * 2 : 16;
			void *q = realloc(ex->r, cap * sizeof(*ex->r));
			if (!q)
				break;
			ex->r = q;
			ex->cap = cap;
		}
		ex->r[ex->n][0] = (uint64_t)d;
		ex->r[ex->n][1] = (uint64_t)h;
		ex->n++;
		pos = h;
	}
	close(fd);
}

static int add_chunk(struct capture *c, size_t *cap, const struct chunk *ch)
{
	if (c->nchunks == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		struct chunk *n = realloc(c->chunks, *cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		c->chunks = n;
	}
	c->chunks[c->nchunks++] = *ch;
	c->cand_bytes += (uint64_t)ch->cand_pages * PAGE_SIZE_4K;
	return 0;
}

enum plan_mode { PLAN_NONE, PLAN_PAGEMAP_ANON, PLAN_PAGEMAP_PRIVATE_FILE, PLAN_ALL, PLAN_SHMEM };

static enum plan_mode area_plan(const struct capture *c, const struct area *a, int any_rss)
{
	if (a->flags & CKIMG_AREA_UNREADABLE)
		return PLAN_NONE;
	switch (a->kind) {
	case CKIMG_KIND_ANON: case CKIMG_KIND_HEAP: case CKIMG_KIND_STACK:
		return any_rss ? PLAN_PAGEMAP_ANON : PLAN_NONE;
	case CKIMG_KIND_SHMEM:
		return PLAN_SHMEM;
	case CKIMG_KIND_FILE:
		if (a->has_content)     /* the file itself is in the image (FILE_CONTENT) */
			return a->shared ? PLAN_NONE : (any_rss ? PLAN_PAGEMAP_PRIVATE_FILE : PLAN_NONE);
		if (a->flags & CKIMG_AREA_DELETED)
			return PLAN_ALL;
		if (a->file_id == CKIMG_NO_FILE ||
		    (c->files[a->file_id - 1].flags & CKIMG_FILE_UNREADABLE))
			return PLAN_ALL;        /* identity unknown: cannot rely on the file */
		if (a->shared)
			return PLAN_NONE;
		return any_rss ? PLAN_PAGEMAP_PRIVATE_FILE : PLAN_NONE;
	}
	return PLAN_NONE;
}

/* Same page frame as the parent's page at this address: still shared copy-on-write since fork
 * (a tree, FORMAT.md SHARED_PAGES). Root sees real PFNs; 0 means "not known". */
int shared_with_parent(uint64_t mine, uint64_t parents)
{
	const uint64_t pfn = (1ull << 55) - 1;
	return (mine & PM_PRESENT) && (parents & PM_PRESENT) && !(mine & PM_SWAP) && (mine & pfn) &&
	       (mine & pfn) == (parents & pfn);
}

/*
 * An area whose writes are tracked (track.c) in an incremental capture on the tracked
 * baseline: no pagemap walk; the written pages are read, every other page the parent holds is
 * held again with the parent's digest (it cannot have changed: any write, or the page's loss,
 * would have been reported written).
 */
static int plan_tracked_area(struct capture *c, struct area *a, size_t *cap, int pm_fd, uint64_t *pm, int ppm_fd,
			     uint64_t *ppm)
{
	const uint64_t grid = CHUNK_BYTES;
	size_t run = 0;
	int err = 0;
	for (uint64_t cell = a->start & ~(grid - 1); cell < a->end && !err; cell += grid) {
		uint64_t s = cell < a->start ? a->start : cell;
		uint64_t e = cell + grid > a->end ? a->end : cell + grid;
		struct chunk ch = { .area = (uint32_t)(a - c->areas), .first_page = s,
				    .span_pages = (uint32_t)((e - s) / PAGE_SIZE_4K) };
		ch.zero_filter = a->kind != CKIMG_KIND_FILE;
		track_plan_cell(c, a, &run, &ch);
		incr_parent_held_bits(c, s, ch.span_pages, ch.carry);
		if (ppm_fd >= 0) {
			/* a tree's descendant: pages still shared copy-on-write with its parent are
			 * listed (SHARED_PAGES), never held; a page that was shared at the last capture
			 * (so not held then) and is not now has this process's content, unwritten by
			 * it: read. Sharing is seen in the pagemaps, not in the writes tracked. */
			size_t want = (size_t)ch.span_pages * 8;
			if (pread(pm_fd, pm, want, (off_t)(s / PAGE_SIZE_4K * 8)) != (ssize_t)want)
				return cap_fail(-EIO, "read pagemap");
			if (pread(ppm_fd, ppm, want, (off_t)(s / PAGE_SIZE_4K * 8)) != (ssize_t)want)
				memset(ppm, 0, want);
			for (uint32_t i = 0; i < ch.span_pages && !err; i++) {
				uint64_t bit = 1ull << (i % 64), e8 = pm[i];
				int present = a->kind == CKIMG_KIND_FILE ? pm_own_private_page(e8) : pm_page(e8);
				if (present && shared_with_parent(e8, ppm[i])) {
					ch.bits[i / 64] &= ~bit;
					ch.carry[i / 64] &= ~bit;
					err = tree_shared_page(c, a->id, s + (uint64_t)i * PAGE_SIZE_4K);
				} else if (present && !(ch.carry[i / 64] & bit)) {
					ch.bits[i / 64] |= bit;
				}
			}
		}
		int any = 0;
		for (int w = 0; w < CKIMG_SPAN_GRID_PAGES / 64; w++) {
			ch.carry[w] &= ~ch.bits[w];
			ch.cand_pages += (uint32_t)__builtin_popcountll(ch.bits[w]);
			any |= ch.carry[w] != 0;
		}
		if (ch.cand_pages || any)
			err = add_chunk(c, cap, &ch);
	}
	return err;
}

static int plan_area(struct capture *c, struct area *a, int pm_fd, size_t *cap, uint64_t *pm, int ppm_fd, uint64_t *ppm)
{
	/* an incremental capture also reads what the parent holds here (it may now be zero) */
	enum plan_mode mode = area_plan(c, a, a->any_rss || incr_parent_holds_range(c, a->start, a->end));
	struct extents ex = { 0 };
	uint64_t all_end = a->end;
	int err = 0;

	if (mode == PLAN_NONE)
		return 0;
	if (mode == PLAN_SHMEM)
		shmem_extents(c, a, &ex);
	if (mode == PLAN_ALL && a->file_id != CKIMG_NO_FILE &&
	    !(c->files[a->file_id - 1].flags & CKIMG_FILE_UNREADABLE)) {
		/* pages past the end of the file do not exist (SIGBUS); stop there */
		uint64_t size = c->files[a->file_id - 1].size;
		uint64_t in_file = size > a->file_offset ? size - a->file_offset : 0;
		in_file = (in_file + PAGE_SIZE_4K - 1) & ~(uint64_t)(PAGE_SIZE_4K - 1);
		if (a->start + in_file < all_end)
			all_end = a->start + in_file;
	}
	const uint64_t grid = CHUNK_BYTES;
	if (a->tracked && (mode == PLAN_PAGEMAP_ANON || mode == PLAN_PAGEMAP_PRIVATE_FILE))
		return plan_tracked_area(c, a, cap, pm_fd, pm, ppm_fd, ppm);
	for (uint64_t cell = a->start & ~(grid - 1); cell < a->end && !err; cell += grid) {
		uint64_t s = cell < a->start ? a->start : cell;
		uint64_t e = cell + grid > a->end ? a->end : cell + grid;
		uint32_t np = (uint32_t)((e - s) / PAGE_SIZE_4K);
		struct chunk ch = { .area = (uint32_t)(a - c->areas), .first_page = s, .span_pages = np };
		ch.zero_filter = a->kind != CKIMG_KIND_FILE;
		if (mode != PLAN_ALL) {
			ssize_t want = (ssize_t)np * 8;
			ssize_t got = pread(pm_fd, pm, (size_t)want, (off_t)(s / PAGE_SIZE_4K * 8));
			if (got != want) {
				err = cap_fail(got < 0 ? -errno : -EIO, "read pagemap");
				break;
			}
			if (ppm_fd >= 0 && (mode == PLAN_PAGEMAP_ANON || mode == PLAN_PAGEMAP_PRIVATE_FILE) &&
			    pread(ppm_fd, ppm, (size_t)want, (off_t)(s / PAGE_SIZE_4K * 8)) != want)
				memset(ppm, 0, (size_t)want);   /* parent not mapped there: nothing shared */
		}
		for (uint32_t i = 0; i < np; i++) {
			uint64_t addr = s + (uint64_t)i * PAGE_SIZE_4K, e8 = mode == PLAN_ALL ? 0 : pm[i];
			int take = 0, elsewhere = 0;    /* elsewhere: in the parent process or an earlier sharer */
			switch (mode) {
			case PLAN_ALL:
				take = addr < all_end;
				break;
			case PLAN_PAGEMAP_ANON:
				take = pm_page(e8);
				break;
			case PLAN_PAGEMAP_PRIVATE_FILE:
				take = pm_own_private_page(e8);
				break;
			case PLAN_SHMEM: {
				take = pm_page(e8);
				uint64_t fo = a->file_offset + (addr - a->start);
				for (size_t k = 0; !take && k < ex.n; k++)
					take = fo >= ex.r[k][0] && fo < ex.r[k][1];
				if (take && a->shared && tree_shmem_stored(c, a, fo))
					take = 0, elsewhere = 1;   /* one object, stored by an earlier sharer */
				break;
			}
			default:
				break;
			}
			if (take && ppm_fd >= 0 && (mode == PLAN_PAGEMAP_ANON || mode == PLAN_PAGEMAP_PRIVATE_FILE) &&
			    shared_with_parent(e8, ppm[i])) {
				take = 0;       /* stored once, in the parent */
				elsewhere = 1;  /* (and not held: FORMAT.md "Incremental images", trees) */
				err = tree_shared_page(c, a->id, addr);
			}
			if (!take && !elsewhere && c->parent && (mode != PLAN_ALL || addr < all_end))
				take = incr_parent_holds(c, addr);
			if (take) {
				ch.bits[i / 64] |= 1ull << (i % 64);
				ch.cand_pages++;
			}
		}
		if (ch.cand_pages)
			err = add_chunk(c, cap, &ch);
	}
	free(ex.r);
	if (!err && mode == PLAN_SHMEM)
		err = tree_shmem_note(c, a);
	return err;
}

static int by_address(const void *a, const void *b)
{
	const struct chunk *x = a, *y = b;
	return x->first_page < y->first_page ? -1 : x->first_page > y->first_page;
}

int plan_chunks(struct capture *c)
{
	return plan_chunks_part(c, c->pid, -1);
}

/* part -1: every area; 1: the areas a copy-on-write capture reads while frozen; 0: the others
 * (their pagemap read from the twin, pid). Chunks are appended and kept in address order. */
int plan_chunks_part(struct capture *c, pid_t pid, int part)
{
	char path[64];
	size_t cap = c->nchunks;
	int err = 0;
	uint64_t *pm = malloc(CKIMG_SPAN_GRID_PAGES * 8), *ppm = malloc(CKIMG_SPAN_GRID_PAGES * 8);
	int ppm_fd = ppm ? tree_parent_pagemap(c) : -1;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !pm) {
		err = cap_fail(fd < 0 ? -errno : -ENOMEM, "open %s", path);
		goto out;
	}
	for (size_t i = 0; !err && i < c->nareas; i++)
		if (part < 0 || cow_read_while_frozen(c, &c->areas[i]) == part)
			err = plan_area(c, &c->areas[i], fd, &cap, pm, ppm_fd, ppm);
	if (!err && part >= 0 && c->nchunks)
		qsort(c->chunks, c->nchunks, sizeof(*c->chunks), by_address);
out:
	if (fd >= 0)
		close(fd);
	if (ppm_fd >= 0)
		close(ppm_fd);
	free(pm);
	free(ppm);
	return err;
}
