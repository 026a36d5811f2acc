/*
 * inotify fds (FORMAT.md 4.25), made again in the new child: inotify_init1, then each watch
 * added by path, in increasing wd order. The kernel hands out watch descriptors cyclically
 * (each new watch gets the next number), so a watch whose number came out lower than
 * recorded is removed and added again until it gets its own; the IN_IGNORED events those
 * removals queue are read off before the process sees the fd. A path that now names another
 * inode is said (the watch follows the path, as the program would after a rename). A watch on
 * a deleted file the image holds (FILE_CONTENT DELETED, same dev and inode) goes to the file
 * restore made again for it.
 */
#include "fds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WD (1u << 20)
/* what inotify_add_watch accepts: events, IN_ONESHOT, IN_EXCL_UNLINK (IN_MASK_* are requests) */
#define WATCH_BITS (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK)

struct watch {
	struct ckimg_inotify_entry e;
	char path[4096];
};

/* Watch i of the record (entries are walked in order: the paths make them variable). */
static int next_watch(const struct img_fdrec *r, const struct ckimg_inotify_fixed *x, uint64_t *at, struct watch *w)
{
	if (*at + x->entry_size > r->len)
		return -EBADMSG;
	memcpy(&w->e, r->p + *at, sizeof(w->e));
	*at += x->entry_size;
	if (w->e.path_len == 0 || w->e.path_len >= sizeof(w->path) || *at + w->e.path_len > r->len)
		return -EBADMSG;
	memcpy(w->path, r->p + *at, w->e.path_len);
	w->path[w->e.path_len] = 0;
	*at += w->e.path_len;
	return 0;
}

int inotify_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_inotify_fixed x;
	struct watch w;
	uint32_t last = 0;

	if (r->len < sizeof(x))
		return snprintf(err, errlen, "payload shorter than its FIXED part"), -EBADMSG;
	memcpy(&x, r->p, sizeof(x));
	if (x.fixed_size < sizeof(x) || x.fixed_size > r->len)
		return snprintf(err, errlen, "fixed_size %u", x.fixed_size), -EBADMSG;
	if (x.entry_size < sizeof(struct ckimg_inotify_entry) || x.entry_size > 4096)
		return snprintf(err, errlen, "entry_size %u", x.entry_size), -EBADMSG;
	uint64_t at = x.fixed_size;
	for (uint32_t i = 0; i < x.count; i++) {
		if (next_watch(r, &x, &at, &w))
			return snprintf(err, errlen, "watch %u runs past the payload or has no path", i), -EBADMSG;
		if (w.e.wd == 0 || w.e.wd > MAX_WD || w.e.wd <= last)
			return snprintf(err, errlen, "watch %u: wd %u (watches go in increasing wd order, 1..%u)", i, w.e.wd, MAX_WD),
			       -EBADMSG;
		if (!(w.e.mask & IN_ALL_EVENTS) || (w.e.mask & ~WATCH_BITS))
			return snprintf(err, errlen, "watch %u: mask %#x", i, w.e.mask), -EBADMSG;
		last = w.e.wd;
	}
	return 0;
}

static const struct img_fdrec *inotify_rec(struct rst_fds *s, const struct img_fd *d)
{
	if (d->f.kind != CKIMG_FD_ANON_INODE || strcmp(d->path.s, "anon_inode:inotify"))
		return NULL;
	return img_fdrec_by_fd(rst_fds_img(s), CKIMG_REC_INOTIFY, d->f.fd);
}

static int inotify_match(struct rst_fds *s, const struct img_fd *d) { return inotify_rec(s, d) != NULL; }

/* The FILE_CONTENT (kind DELETED) of the watched inode, if the image holds it: the watch was
 * on a deleted file the process had open, restore watches the file it made again. -1 if none. */
static int watched_content(const struct img *img, const struct watch *w)
{
	for (size_t i = 0; i < img->ncontents; i++) {
		const struct ckimg_file_content_fixed *c = &img->contents[i].f;
		if (c->kind == CKIMG_CONTENT_DELETED && c->inode == w->e.inode && c->dev_major == w->e.dev >> 20 &&
		    c->dev_minor == (w->e.dev & 0xfffff))
			return (int)i;
	}
	return -1;
}

/* Add w's watch so that it gets exactly its recorded wd. */
static int add_watch(struct rst_fds *s, int fd, const struct watch *w)
{
	int ci = watched_content(rst_fds_img(s), w);
	char held[64];
	const char *path = w->path;
	uint32_t follow = IN_DONT_FOLLOW;

	if (ci >= 0) {                          /* the re-created file, through its magic link */
		snprintf(held, sizeof(held), "/proc/self/fd/%d", rst_fds_args(s)->content_fd_base + ci);
		path = held;
		follow = 0;
	}
	for (;;) {
		int got = inotify_add_watch(fd, path, (w->e.mask & WATCH_BITS) | follow);
		if (got < 0)
			return rst_fds_fail(s, -errno, "inotify watch %u on %s", w->e.wd, w->path);
		if ((uint32_t)got == w->e.wd)
			return 0;
		/* lower: step the cyclic counter on; higher (or the same inode twice): cannot be had */
		if ((uint32_t)got > w->e.wd || inotify_rm_watch(fd, got) < 0)
			return rst_fds_fail(s, -EEXIST, "inotify watch %u on %s came back as %d", w->e.wd, w->path, got);
	}
}

static int inotify_open(struct rst_fds *s, struct rst_file *f)
{
	const struct img_fdrec *r = inotify_rec(s, f->d);
	struct ckimg_inotify_fixed x;
	struct watch *w = malloc(sizeof(*w));
	char drain[4096];
	int fd, err = 0;

	if (!w)
		return rst_fds_fail(s, -ENOMEM, "inotify");
	memcpy(&x, r->p, sizeof(x));
	fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);     /* status flags are set from the FD record later */
	if (fd < 0) {
		free(w);
		return rst_fds_fail(s, -errno, "inotify_init1");
	}
	uint64_t at = x.fixed_size;
	for (uint32_t i = 0; i < x.count && !err; i++) {
		struct stat st;
		next_watch(r, &x, &at, w);              /* checked before the fork */
		err = add_watch(s, fd, w);
		if (!err && watched_content(rst_fds_img(s), w) < 0 && lstat(w->path, &st) == 0 &&
		    (uint64_t)st.st_ino != w->e.inode)
			rst_warn("inotify watch %u: %s is another file than at capture (inode %llu, was %llu)", w->e.wd, w->path,
				 (unsigned long long)st.st_ino, (unsigned long long)w->e.inode);
	}
	while (!err && read(fd, drain, sizeof(drain)) > 0)
		;                                       /* IN_IGNORED of the stepping watches */
	free(w);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

const struct rst_fd_ops inotify_ops = { .name = "inotify", .match = inotify_match, .open = inotify_open };
