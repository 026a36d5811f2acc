/*
 * Open file descriptors, the generic half (see fds.h): enumerate /proc/PID/fd, fill each FD
 * record from stat and fdinfo (proc(5)), find descriptors that share one open file
 * description (kcmp(2) KCMP_FILE), pick each one's kind from fd_ops_table and let the kind
 * record its state once per description. Records are written by fds_write() and whatever a
 * kind holds on the target is undone by fds_release().
 */
#include "fds.h"
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct fd_rec {
	uint16_t type;
	uint32_t key32;
	uint64_t key64;
	struct buf b;
};

struct cap_fdtab {
	struct cap_fd *v;
	size_t n;
	struct fd_rec *recs;
	size_t nrecs, cap;
	int pidfd;                      /* -1 until fd_local() needs it */
};

/* FD.kind from the fd's stat and link text. */
static uint32_t fd_kind(const struct stat *st, const char *link)
{
	if (!strncmp(link, "anon_inode:", 11))
		return CKIMG_FD_ANON_INODE;
	switch (st->st_mode & S_IFMT) {
	case S_IFREG: return CKIMG_FD_REGULAR;
	case S_IFDIR: return CKIMG_FD_DIRECTORY;
	case S_IFBLK: return CKIMG_FD_BLOCKDEV;
	case S_IFIFO: return CKIMG_FD_FIFO;
	case S_IFSOCK: return CKIMG_FD_SOCKET;
	case S_IFCHR: {
		unsigned maj = major(st->st_rdev), min = minor(st->st_rdev);
		/* devices.txt: 4 tty/ttyS, 5:0 /dev/tty, 5:1 console, 136-143 pts */
		if (maj == 4 || (maj == 5 && min <= 1) || (maj >= 136 && maj <= 143))
			return CKIMG_FD_TTY;
		return CKIMG_FD_CHARDEV;
	}
	}
	return CKIMG_FD_UNKNOWN;
}

/* stat, link and fdinfo of one fd: everything the generic FD record holds. */
static int read_fd(struct capture *c, struct cap_fd *d)
{
	char path[96];
	unsigned long long v;
	int err;

	d->f.fixed_size = sizeof(d->f);
	d->f.fd = (uint32_t)d->fd;
	d->local = -1;
	d->file = d;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", c->pid, d->fd);
	err = read_link(path, &d->link);
	if (err)
		return err;
	if (stat(path, &d->st) == 0) {
		d->have_stat = 1;
		d->f.mode = d->st.st_mode;
		d->f.dev_major = major(d->st.st_dev);
		d->f.dev_minor = minor(d->st.st_dev);
		d->f.inode = d->st.st_ino;
		d->f.rdev_major = major(d->st.st_rdev);
		d->f.rdev_minor = minor(d->st.st_rdev);
		d->f.kind = fd_kind(&d->st, d->link);
	} else if (!strncmp(d->link, "anon_inode:", 11)) {
		d->f.kind = CKIMG_FD_ANON_INODE;
	}
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", c->pid, d->fd);
	if (read_file(path, &d->fdinfo, NULL) == 0) {
		if (proc_status_value(d->fdinfo, "pos", 10, &v) == 0)
			d->f.pos = v;
		if (proc_status_value(d->fdinfo, "flags", 8, &v) == 0) {
			d->f.open_flags = (uint32_t)v;
			d->f.fd_flags = (v & O_CLOEXEC) ? CKIMG_FD_CLOEXEC : 0;
		}
	}
	return 0;
}

static int cmp_fd(const void *a, const void *b)
{
	return ((const struct cap_fd *)a)->fd - ((const struct cap_fd *)b)->fd;
}

static int list_fds(struct capture *c, struct cap_fdtab *t)
{
	char path[64];
	size_t cap = 0;
	struct dirent *de;
	int err = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", c->pid);
	DIR *dir = opendir(path);
	if (!dir)
		return cap_fail(-errno, "open %s", path);
	while ((de = readdir(dir))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (t->n == cap) {
			cap = cap ? cap * 2 : 64;
			struct cap_fd *q = realloc(t->v, cap * sizeof(*q));
			if (!q) {
				err = -ENOMEM;
				break;
			}
			t->v = q;
		}
		struct cap_fd *d = &t->v[t->n];
		memset(d, 0, sizeof(*d));
		d->fd = atoi(de->d_name);
		int e = read_fd(c, d);
		if (e == -ENOENT) {     /* closed meanwhile (another process sharing the table) */
			free(d->link);
			free(d->fdinfo);
			continue;
		}
		t->n++;
		if (e) {
			err = cap_fail(e, "fd %d", d->fd);
			break;
		}
	}
	closedir(dir);
	if (!err)
		qsort(t->v, t->n, sizeof(*t->v), cmp_fd);
	for (size_t i = 0; i < t->n; i++) {
		t->v[i].file = &t->v[i];
		t->v[i].local = -1;
	}
	return err;
}

/*
 * Descriptors sharing one open file description (dup, fork inheritance, SCM_RIGHTS): same
 * inode, flags and position make candidates; kcmp(2) KCMP_FILE decides, and since it also
 * orders descriptions, candidates sort in O(n log n) even with a thousand /dev/null opens.
 * Each fd points at the lowest fd of its description, where the kind's dump runs.
 */
static pid_t kcmp_pid;

static int kcmp_files(const struct cap_fd *a, const struct cap_fd *b)
{
	long r = syscall(SYS_kcmp, kcmp_pid, kcmp_pid, KCMP_FILE, a->fd, b->fd);
	return r == 1 ? -1 : r == 2 ? 1 : 0;    /* 0 also when kcmp is unavailable */
}

static int cmp_candidates(const void *x, const void *y)
{
	const struct cap_fd *a = *(struct cap_fd *const *)x, *b = *(struct cap_fd *const *)y;
	uint32_t fa = a->f.open_flags & ~O_CLOEXEC, fb = b->f.open_flags & ~O_CLOEXEC;

#define CMP(u, v) do { if ((u) != (v)) return (u) < (v) ? -1 : 1; } while (0)
	CMP(a->f.dev_major, b->f.dev_major);
	CMP(a->f.dev_minor, b->f.dev_minor);
	CMP(a->f.inode, b->f.inode);
	CMP(a->f.pos, b->f.pos);
	CMP(fa, fb);
#undef CMP
	int k = kcmp_files(a, b);
	return k ? k : a->fd - b->fd;
}

static int same_candidate(const struct cap_fd *a, const struct cap_fd *b)
{
	return a->f.dev_major == b->f.dev_major && a->f.dev_minor == b->f.dev_minor &&
	       a->f.inode == b->f.inode && a->f.pos == b->f.pos &&
	       (a->f.open_flags & ~O_CLOEXEC) == (b->f.open_flags & ~O_CLOEXEC);
}

static int group_descriptions(struct capture *c, struct cap_fdtab *t)
{
	struct cap_fd **v = malloc((t->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++)
		v[i] = &t->v[i];
	kcmp_pid = c->pid;
	qsort(v, t->n, sizeof(*v), cmp_candidates);
	/* runs of one description are adjacent, lowest fd first */
	for (size_t i = 1; i < t->n; i++)
		if (same_candidate(v[i - 1], v[i]) &&
		    syscall(SYS_kcmp, c->pid, c->pid, KCMP_FILE, v[i - 1]->fd, v[i]->fd) == 0)
			v[i]->file = v[i - 1]->file;
	free(v);
	return 0;
}

/* F_GETOWN_EX / F_GETSIG of a description (fcntl(2)): who gets SIGIO/SIGURG, and which signal. */
static void read_owner(struct capture *c, struct cap_fd *d)
{
	struct f_owner_ex ow = { 0, 0 };
	int fd = fd_local(c, d), sig;

	if (fd < 0)
		return;
	if (fcntl(fd, F_GETOWN_EX, &ow) == 0 && ow.pid > 0) {
		d->f.owner_type = (uint32_t)ow.type;
		d->f.owner_id = (uint32_t)ow.pid;
	}
	sig = fcntl(fd, F_GETSIG);
	if (sig > 0)
		d->f.owner_signal = (uint32_t)sig;
}

static int fd_note(struct capture *c, struct cap_fd *d, uint32_t bit, const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	d->f.state |= bit;
	free(d->note);
	d->note = strdup(buf);
	if (d->fd > 2)
		fprintf(stderr, "ckimg-capture: warning: fd %d (%s): %s\n", d->fd, d->link, buf);
	return d->note ? 0 : -ENOMEM;
}

int fd_cannot(struct capture *c, struct cap_fd *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int err = fd_note(c, d, CKIMG_FDS_UNRESTORABLE, fmt, ap);
	va_end(ap);
	return err;
}

int fd_peer_outside(struct capture *c, struct cap_fd *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int err = fd_note(c, d, CKIMG_FDS_PEER_OUTSIDE, fmt, ap);
	va_end(ap);
	return err;
}

static const struct fd_ops *pick_ops(struct capture *c, struct cap_fd *d)
{
	for (size_t i = 0; fd_ops_table[i]; i++)
		if (!fd_ops_table[i]->match || fd_ops_table[i]->match(c, d))
			return fd_ops_table[i];
	return NULL;
}

int collect_fds(struct capture *c)
{
	struct cap_fdtab *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return -ENOMEM;
	t->pidfd = -1;
	c->fdt = t;
	err = list_fds(c, t);
	if (!err)
		err = group_descriptions(c, t);
	for (size_t i = 0, next_id = 1; !err && i < t->n; i++) {
		struct cap_fd *d = &t->v[i];
		if (d->file == d) {
			/* in a tree, ids are tree-wide: a description shared with an earlier process keeps its id */
			d->f.file_id = c->tree ? tree_file_id(c, d->fd) : (uint32_t)next_id++;
			read_owner(c, d);
		} else {
			d->f.file_id = d->file->f.file_id;
			d->f.owner_type = d->file->f.owner_type;
			d->f.owner_id = d->file->f.owner_id;
			d->f.owner_signal = d->file->f.owner_signal;
		}
		d->ops = d->file == d ? pick_ops(c, d) : d->file->ops;
		if (!d->ops)
			err = cap_fail(-EINVAL, "fd %d (%s): no handler", d->fd, d->link);
	}
	for (size_t i = 0; !err && i < t->n; i++) {
		struct cap_fd *d = &t->v[i];
		if (d->file == d && d->ops->dump && (err = d->ops->dump(c, d)))
			cap_fail(err, "fd %d (%s, %s)", d->fd, d->link, d->ops->name);
	}
	if (!err)
		err = collect_locks(c);
	c->nfds = (uint32_t)t->n;
	return err;
}

struct cap_fd *fd_all(struct capture *c, size_t *n)
{
	*n = c->fdt->n;
	return c->fdt->v;
}

int fd_local(struct capture *c, struct cap_fd *d)
{
	struct cap_fdtab *t = c->fdt;

	d = d->file;
	if (d->local >= 0)
		return d->local;
	if (t->pidfd < 0) {
		t->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
		if (t->pidfd < 0)
			return -errno;
	}
	d->local = (int)syscall(SYS_pidfd_getfd, t->pidfd, d->fd, 0);
	return d->local < 0 ? -errno : d->local;
}

int fd_socket_family(struct capture *c, struct cap_fd *d)
{
	int fd = fd_local(c, d), v = 0;
	socklen_t l = sizeof(v);

	if (fd < 0)
		return fd;
	return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) < 0 ? -errno : v;
}

int fd_emit(struct capture *c, uint16_t type, uint32_t key32, uint64_t key64, const struct buf *payload)
{
	struct cap_fdtab *t = c->fdt;

	if (t->nrecs == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct fd_rec *q = realloc(t->recs, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		t->recs = q;
		t->cap = cap;
	}
	struct fd_rec *r = &t->recs[t->nrecs];
	memset(r, 0, sizeof(*r));
	r->type = type;
	r->key32 = key32;
	r->key64 = key64;
	int err = buf_put(&r->b, payload->p, payload->len);
	if (!err)
		t->nrecs++;
	return err;
}

/* FD records in fd order, then the kinds' records in the order they were emitted. */
int fds_write(struct capture *c, struct image *im)
{
	struct cap_fdtab *t = c->fdt;
	int err = 0;

	for (size_t i = 0; t && !err && i < t->n; i++) {
		struct cap_fd *d = &t->v[i];
		struct buf b = { 0 };
		err = buf_put(&b, &d->f, sizeof(d->f));
		if (!err)
			err = buf_put_cstr(&b, d->link);
		if (!err)
			err = buf_put_cstr(&b, d->note);
		if (!err)
			err = image_record(im, CKIMG_REC_FD, &b, d->f.fd, 0);
		buf_free(&b);
	}
	for (size_t i = 0; t && !err && i < t->nrecs; i++)
		err = image_record(im, t->recs[i].type, &t->recs[i].b, t->recs[i].key32, t->recs[i].key64);
	return err;
}

void fds_release(struct capture *c, int killed)
{
	struct cap_fdtab *t = c->fdt;

	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		struct cap_fd *d = &t->v[i];
		if (d->file == d && d->ops && d->ops->release)
			d->ops->release(c, d, killed);
	}
	for (size_t i = 0; i < t->n; i++) {
		if (t->v[i].local >= 0)
			close(t->v[i].local);
		t->v[i].local = -1;
	}
	if (t->pidfd >= 0)
		close(t->pidfd);
	t->pidfd = -1;
}

void fds_free(struct capture *c)
{
	struct cap_fdtab *t = c->fdt;

	if (!t)
		return;
	fds_release(c, 0);
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].link);
		free(t->v[i].fdinfo);
		free(t->v[i].note);
	}
	for (size_t i = 0; i < t->nrecs; i++)
		buf_free(&t->recs[i].b);
	free(t->recs);
	free(t->v);
	free(t);
	c->fdt = NULL;
}
