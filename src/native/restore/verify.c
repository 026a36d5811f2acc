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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

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
