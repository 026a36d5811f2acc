/*
 * restore_mm: replace the child's address space with the recorded one.
 *
 *   1. unmap everything the child inherited from us, except the trampoline and the kernel's
 *      special mappings (vdso, vvar, vvar_vclock);
 *   2. move those specials to their recorded addresses (mremap; same kernel => same sizes),
 *      parking them first so a move never lands on another special;
 *   3. map every AREA at its address (file-backed ones from the recorded file at the recorded
 *      offset; writable while pages are filled);
 *   4. --lazy: codec-NONE chunks whose DATA is page-aligned in the image are mapped straight
 *      from the image file (MAP_PRIVATE: copy-on-write, read on first touch);
 *   5. fill the other stored pages with worker threads (read, verify CRCs, decompress,
 *      process_vm_writev) while the tracer goes on with threads;
 *   restore_mm_wait: join, then final protections, madvise flags, PR_SET_MM_MAP.
 */
#include <errno.h>
#include <linux/prctl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "crc32.h"
#include "restore.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct rst_fill {
	struct restore_args *a;
	atomic_size_t next;
	atomic_int failed;
	uint8_t *mapped;            /* per chunk: 1 = mapped lazily from the image, 2 = filled and
				     * checked before the fork (a tree's premapped area) */
	size_t max_payload, max_raw;
	int nthreads;
	pthread_t th[16];
	pthread_mutex_t lock;
	char err[512];
	uint64_t bytes_written;
};

static int is_special_name(const char *p)
{
	return !strcmp(p, "[vdso]") || !strcmp(p, "[vvar]") || !strcmp(p, "[vvar_vclock]") ||
	       !strcmp(p, "[vsyscall]");
}

/* A two-letter token of the area's recorded smaps VmFlags ("sr", "dp" ...). */
static int area_vmflag(const struct img_area *ar, const char *f)
{
	for (const char *p = ar->vmflags.s; p && *p;) {
		while (*p == ' ')
			p++;
		if (p[0] == f[0] && p[1] == f[1] && (p[2] == ' ' || p[2] == 0))
			return 1;
		while (*p && *p != ' ')
			p++;
	}
	return 0;
}

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
#define SYS_mseal_ 462

static int area_is_special(const struct img_area *ar)
{
	return ar->f.kind == CKIMG_KIND_VDSO || ar->f.kind == CKIMG_KIND_VVAR ||
	       ar->f.kind == CKIMG_KIND_VSYSCALL || is_special_name(ar->path.s);
}

/* Pages of a SHARED file mapping live in the file: never written back from the image. */
static int area_fill_skipped(const struct restore_args *a, const struct img_area *ar)
{
	return (ar->f.flags & CKIMG_AREA_SHARED) && ar->file_idx >= 0 && a->file_ok[ar->file_idx];
}

struct cmap {
	uint64_t s, e;
	char name[32];
};

static int child_maps(pid_t pid, struct cmap **out, size_t *n)
{
	char path[64], line[512];
	size_t cap = 64;
	FILE *f;

	*n = 0;
	*out = malloc(cap * sizeof(**out));
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f || !*out)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		int pos = 0;
		char *name;
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s%n", &s, &e, &pos) < 2)
			continue;
		if (*n == cap) {
			cap *= 2;
			void *nn = realloc(*out, cap * sizeof(**out));
			if (!nn)
				break;
			*out = nn;
		}
		name = line + pos;
		while (*name == ' ')
			name++;
		name[strcspn(name, "\n")] = 0;
		(*out)[*n].s = s;
		(*out)[*n].e = e;
		snprintf((*out)[*n].name, sizeof((*out)[*n].name), "%s", name);
		(*n)++;
	}
	fclose(f);
	return 0;
}

static struct img_area *recorded_by_path(struct img *img, const char *p)
{
	for (size_t i = 0; i < img->nareas; i++)
		if (!strcmp(img->areas[i].path.s, p))
			return &img->areas[i];
	return NULL;
}

/* munmap [s, e) but not the areas a tree restore mapped before the fork (premapped). */
static long unmap_around_premapped(struct restore_args *a, struct rst_thread *m, uint64_t s, uint64_t e)
{
	struct img *img = a->img;
	uint64_t at = s;
	long r = 0;

	while (at < e && r >= 0) {
		uint64_t next = e, skip_to = at;
		for (size_t i = 0; i < img->nareas; i++) {
			const struct img_area *ar = &img->areas[i];
			if (!ar->premapped || ar->f.end <= at || ar->f.start >= e)
				continue;
			if (ar->f.start <= at) {
				skip_to = ar->f.end > skip_to ? ar->f.end : skip_to;
				next = at;
			} else if (ar->f.start < next) {
				next = ar->f.start;
			}
		}
		if (skip_to > at) {
			at = skip_to;
			continue;
		}
		r = rst_rsys(a, m, SYS_munmap, at, next - at, 0, 0, 0, 0);
		at = next;
	}
	return r;
}

static int restore_unmap_and_specials(struct restore_args *a)
{
	struct rst_thread *m = &a->threads[0];
	struct img *img = a->img;
	struct cmap *cm;
	size_t n;
	long r;
	int err = child_maps(a->pid, &cm, &n);
	struct { uint64_t from, len; struct img_area *to; } sp[8];
	size_t nsp = 0;
	uint64_t park = a->park;

	if (err)
		return rst_err(a, err, "reading the child's maps: %s", strerror(-err));
	for (size_t i = 0; i < n; i++) {
		if (cm[i].s == a->tramp || !strcmp(cm[i].name, "[vsyscall]"))
			continue;
		if (is_special_name(cm[i].name) && nsp < 8) {
			struct img_area *to = recorded_by_path(img, cm[i].name);
			if (to) {
				if (to->f.end - to->f.start != cm[i].e - cm[i].s) {
					err = rst_err(a, -EINVAL, "AREA record #%u (%s): %llu bytes here, %llu in the image: "
						      "the image was captured on kernel %s, this is another kernel",
						      to->seq, cm[i].name, (unsigned long long)(cm[i].e - cm[i].s),
						      (unsigned long long)(to->f.end - to->f.start), img->proc.kernel.s);
					goto out;
				}
				sp[nsp].from = cm[i].s;
				sp[nsp].len = cm[i].e - cm[i].s;
				sp[nsp].to = to;
				nsp++;
				continue;
			}
		}
		r = unmap_around_premapped(a, m, cm[i].s, cm[i].e);
		if (r < 0) {
			err = rst_err(a, (int)r, "unmapping %llx-%llx in the child: %s", (unsigned long long)cm[i].s,
				      (unsigned long long)cm[i].e, strerror((int)-r));
			goto out;
		}
	}
	for (size_t i = 0; i < img->nareas; i++) {
		struct img_area *ar = &img->areas[i];
		int found = 0;
		if (!area_is_special(ar) || ar->f.kind == CKIMG_KIND_VSYSCALL || !strcmp(ar->path.s, "[vsyscall]"))
			continue;
		for (size_t k = 0; k < nsp; k++)
			found |= sp[k].to == ar;
		if (!found) {
			err = rst_err(a, -EINVAL, "AREA record #%u (%s): this kernel has no such mapping; the image "
				      "was captured on kernel %s", ar->seq, ar->path.s, img->proc.kernel.s);
			goto out;
		}
	}
	/* park, then move into place: no move can land on a special that has not moved yet */
	for (size_t k = 0; k < nsp; k++) {
		r = rst_rsys(a, m, SYS_mremap, sp[k].from, sp[k].len, sp[k].len, MREMAP_MAYMOVE | MREMAP_FIXED,
			     park, 0);
		if (r < 0) {
			err = rst_err(a, (int)r, "AREA record #%u (%s): mremap: %s", sp[k].to->seq, sp[k].to->path.s,
				      strerror((int)-r));
			goto out;
		}
		sp[k].from = park;
		park += sp[k].len + 4096;
	}
	for (size_t k = 0; k < nsp; k++) {
		r = rst_rsys(a, m, SYS_mremap, sp[k].from, sp[k].len, sp[k].len, MREMAP_MAYMOVE | MREMAP_FIXED,
			     sp[k].to->f.start, 0);
		if (r < 0) {
			err = rst_err(a, (int)r, "AREA record #%u (%s): mremap to %llx: %s", sp[k].to->seq,
				      sp[k].to->path.s, (unsigned long long)sp[k].to->f.start, strerror((int)-r));
			goto out;
		}
	}
out:
	free(cm);
	return err;
}

static int kprot(uint32_t p)
{
	return ((p & CKIMG_PROT_READ) ? PROT_READ : 0) | ((p & CKIMG_PROT_WRITE) ? PROT_WRITE : 0) |
	       ((p & CKIMG_PROT_EXEC) ? PROT_EXEC : 0);
}

static int fill_prot(const struct restore_args *a, const struct img_area *ar)
{
	int p = kprot(ar->f.prot);
	if (ar->has_pages && !area_fill_skipped(a, ar))
		p |= PROT_READ | PROT_WRITE;
	return p;
}

/*
 * A SysV segment area: the one starting at offset 0 attaches the whole segment there (shmat
 * SHM_REMAP, so shmdt and nattch work as before); areas that continue it (split by mprotect)
 * are inside that attach; whatever of the attach no area covers is unmapped.
 */
static int attach_sysv(struct restore_args *a, size_t idx)
{
	struct img *img = a->img;
	const struct img_area *ar = &img->areas[idx];
	struct rst_thread *m = &a->threads[0];
	struct shmid_ds ds;
	uint64_t covered = ar->f.end;
	long r;

	if (ar->f.file_offset != 0) {
		for (size_t k = 0; k < img->nareas; k++) {
			const struct img_area *p = &img->areas[k];
			if (p != ar && p->f.inode == ar->f.inode && p->f.end == ar->f.start &&
			    p->f.file_offset + (p->f.end - p->f.start) == ar->f.file_offset && restore_sysv_is_segment(p))
				return 0;       /* inside the attach that area made */
		}
		return rst_err(a, -ENOTSUP, "AREA record #%u (%s): a part of SysV segment %llu attached alone "
			       "(offset %#llx) cannot be attached again", ar->seq, ar->path.s,
			       (unsigned long long)ar->f.inode, (unsigned long long)ar->f.file_offset);
	}
	r = rst_rsys(a, m, SYS_shmat, ar->f.inode, ar->f.start, SHM_REMAP, 0, 0, 0);
	if (r != (long)ar->f.start)
		return rst_err(a, r < 0 ? (int)r : -EFAULT, "AREA record #%u (%s): shmat %llu at %llx: %s", ar->seq,
			       ar->path.s, (unsigned long long)ar->f.inode, (unsigned long long)ar->f.start,
			       r < 0 ? strerror((int)-r) : "attached elsewhere");
	for (int more = 1; more;) {
		more = 0;
		for (size_t k = 0; k < img->nareas; k++)
			if (img->areas[k].f.inode == ar->f.inode && img->areas[k].f.start == covered &&
			    img->areas[k].f.file_offset == covered - ar->f.start && restore_sysv_is_segment(&img->areas[k])) {
				covered = img->areas[k].f.end;
				more = 1;
			}
	}
	if (shmctl((int)ar->f.inode, IPC_STAT, &ds) == 0) {
		uint64_t end = ar->f.start + ((ds.shm_segsz + 4095) & ~4095ull);
		if (end > covered)
			rst_rsys(a, m, SYS_munmap, covered, end - covered, 0, 0, 0, 0);
	}
	return 0;
}

static int restore_areas(struct restore_args *a)
{
	struct rst_thread *m = &a->threads[0];
	struct img *img = a->img;

	for (size_t i = 0; i < img->nareas; i++) {
		struct img_area *ar = &img->areas[i];
		uint64_t len = ar->f.end - ar->f.start;
		int flags = MAP_FIXED, fd = -1;
		long r;

		if (area_is_special(ar))
			continue;
		if (restore_sysv_is_segment(ar)) {  /* SysV shm: attached, made again with its id */
			int err = attach_sysv(a, i);
			if (err)
				return err;
			continue;
		}
		if (ar->premapped) {    /* a tree: mapped before the fork, shared with the parent */
			int err = ar->premapped == 2 ? rst_tree_zero_unshared(a, ar) : 0;
			if (err)
				return err;
			continue;
		}
		/* droppable memory (VmFlags "dp", Linux 6.11) is its own mapping type */
		flags |= (ar->f.flags & CKIMG_AREA_SHARED) ? MAP_SHARED : area_vmflag(ar, "dp") ? MAP_DROPPABLE : MAP_PRIVATE;
		if (ar->f.flags & CKIMG_AREA_GROWSDOWN)
			flags |= MAP_GROWSDOWN;
		if (ar->f.flags & CKIMG_AREA_NORESERVE)
			flags |= MAP_NORESERVE;
		if (ar->file_idx >= 0 && a->file_ok[ar->file_idx] &&
		    (!(ar->f.flags & CKIMG_AREA_DELETED) || img_content_for_file(img, &img->files[ar->file_idx]) >= 0))
			fd = a->file_fd_child[ar->file_idx];
		if (fd < 0 && ar->shared_fd > 0 && (ar->f.flags & CKIMG_AREA_SHARED))
			fd = ar->shared_fd;     /* a tree: one object for every sharer */
		if (fd < 0)
			flags |= MAP_ANONYMOUS;
		r = rst_rsys(a, m, SYS_mmap, ar->f.start, len, (uint64_t)fill_prot(a, ar), (uint64_t)flags,
			     (uint64_t)(int64_t)fd, fd < 0 ? 0 : ar->f.file_offset);
		if (r != (long)ar->f.start)
			return rst_err(a, r < 0 ? (int)r : -EFAULT, "AREA record #%u (%llx-%llx %s): mmap: %s", ar->seq,
				       (unsigned long long)ar->f.start, (unsigned long long)ar->f.end, ar->path.s,
				       r < 0 ? strerror((int)-r) : "mapped elsewhere");
		/* --thp: fill large private anonymous areas with huge pages (the area keeps
		 * MADV_HUGEPAGE afterwards: Linux has no way back to "neither") */
		if ((ar->f.flags & CKIMG_AREA_HUGEPAGE) ||
		    (a->thp && fd < 0 && !(ar->f.flags & (CKIMG_AREA_SHARED | CKIMG_AREA_NOHUGEPAGE | CKIMG_AREA_GROWSDOWN)) &&
		     ar->has_pages && len >= (2u << 20)))
			rst_rsys(a, m, SYS_madvise, ar->f.start, len, MADV_HUGEPAGE, 0, 0, 0);
		if (ar->f.flags & CKIMG_AREA_NOHUGEPAGE)
			rst_rsys(a, m, SYS_madvise, ar->f.start, len, MADV_NOHUGEPAGE, 0, 0, 0);
	}
	return 0;
}

/* Lazy: codec-NONE, page-aligned chunks of private non-stack areas become file mappings of
 * the image; their pages are read from the page cache on first touch. */
static int restore_lazy(struct restore_args *a, uint8_t *mapped)
{
	struct rst_thread *m = &a->threads[0];
	struct img *img = a->img;
	uint64_t ps = img->page_size;

	for (size_t i = 0; i < img->nchunks; i++) {
		struct img_chunk *c = &img->chunks[i];
		struct img_area *ar = &img->areas[c->area_idx];
		uint64_t k = 0, fileoff = c->data_offset;

		if (c->src || c->codec != CKIMG_CODEC_NONE || (c->data_offset % ps) ||
		    (ar->f.flags & (CKIMG_AREA_SHARED | CKIMG_AREA_GROWSDOWN)) ||
		    ar->f.kind == CKIMG_KIND_STACK || ar->f.kind == CKIMG_KIND_HEAP || area_vmflag(ar, "dp") ||
		    /* advice a private file mapping cannot carry (anonymous-only) stays eager */
		    (ar->f.flags & (CKIMG_AREA_WIPEONFORK | CKIMG_AREA_MERGEABLE | CKIMG_AREA_HUGEPAGE | CKIMG_AREA_NOHUGEPAGE)))
			continue;
		while (k < c->span_pages) {
			uint64_t run;
			long r;
			if (!(c->bitmap[k / 8] & (1u << (k % 8)))) {
				k++;
				continue;
			}
			for (run = 1; k + run < c->span_pages && (c->bitmap[(k + run) / 8] & (1u << ((k + run) % 8))); run++)
				;
			r = rst_rsys(a, m, SYS_mmap, c->first_page + k * ps, run * ps, (uint64_t)fill_prot(a, ar),
				     MAP_PRIVATE | MAP_FIXED | ((ar->f.flags & CKIMG_AREA_NORESERVE) ? MAP_NORESERVE : 0),
				     (uint64_t)a->img_fd_child, fileoff);
			if (r != (long)(c->first_page + k * ps))
				return rst_err(a, r < 0 ? (int)r : -EFAULT, "PAGES record #%u: mapping from the image: %s",
					       c->seq, r < 0 ? strerror((int)-r) : "mapped elsewhere");
			fileoff += run * ps;
			k += run;
		}
		mapped[i] = 1;
	}
	return 0;
}

static void fill_fail(struct rst_fill *f, const char *msg)
{
	pthread_mutex_lock(&f->lock);
	if (!atomic_load(&f->failed))
		snprintf(f->err, sizeof(f->err), "%s", msg);
	atomic_store(&f->failed, 1);
	pthread_mutex_unlock(&f->lock);
}

/* Write the stored pages of chunk c (raw pages in `data`) into the child. */
static int fill_write(struct rst_fill *f, const struct img_chunk *c, const uint8_t *data, char *eb, size_t el)
{
	struct restore_args *a = f->a;
	uint64_t ps = a->img->page_size;
	struct iovec lv[512], rv[512];
	size_t nv = 0, k = 0, idx = 0;

	while (k < c->span_pages || nv) {
		if (k < c->span_pages && nv < 512) {
			uint64_t run;
			if (!(c->bitmap[k / 8] & (1u << (k % 8)))) {
				k++;
				continue;
			}
			if (c->take && !(c->take[k / 8] & (1u << (k % 8)))) {
				k++;                    /* an ancestor's page the image does not inherit */
				idx++;
				continue;
			}
			for (run = 1; k + run < c->span_pages && (c->bitmap[(k + run) / 8] & (1u << ((k + run) % 8))) &&
				      (!c->take || (c->take[(k + run) / 8] & (1u << ((k + run) % 8)))); run++)
				;
			lv[nv].iov_base = (void *)(data + idx * ps);
			lv[nv].iov_len = run * ps;
			rv[nv].iov_base = (void *)(c->first_page + k * ps);
			rv[nv].iov_len = run * ps;
			nv++;
			idx += run;
			k += run;
			continue;
		}
		ssize_t w = process_vm_writev(a->pid, lv, nv, rv, nv, 0);
		size_t want = 0;
		for (size_t v = 0; v < nv; v++)
			want += lv[v].iov_len;
		if (w != (ssize_t)want) {
			/* slow path, one run at a time through /proc/PID/mem */
			for (size_t v = 0; v < nv; v++) {
				int e = rst_write(a, (uint64_t)rv[v].iov_base, lv[v].iov_base, lv[v].iov_len);
				if (e) {
					snprintf(eb, el, "PAGES record #%u: writing %zu bytes at %p: %s", c->seq,
						 lv[v].iov_len, rv[v].iov_base, strerror(-e));
					return e;
				}
			}
		}
		nv = 0;
	}
	return 0;
}

static void *fill_worker(void *arg)
{
	struct rst_fill *f = arg;
	struct restore_args *a = f->a;
	struct img *img = a->img;
	/* a chain's ancestors may be unmapped even when the image is: always a read buffer */
	uint8_t *payload = malloc(f->max_payload + 1), *raw = malloc(f->max_raw + 1);
	char eb[512];

	if (!payload || !raw) {
		fill_fail(f, "out of memory for page buffers");
		goto out;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&f->next, 1);
		if (i >= img->nchunks || atomic_load(&f->failed))
			break;
		const struct img_chunk *c = &img->chunks[i];
		const struct img_area *ar = &img->areas[c->area_idx];
		int skip_write = f->mapped[i] || area_fill_skipped(a, ar);
		if (skip_write && (a->no_verify || f->mapped[i] == 2))
			continue;
		const uint8_t *data;
		if (img_read_chunk(c->src ? c->src : img, c, payload, raw, &data, eb, sizeof(eb))) {
			fill_fail(f, eb);
			break;
		}
		if (skip_write)
			continue;
		if (fill_write(f, c, data, eb, sizeof(eb))) {
			fill_fail(f, eb);
			break;
		}
	}
out:
	free(payload);
	free(raw);
	return NULL;
}

static int fill_start(struct restore_args *a, uint8_t *mapped)
{
	struct rst_fill *f = calloc(1, sizeof(*f));
	struct img *img = a->img;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (!f)
		return -ENOMEM;
	if (img_map(img))
		rst_warn("cannot map the image; reading it instead");
	f->a = a;
	f->mapped = mapped;
	pthread_mutex_init(&f->lock, NULL);
	for (size_t i = 0; i < img->nchunks; i++) {
		if (img->chunks[i].payload_length > f->max_payload)
			f->max_payload = img->chunks[i].payload_length;
		if ((size_t)img->chunks[i].stored_pages * img->page_size > f->max_raw)
			f->max_raw = (size_t)img->chunks[i].stored_pages * img->page_size;
	}
	f->nthreads = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (int)ncpu;
	if ((size_t)f->nthreads > img->nchunks)
		f->nthreads = img->nchunks ? (int)img->nchunks : 0;
	for (int i = 0; i < f->nthreads; i++)
		if (pthread_create(&f->th[i], NULL, fill_worker, f)) {
			f->nthreads = i;
			fill_fail(f, "cannot start page workers");
			break;
		}
	a->fill = f;
	return 0;
}

int restore_mm(struct restore_args *a)
{
	uint8_t *mapped = calloc(a->img->nchunks + 1, 1);
	int err;

	if (!mapped)
		return -ENOMEM;
	if ((err = restore_unmap_and_specials(a)) || (err = restore_areas(a)) ||
	    (a->lazy && (err = restore_lazy(a, mapped)))) {
		free(mapped);
		return err;
	}
	for (size_t i = 0; i < a->img->nchunks; i++)    /* filled (and checked) before the fork (tree.c) */
		if (a->img->areas[a->img->chunks[i].area_idx].premapped == 1)
			mapped[i] = 2;
	rst_trace(a, "areas mapped");
	return fill_start(a, mapped);
}

static int restore_mm_map(struct restore_args *a)
{
	struct img *img = a->img;
	struct prctl_mm_map mm;
	uint64_t scratch = a->tramp + 4096, mmv[11];
	uint64_t auxv[2 * 64 + 2];
	uint32_t nav = img->nauxv > 64 ? 64 : img->nauxv;
	long r;

	memcpy(mmv, img->proc.f.mm, sizeof(mmv));
	if (!mmv[0] || !mmv[1] || !mmv[6]) {
		rst_warn("PROCESS record has no memory layout fields; brk and /proc/PID/cmdline are not restored");
		return 0;
	}
	if (!mmv[5]) {          /* brk unknown: the heap's end (or start_brk) */
		mmv[5] = mmv[4];
		for (size_t i = 0; i < img->nareas; i++)
			if (img->areas[i].f.kind == CKIMG_KIND_HEAP)
				mmv[5] = img->areas[i].f.end;
	}
	memset(&mm, 0, sizeof(mm));
	mm.start_code = mmv[0];
	mm.end_code = mmv[1];
	mm.start_data = mmv[2];
	mm.end_data = mmv[3];
	mm.start_brk = mmv[4];
	mm.brk = mmv[5];
	mm.start_stack = mmv[6];
	mm.arg_start = mmv[7];
	mm.arg_end = mmv[8];
	mm.env_start = mmv[9];
	mm.env_end = mmv[10];
	mm.exe_fd = (uint32_t)a->exe_fd_child;
	if (nav) {
		memcpy(auxv, img->auxv, (size_t)nav * 16);
		auxv[2 * nav] = 0;      /* AT_NULL */
		auxv[2 * nav + 1] = 0;
		if (rst_write(a, scratch + 256, auxv, (size_t)(nav + 1) * 16))
			return rst_err(a, -EIO, "AUXV record: cannot write to the child");
		mm.auxv = (__u64 *)(uintptr_t)(scratch + 256);
		mm.auxv_size = (nav + 1) * 16;
	}
	if (rst_write(a, scratch, &mm, sizeof(mm)))
		return rst_err(a, -EIO, "PROCESS record: cannot write to the child");
	r = rst_rsys(a, &a->threads[0], SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, scratch, sizeof(mm), 0, 0);
	if (r == -EBADF || r == -EPERM || r == -EACCES) {
		/* exe replaced or not allowed: keep the rest */
		mm.exe_fd = (uint32_t)-1;
		rst_write(a, scratch, &mm, sizeof(mm));
		r = rst_rsys(a, &a->threads[0], SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, scratch, sizeof(mm), 0, 0);
		if (!r)
			rst_warn("PROCESS record: /proc/PID/exe could not be set to %s", img->proc.exe.s);
	}
	if (r < 0)
		return rst_err(a, (int)r, "PROCESS record: PR_SET_MM_MAP (code %llx-%llx brk %llx-%llx stack %llx): %s",
			       (unsigned long long)mm.start_code, (unsigned long long)mm.end_code,
			       (unsigned long long)mm.start_brk, (unsigned long long)mm.brk,
			       (unsigned long long)mm.start_stack, strerror((int)-r));
	return 0;
}

int restore_mm_wait(struct restore_args *a)
{
	struct rst_fill *f = a->fill;
	struct rst_thread *m = &a->threads[0];
	struct img *img = a->img;
	int err = 0;

	if (f) {
		for (int i = 0; i < f->nthreads; i++)
			pthread_join(f->th[i], NULL);
		f->nthreads = 0;
		if (atomic_load(&f->failed))
			return rst_err(a, -EBADMSG, "%s", f->err);
	}
	rst_trace(a, "pages filled");
	for (size_t i = 0; i < img->nareas; i++) {
		struct img_area *ar = &img->areas[i];
		uint64_t len = ar->f.end - ar->f.start;
		long r;

		if (area_is_special(ar))
			continue;
		if (ar->premapped || fill_prot(a, ar) != kprot(ar->f.prot)) {
			r = rst_rsys(a, m, SYS_mprotect, ar->f.start, len, (uint64_t)kprot(ar->f.prot), 0, 0, 0);
			if (r < 0)
				return rst_err(a, (int)r, "AREA record #%u: mprotect: %s", ar->seq, strerror((int)-r));
		}
		if (ar->f.flags & CKIMG_AREA_DONTFORK)
			rst_rsys(a, m, SYS_madvise, ar->f.start, len, MADV_DONTFORK, 0, 0, 0);
		if (ar->f.flags & CKIMG_AREA_WIPEONFORK)
			rst_rsys(a, m, SYS_madvise, ar->f.start, len, MADV_WIPEONFORK, 0, 0, 0);
		if (ar->f.flags & CKIMG_AREA_DONTDUMP)
			rst_rsys(a, m, SYS_madvise, ar->f.start, len, MADV_DONTDUMP, 0, 0, 0);
		if (ar->f.flags & CKIMG_AREA_MERGEABLE)
			rst_rsys(a, m, SYS_madvise, ar->f.start, len, MADV_MERGEABLE, 0, 0, 0);
		/* read-ahead advice: VmFlags "sr" (MADV_SEQUENTIAL), "rr" (MADV_RANDOM) */
		if (area_vmflag(ar, "sr"))
			rst_rsys(a, m, SYS_madvise, ar->f.start, len, MADV_SEQUENTIAL, 0, 0, 0);
		if (area_vmflag(ar, "rr"))
			rst_rsys(a, m, SYS_madvise, ar->f.start, len, MADV_RANDOM, 0, 0, 0);
		/* "lf": locked on fault (mlock2 MLOCK_ONFAULT), else plain mlock */
		if ((ar->f.flags & CKIMG_AREA_LOCKED) &&
		    rst_rsys(a, m, SYS_mlock2, ar->f.start, len, area_vmflag(ar, "lf") ? MLOCK_ONFAULT : 0, 0, 0, 0) < 0)
			rst_warn("AREA record #%u: mlock failed; the area is not locked", ar->seq);
	}
	/* sealed areas ("sl", mseal(2)) last: no protection or mapping change is possible after */
	for (size_t i = 0; i < img->nareas; i++) {
		struct img_area *ar = &img->areas[i];
		long r;
		if (area_is_special(ar) || !area_vmflag(ar, "sl"))
			continue;
		r = rst_rsys(a, m, SYS_mseal_, ar->f.start, ar->f.end - ar->f.start, 0, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "AREA record #%u: mseal: %s", ar->seq, strerror((int)-r));
	}
	if ((err = restore_mm_map(a)))
		return err;
	/* the aux fds (image, mapped files, exe) are not the process's (a table shared with another
	 * process still being rebuilt: only ours) */
	rst_rsys(a, m, SYS_close_range, (uint64_t)a->hi_fd, a->aux_close_end ? (uint64_t)a->aux_close_end - 1 : ~0u,
		 0, 0, 0, 0);
	return 0;
}

void rst_fill_abort(struct restore_args *a)
{
	struct rst_fill *f = a->fill;

	if (!f)
		return;
	atomic_store(&f->failed, 1);
	for (int i = 0; i < f->nthreads; i++)
		pthread_join(f->th[i], NULL);
	f->nthreads = 0;
}
