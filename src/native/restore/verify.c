/*
 * restore_check_files: before anything is built, every file the image maps must still be the
 * file that was captured (MAPPED_FILE: dev, inode, size, mtime; when those differ but the size
 * is the same and the image has its SHA-256, the content decides: a copied or reinstalled
 * identical library is fine). A changed or missing file is refused, naming it, unless --force
 * and the image holds every page of every area that maps it (the file is then not needed: the
 * areas become anonymous memory filled from the image).
 *
 * Page checksums are verified by the page workers (mm.c) while the process is rebuilt, and
 * always before it is allowed to run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "crc32.h"
#include "restore.h"
#include "sha256.h"

/* Does the image hold every page of every area that maps file index fi? */
static int pages_complete(const struct img *img, int fi)
{
	for (size_t i = 0; i < img->nareas; i++) {
		const struct img_area *ar = &img->areas[i];
		uint64_t want, have = 0;
		if (ar->file_idx != fi)
			continue;
		want = (ar->f.end - ar->f.start) / img->page_size;
		for (size_t c = 0; c < img->nchunks; c++)
			if (img->chunks[c].area_idx == (int)i)
				have += img->chunks[c].stored_pages;
		if (have < want)
			return 0;
	}
	return 1;
}

static const char *file_problem(const struct img_file *f, char *why, size_t wl)
{
	struct stat st;
	uint64_t mt;
	int fd;
	uint8_t sum[32];

	if (f->f.flags & CKIMG_FILE_DELETED)
		return "was already deleted at capture";
	if (!strncmp(f->path.s, "anon_inode:", 11))
		return "is the memory of a kernel object (no file), which is not brought back";
	if (stat(f->path.s, &st) < 0)
		return "is missing";
	mt = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
	if (major(st.st_dev) == f->f.dev_major && minor(st.st_dev) == f->f.dev_minor &&
	    st.st_ino == f->f.inode && (uint64_t)st.st_size == f->f.size && mt == f->f.mtime_ns)
		return NULL;
	if ((uint64_t)st.st_size != f->f.size) {
		snprintf(why, wl, "changed since the capture (size %llu, was %llu)",
			 (unsigned long long)st.st_size, (unsigned long long)f->f.size);
		return why;
	}
	if (!(f->f.flags & CKIMG_FILE_SHA256))
		return "changed since the capture (inode or mtime differ, no SHA-256 in the image)";
	fd = open(f->path.s, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return "cannot be read";
	if (sha256_fd(fd, sum) < 0) {
		close(fd);
		return "cannot be read";
	}
	close(fd);
	if (memcmp(sum, f->f.sha256, 32))
		return "changed since the capture (SHA-256 differs)";
	return NULL;            /* same content, another inode: fine */
}

int restore_check_files(struct restore_args *a)
{
	struct img *img = a->img;
	struct utsname u;
	char why[160];

	a->file_ok = calloc(img->nfiles + 1, sizeof(int));
	a->file_fd_child = calloc(img->nfiles + 1, sizeof(int));
	if (!a->file_ok || !a->file_fd_child)
		return -ENOMEM;
	for (size_t i = 0; i < img->nfiles; i++) {
		const struct img_file *f = &img->files[i];
		const char *problem;
		int used = 0;

		a->file_fd_child[i] = -1;
		if (img_content_for_file(img, f) >= 0) {
			/* a deleted file or memfd the image holds: mapped from its re-created copy */
			a->file_ok[i] = 1;
			a->file_fd_child[i] = 0;
			continue;
		}
		for (size_t k = 0; k < img->nareas; k++)
			used |= img->areas[k].file_idx == (int)i && !(img->areas[k].f.flags & CKIMG_AREA_DELETED);
		if (!used)
			continue;
		problem = file_problem(f, why, sizeof(why));
		if (!problem) {
			a->file_ok[i] = 1;
			a->file_fd_child[i] = 0;        /* number assigned in restore_fork */
			continue;
		}
		if (!pages_complete(img, (int)i))
			return rst_err(a, -ESTALE, "MAPPED_FILE record #%u: %s %s%s", f->seq, f->path.s, problem,
				       a->force ? "; the image does not hold all its pages, so --force cannot help"
				                : "; refusing to restore (--force uses the image's copy when it holds every page)");
		if (!a->force)
			return rst_err(a, -ESTALE, "MAPPED_FILE record #%u: %s %s; refusing to restore (--force "
				       "restores its areas from the pages in the image)", f->seq, f->path.s, problem);
		rst_warn("MAPPED_FILE record #%u: %s %s; its areas are restored from the image's pages",
			 f->seq, f->path.s, problem);
	}
	if (uname(&u) == 0 && strcmp(u.release, a->img->proc.kernel.s))
		rst_warn("the image was captured on kernel %s, this is %s", a->img->proc.kernel.s, u.release);
	return 0;
}

/* ---- reader rules the restorer keeps before touching anything (FORMAT.md "Reader obligations") ---- */

static int rule_fail(struct img *img, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rule_fail(struct img *img, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(img->err, sizeof(img->err), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* R8: the index entry of record `seq` carries exactly these keys. */
static int keys_agree(struct img *img, uint32_t seq, uint32_t key32, uint64_t key64, uint32_t aux_a, uint32_t aux_b)
{
	if (seq >= img->nents)
		return rule_fail(img, "BAD_INDEX: record #%u has no index entry (rule R8)", seq);
	const struct ckimg_index_entry *e = &img->ents[seq];
	if (e->key32 == key32 && e->key64 == key64 && e->aux_a == aux_a && e->aux_b == aux_b)
		return 0;
	return rule_fail(img, "BAD_INDEX: %s record #%u at offset %llu: index keys (%u, 0x%llx, %u, %u) disagree with the "
			 "record (%u, 0x%llx, %u, %u) (rule R8)", img_type_name(e->type), seq,
			 (unsigned long long)e->offset, e->key32, (unsigned long long)e->key64, e->aux_a, e->aux_b,
			 key32, (unsigned long long)key64, aux_a, aux_b);
}

static int unkeyed_type(uint16_t t)
{
	return (t >= CKIMG_REC_PROCESS && t <= CKIMG_REC_SIGACTIONS) || t == CKIMG_REC_TIMERS ||
	       t == CKIMG_REC_PROCESS_STATE || t == CKIMG_REC_SECCOMP || t == CKIMG_REC_PARENT ||
	       t == CKIMG_REC_SIGQUEUE;
}

static int page_stored(const struct img *img, int area_idx, uint64_t page)
{
	for (size_t i = 0; i < img->nchunks; i++) {
		const struct img_chunk *c = &img->chunks[i];
		if (c->src || c->area_idx != area_idx || page < c->first_page ||
		    page >= c->first_page + (uint64_t)c->span_pages * img->page_size)
			continue;
		uint64_t b = (page - c->first_page) / img->page_size;
		return (c->bitmap[b / 8] >> (b % 8)) & 1;
	}
	return 0;
}

/*
 * UNREADABLE_PAGES (U1, U2): the restorer does not use the ranges (their pages are simply not
 * stored), but a record naming an area that is not UNREADABLE, ranges outside their area or
 * covering a stored page mean the image is not what its writer meant: refused.
 */
static int check_unreadable(struct img *img)
{
	uint32_t *seen = calloc(img->nareas + 1, sizeof(*seen));
	int err = 0;

	if (!seen)
		return -ENOMEM;
	for (uint64_t i = 0; !err && i < img->nents; i++) {
		const struct ckimg_index_entry *e = &img->ents[i];
		struct ckimg_unreadable_fixed f;
		if (e->type != CKIMG_REC_UNREADABLE_PAGES || (img->tree && img->owners[i] != img->owner))
			continue;
		unsigned long long off = (unsigned long long)e->offset;
		struct ckimg_record_header rh;
		uint8_t *pl = e->payload_length <= CKIMG_MAX_METADATA_PAYLOAD ? malloc(e->payload_length + 1) : NULL;
		if (!pl) {
			err = rule_fail(img, "RECORD_TOO_LARGE: UNREADABLE_PAGES record #%llu at offset %llu (rule R7)",
					(unsigned long long)i, off);
			break;
		}
		if (pread(img->fd, &rh, sizeof(rh), (off_t)e->offset) != (ssize_t)sizeof(rh) ||
		    pread(img->fd, pl, e->payload_length, (off_t)(e->offset + CKIMG_RECORD_HDR_SIZE)) != (ssize_t)e->payload_length)
			err = rule_fail(img, "IO: UNREADABLE_PAGES record #%llu at offset %llu cannot be read", (unsigned long long)i, off);
		else if (ck_crc32(0, pl, e->payload_length) != rh.payload_crc)
			err = rule_fail(img, "BAD_CHECKSUM: UNREADABLE_PAGES record #%llu at offset %llu: payload CRC mismatch (rule R4)",
					(unsigned long long)i, off);
		else if (e->payload_length < sizeof(f) || (memcpy(&f, pl, sizeof(f)), f.fixed_size < sizeof(f)) ||
			 f.fixed_size > e->payload_length || f.entry_size < 16 ||
			 (uint64_t)f.count * f.entry_size > e->payload_length - f.fixed_size)
			err = rule_fail(img, "BAD_FIELD: UNREADABLE_PAGES record #%llu at offset %llu: sizes do not fit the payload (rule P2)",
					(unsigned long long)i, off);
		else if (e->key32 != f.area_id || e->key64 || e->aux_a || e->aux_b)
			err = keys_agree(img, (uint32_t)i, f.area_id, 0, 0, 0);
		else {
			int ai = img_area_by_id(img, f.area_id);
			if (ai < 0 || !(img->areas[ai].f.flags & CKIMG_AREA_UNREADABLE) || seen[ai]++)
				err = rule_fail(img, "BAD_FIELD: UNREADABLE_PAGES record #%llu at offset %llu: area %u is %s (rule U1)",
						(unsigned long long)i, off, f.area_id, ai < 0 ? "not in the image" :
						seen[ai] > 1 ? "named twice" : "not flagged UNREADABLE");
			for (uint32_t k = 0; !err && k < f.count; k++) {
				uint64_t r[2], prev = k ? 0 : img->areas[ai].f.start;
				memcpy(r, pl + f.fixed_size + (size_t)k * f.entry_size, sizeof(r));
				if (k)
					memcpy(&prev, pl + f.fixed_size + (size_t)(k - 1) * f.entry_size + 8, 8);
				int bad = (r[0] | r[1]) & (img->page_size - 1) || r[1] <= r[0] || r[0] < prev ||
					  r[1] > img->areas[ai].f.end;
				for (uint64_t p = r[0]; !bad && p < r[1]; p += img->page_size)
					bad = page_stored(img, ai, p);
				if (bad)
					err = rule_fail(img, "BAD_FIELD: UNREADABLE_PAGES record #%llu at offset %llu: range %llx-%llx is "
							"not page-aligned, sorted, inside area %u and unstored (rule U2)",
							(unsigned long long)i, off, (unsigned long long)r[0],
							(unsigned long long)r[1], f.area_id);
			}
		}
		free(pl);
	}
	free(seen);
	return err;
}

/*
 * Index keys against the records (R8), PROCESS thread_count against the THREAD records (C4)
 * and the sizes of each chunk (G6): a damaged image is refused here, with one line naming the
 * rule, the record and its offset, before any process is made.
 */
int img_check_rules(struct img *img)
{
	int err = 0;

	if (img->proc.f.thread_count != img->nthreads)
		return rule_fail(img, "BAD_FIELD: PROCESS record: thread_count %u, the image holds %zu THREAD records (rule C4)",
				 img->proc.f.thread_count, img->nthreads);
	for (uint64_t i = 0; !err && i < img->nents; i++)
		if (unkeyed_type(img->ents[i].type) && (!img->tree || img->owners[i] == img->owner))
			err = keys_agree(img, (uint32_t)i, 0, 0, 0, 0);
	for (size_t i = 0; !err && i < img->nthreads; i++)
		err = keys_agree(img, img->threads[i].seq, img->threads[i].f.tid, 0, 0, 0);
	for (size_t i = 0; !err && i < img->nareas; i++)
		err = keys_agree(img, img->areas[i].seq, img->areas[i].f.area_id, img->areas[i].f.start, 0, 0);
	for (size_t i = 0; !err && i < img->nfiles; i++)
		err = keys_agree(img, img->files[i].seq, img->files[i].f.file_id, 0, 0, 0);
	for (size_t i = 0; !err && i < img->nfds; i++)
		err = keys_agree(img, img->fds[i].seq, img->fds[i].f.fd, 0, 0, 0);
	for (size_t i = 0; !err && i < img->nchunks; i++) {
		const struct img_chunk *c = &img->chunks[i];
		if (c->src)
			continue;       /* an ancestor's chunk: checked when that image was opened */
		err = keys_agree(img, c->seq, c->area_id, c->first_page, c->span_pages, c->stored_pages);
		if (!err && c->codec != CKIMG_CODEC_NONE && (uint64_t)c->stored_size > (uint64_t)c->stored_pages * img->page_size)
			err = rule_fail(img, "BAD_FIELD: PAGES record #%u at offset %llu: stored_size %u exceeds the raw size "
					"of %u pages (rule G6)", c->seq, (unsigned long long)c->rec_offset, c->stored_size,
					c->stored_pages);
	}
	return err ? err : check_unreadable(img);
}
