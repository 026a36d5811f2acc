/*
 * Open file descriptors, the generic half (see fds.h). Runs in the child, before its memory
 * is replaced, in four steps:
 *   1. descriptions: recorded fds grouped by open file description, each given its kind;
 *   2. stdio: fds 0-2 that no kind can bring back are taken over from ckimg-restore (like a
 *      shell job: the restored process talks to the terminal or pipes restore runs on);
 *   3. open + place: each description is opened by its kind on a scratch number above every
 *      recorded fd, then moved to each of its numbers (dup3 with the recorded FD_CLOEXEC) and
 *      given its status flags;
 *   4. post_open per description, then the objects' kept ends are closed.
 * Any failure ends the child with one message naming the record; the parent kills it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fds.h"

struct rst_fds {
	struct restore_args *a;
	struct img *img;
	int scratch;                    /* first scratch number */
	struct rst_file *files;
	size_t nfiles;
	int *file_of;                   /* per img.fds: index into files */
	struct rst_obj *objs;
	size_t nobjs, objcap;
	char *err;
	size_t errlen;
};

int rst_fds_force(struct rst_fds *s)
{
	return s->a->force;
}

struct img *rst_fds_img(struct rst_fds *s)
{
	return s->img;
}

struct restore_args *rst_fds_args(struct rst_fds *s)
{
	return s->a;
}

int rst_fds_fail(struct rst_fds *s, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->err, s->errlen, fmt, ap);
	va_end(ap);
	if (err && n > 0 && (size_t)n < s->errlen)
		snprintf(s->err + n, s->errlen - (size_t)n, ": %s", strerror(-err));
	return err ? err : -EIO;
}

struct rst_obj *rst_obj_get(struct rst_fds *s, uint32_t tag, uint64_t id)
{
	const struct rst_obj *shared = NULL;

	for (size_t i = 0; i < s->nobjs; i++)
		if (s->objs[i].tag == tag && s->objs[i].id == id)
			return &s->objs[i];
	/* a tree: an object between processes was made once, before any of them (tree.c) */
	for (size_t i = 0; i < s->a->ntree_objs; i++)
		if (s->a->tree_objs[i].tag == tag && s->a->tree_objs[i].id == id)
			shared = &s->a->tree_objs[i];
	if (s->nobjs == s->objcap) {
		size_t cap = s->objcap ? s->objcap * 2 : 16;
		struct rst_obj *q = realloc(s->objs, cap * sizeof(*q));
		if (!q)
			return NULL;
		s->objs = q;
		s->objcap = cap;
	}
	struct rst_obj *o = &s->objs[s->nobjs++];
	memset(o, 0, sizeof(*o));
	o->tag = tag;
	o->id = id;
	o->fd[0] = o->fd[1] = -1;
	for (int k = 0; shared && k < 2; k++)
		if (shared->fd[k] >= 0 && (o->fd[k] = fcntl(shared->fd[k], F_DUPFD_CLOEXEC, s->scratch)) < 0)
			return NULL;
	return o;
}

int rst_fd_scratch(struct rst_fds *s, int fd)
{
	if (fd < 0 || fd >= s->scratch)
		return fd;
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, s->scratch);
	int e = -errno;
	close(fd);
	return moved < 0 ? e : moved;
}

static int fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static const struct rst_fd_ops *pick_ops(struct rst_fds *s, const struct img_fd *d)
{
	for (size_t i = 0; rst_fd_ops_table[i]; i++)
		if (!rst_fd_ops_table[i]->match || rst_fd_ops_table[i]->match(s, d))
			return rst_fd_ops_table[i];
	return NULL;
}

/* Step 1. Fds with one non-zero FD.file_id share a description (format 1.0 records none:
 * each fd is then its own). */
static int group_descriptions(struct rst_fds *s)
{
	struct img *img = s->img;

	s->files = calloc(img->nfds + 1, sizeof(*s->files));
	s->file_of = calloc(img->nfds + 1, sizeof(*s->file_of));
	if (!s->files || !s->file_of)
		return rst_fds_fail(s, -ENOMEM, "fds");
	for (size_t i = 0; i < img->nfds; i++) {
		const struct img_fd *d = &img->fds[i];
		size_t same = SIZE_MAX;
		/* fds are in number order; a description's first fd is its lowest */
		for (size_t j = 0; d->f.file_id && j < i && same == SIZE_MAX; j++)
			if (img->fds[j].f.file_id == d->f.file_id)
				same = (size_t)s->file_of[j];
		if (same != SIZE_MAX) {
			s->file_of[i] = (int)same;
			continue;
		}
		struct rst_file *f = &s->files[s->nfiles];
		f->d = d;
		f->fd = -1;
		f->ops = pick_ops(s, f->d);
		if (!f->ops)
			return rst_fds_fail(s, -EINVAL, "FD record #%u (fd %u, %s): no handler", f->d->seq,
					    f->d->f.fd, f->d->path.s);
		s->file_of[i] = (int)s->nfiles++;
	}
	return 0;
}

/* Step 2: which of 0-2 are taken over from our own stdio. */
static void take_stdio(struct rst_fds *s, char inherit[3])
{
	struct img *img = s->img;

	for (size_t i = 0; i < img->nfds; i++) {
		const struct img_fd *d = &img->fds[i];
		const struct rst_file *f = &s->files[s->file_of[i]];
		if (d->f.fd > 2 || !fd_is_open((int)d->f.fd))
			continue;
		if (s->a->inherit_stdio || f->ops->placeholder || (d->f.state & (CKIMG_FDS_UNRESTORABLE | CKIMG_FDS_PEER_OUTSIDE)) ||
		    (d->path.s[0] == '/' && access(d->path.s, F_OK) != 0))
			inherit[d->f.fd] = 1;
	}
	for (int fd = 0; fd < s->a->hi_fd; fd++)
		if (fd > 2 || !inherit[fd])
			close(fd);
}

/* Put `fd` at number `target` with FD_CLOEXEC as recorded (fd itself stays open). */
static int place_fd(int fd, int target, int cloexec)
{
	if (fd != target)
		return dup3(fd, target, cloexec ? O_CLOEXEC : 0) < 0 ? -errno : 0;
	return fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0) < 0 ? -errno : 0;
}

/* The status flags F_SETFL can change and open() may not have set (pipes, sockets). */
static int set_status_flags(int fd, uint32_t recorded)
{
	const int mask = O_APPEND | O_NONBLOCK | O_ASYNC;
	int cur = fcntl(fd, F_GETFL);

	if (cur < 0)
		return -errno;
	if ((cur & mask) == ((int)recorded & mask))
		return 0;
	return fcntl(fd, F_SETFL, (cur & ~mask) | ((int)recorded & mask)) < 0 ? -errno : 0;
}

/* F_SETOWN_EX / F_SETSIG as recorded. The process keeps its PID, so an owner that was the
 * process (or one of its threads) is still right; with --new-pid it is mapped to the new one. */
static int set_owner(struct rst_fds *s, int fd, const struct img_fd *d)
{
	if (d->f.owner_id) {
		struct f_owner_ex ow = { .type = (int)d->f.owner_type, .pid = (pid_t)d->f.owner_id };
		if (s->a->new_pid && d->f.owner_id == s->img->proc.f.pid)
			ow.pid = getpid();
		if (fcntl(fd, F_SETOWN_EX, &ow) < 0 && errno != ESRCH)
			return rst_fds_fail(s, -errno, "F_SETOWN_EX %u", d->f.owner_id);
	}
	if (d->f.owner_signal && fcntl(fd, F_SETSIG, (int)d->f.owner_signal) < 0)
		return rst_fds_fail(s, -errno, "F_SETSIG %u", d->f.owner_signal);
	return 0;
}

/* Step 3 for one description. */
static int open_and_place(struct rst_fds *s, size_t fi, const char inherit[3])
{
	struct img *img = s->img;
	struct rst_file *f = &s->files[fi];
	const struct img_fd *d = f->d;
	int err, fd;

	if (d->f.fd <= 2 && inherit[d->f.fd])
		return fcntl((int)d->f.fd, F_SETFD, (d->f.fd_flags & CKIMG_FD_CLOEXEC) ? FD_CLOEXEC : 0) < 0 ?
			rst_fds_fail(s, -errno, "FD record #%u (fd %u)", d->seq, d->f.fd) : 0;
	for (size_t i = 0; d->f.file_id && i < s->a->ninh && !f->inherited; i++)
		if (s->a->inh_id[i] == d->f.file_id)
			f->inherited = 1 + i;
	fd = f->inherited ? fcntl(s->a->inh_fd[f->inherited - 1], F_DUPFD_CLOEXEC, s->scratch) : f->ops->open(s, f);
	if (fd < 0 && f->inherited)
		rst_fds_fail(s, -errno, "the description shared with the parent process");
	if (fd < 0)
		goto named;
	f->fd = fd = rst_fd_scratch(s, fd);
	if (fd < 0) {
		err = rst_fds_fail(s, fd, "cannot move to a scratch number");
		goto named;
	}
	if ((err = set_owner(s, fd, d)))
		goto named;
	if ((err = set_status_flags(fd, d->f.open_flags))) {
		rst_fds_fail(s, err, "status flags %#o", d->f.open_flags);
		goto named;
	}
	for (size_t i = 0; i < img->nfds; i++) {
		const struct img_fd *e = &img->fds[i];
		if ((size_t)s->file_of[i] != fi)
			continue;
		if ((err = place_fd(fd, (int)e->f.fd, e->f.fd_flags & CKIMG_FD_CLOEXEC))) {
			rst_fds_fail(s, err, "cannot place fd %u", e->f.fd);
			goto named;
		}
	}
	return 0;
named: {
		/* prefix the kind's reason with the record it is about */
		char why[512];
		snprintf(why, sizeof(why), "%s", s->err);
		snprintf(s->err, s->errlen, "FD record #%u (fd %u, %s, %s): %s", d->seq, d->f.fd, f->ops->name,
			 d->path.s, why);
		return fd < 0 ? fd : -EIO;
	}
}

int restore_fds_check(struct restore_args *a)
{
	struct img *img = a->img;
	char why[512];

	for (size_t i = 0; i < img->nfdrecs; i++) {
		const struct img_fdrec *r = &img->fdrecs[i];
		for (size_t k = 0; rst_fd_records[k].check; k++) {
			if (rst_fd_records[k].type != r->type)
				continue;
			if (rst_fd_records[k].check(r, why, sizeof(why)))
				return rst_err(a, -EBADMSG, "BAD_FIELD: %s #%u at offset %llu (fd %u): %s",
					       rst_fd_records[k].name, r->seq, (unsigned long long)r->off, r->key32, why);
		}
		/* types of a later minor version that no row knows are skipped (FORMAT.md 2) */
	}
	for (size_t i = 0; i < img->nfds; i++) {
		const struct img_fd *d = &img->fds[i];
		if (!(d->f.state & (CKIMG_FDS_UNRESTORABLE | CKIMG_FDS_PEER_OUTSIDE)) || d->f.fd <= 2)
			continue;       /* 0-2 are taken over from our stdio */
		if (!(d->f.state & CKIMG_FDS_UNRESTORABLE)) {
			rst_warn("fd %u (%s): %s", d->f.fd, d->path.s, d->note.s);
			continue;
		}
		if (!a->force)
			return rst_err(a, -EOPNOTSUPP, "FD record #%u (fd %u, %s) cannot be restored: %s "
				       "(--force restores the rest and keeps this number on a placeholder)",
				       d->seq, d->f.fd, d->path.s, d->note.s);
		rst_warn("fd %u (%s) not brought back: %s", d->f.fd, d->path.s, d->note.s);
	}
	return 0;
}

size_t restore_fds_scratch_need(const struct img *img)
{
	/* an open description, plus two kept ends per shared object */
	return 16 + 3 * img->nfds;
}

int restore_fds_child(struct restore_args *a, char *err, size_t errlen)
{
	struct rst_fds s = { .a = a, .img = a->img, .err = err, .errlen = errlen };
	char inherit[3] = { 0, 0, 0 };
	int ret;

	s.scratch = a->hi_fd + 4 + (int)a->img->nfiles + (int)a->img->ncontents + 16;
	if ((ret = group_descriptions(&s)))
		goto out;
	take_stdio(&s, inherit);
	for (size_t i = 0; i < s.nfiles; i++) {
		if ((ret = open_and_place(&s, i, inherit)))
			goto out;
		/* a description at its numbers no longer needs its scratch copy */
		if (s.files[i].fd >= 0 && (!s.files[i].ops->post_open || s.files[i].inherited)) {
			close(s.files[i].fd);
			s.files[i].fd = -1;
		}
	}
	for (size_t i = 0; i < s.nfiles; i++) {
		struct rst_file *f = &s.files[i];
		if (f->fd >= 0 && !f->inherited && f->ops->post_open && (ret = f->ops->post_open(&s, f))) {
			char why[512];
			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, errlen, "FD record #%u (fd %u, %s): %s", f->d->seq, f->d->f.fd, f->ops->name, why);
			goto out;
		}
	}
	ret = restore_locks_child(&s);
out:
	for (size_t i = 0; i < s.nfiles; i++)
		if (s.files && s.files[i].fd >= 0)
			close(s.files[i].fd);
	for (size_t i = 0; i < s.nobjs; i++)
		for (int k = 0; k < 2; k++)
			if (s.objs[i].fd[k] >= 0)
				close(s.objs[i].fd[k]);
	free(s.objs);
	free(s.files);
	free(s.file_of);
	return ret;
}
