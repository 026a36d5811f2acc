/*
 * Unix sockets (unix(7)). A pair whose two ends are recorded becomes one socketpair(2) again
 * (rst_obj by the lower inode; both queues are refilled from the opposite end so message
 * boundaries stay); a socket alone is made, bound to its name (a stale socket file that nobody
 * listens on is removed first), set listening with its backlog, and, when its peer was a named
 * socket in another process, connected to that name again. A bound datagram socket gets its
 * queue back from a temporary sender (the original senders' addresses are not kept).
 * In a tree, a pair whose ends are in different processes is made once by tree.c (before any
 * fork); each holder takes its end from it (tree_pair) and writes its own queue back.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fds.h"

#define UNIX_TAG 0x756e6978u    /* 'unix' */
#define SCM_TAG  0x73636d66u    /* 'scmf': a queue with passed files, refilled in post_open */

struct unix_rec {
	struct ckimg_unix_fixed x;
	const uint8_t *name, *peer_name, *queue;
	uint32_t name_len, peer_len;
	uint64_t queue_len;
	const uint8_t *senders;     /* SENDERS: queue_count x STR sender, NULL without the flag */
};

/* Decode a checked-or-not record; -EBADMSG with why on damage. */
static int unix_parse(const struct img_fdrec *r, struct unix_rec *u, char *err, size_t errlen)
{
	uint64_t pos;

	memset(u, 0, sizeof(*u));
	if (r->len < 4)
		return snprintf(err, errlen, "payload shorter than its size field"), -EBADMSG;
	memcpy(&u->x, r->p, r->len < sizeof(u->x) ? r->len : sizeof(u->x));
	if (u->x.fixed_size < CKIMG_UNIX_MIN_FIXED || u->x.fixed_size > r->len)
		return snprintf(err, errlen, "fixed_size %u (expected >= %d, <= %llu)", u->x.fixed_size, CKIMG_UNIX_MIN_FIXED,
				(unsigned long long)r->len), -EBADMSG;
	if (u->x.fixed_size < sizeof(u->x))      /* a 64-byte record: no socket file fields */
		memset((uint8_t *)&u->x + u->x.fixed_size, 0, sizeof(u->x) - u->x.fixed_size);
	if (u->x.pending_closed > u->x.pending)
		return snprintf(err, errlen, "pending_closed %u exceeds pending %u", u->x.pending_closed, u->x.pending), -EBADMSG;
	pos = u->x.fixed_size;
	for (int k = 0; k < 2; k++) {
		uint32_t l;
		if (pos + 4 > r->len)
			return snprintf(err, errlen, "name runs past the payload"), -EBADMSG;
		memcpy(&l, r->p + pos, 4);
		if (l > sizeof(((struct sockaddr_un *)0)->sun_path) || pos + 4 + l > r->len)
			return snprintf(err, errlen, "%s of %u bytes does not fit", k ? "peer_name" : "name", l), -EBADMSG;
		if (k) {
			u->peer_name = r->p + pos + 4;
			u->peer_len = l;
		} else {
			u->name = r->p + pos + 4;
			u->name_len = l;
		}
		pos += 4 + l;
	}
	u->queue = r->p + pos;
	u->queue_len = r->len - pos;
	uint64_t bytes = 0, at = 0;
	for (uint32_t i = 0; i < u->x.queue_count; i++) {
		uint32_t l;
		if (at + 4 > u->queue_len)
			return snprintf(err, errlen, "queue message %u runs past the payload", i), -EBADMSG;
		memcpy(&l, u->queue + at, 4);
		if (l > u->queue_len - at - 4)
			return snprintf(err, errlen, "queue message %u of %u bytes runs past the payload", i, l), -EBADMSG;
		at += 4 + (uint64_t)l;
		bytes += l;
	}
	if (u->x.flags & CKIMG_UNIX_SENDERS) {
		u->senders = u->queue + at;
		for (uint32_t i = 0; i < u->x.queue_count; i++) {
			uint32_t l;
			if (at + 4 > u->queue_len)
				return snprintf(err, errlen, "sender of message %u runs past the payload", i), -EBADMSG;
			memcpy(&l, u->queue + at, 4);
			if (l > sizeof(((struct sockaddr_un *)0)->sun_path) || l > u->queue_len - at - 4)
				return snprintf(err, errlen, "sender of message %u: %u bytes", i, l), -EBADMSG;
			at += 4 + (uint64_t)l;
		}
	}
	if (bytes != u->x.queue_bytes)
		return snprintf(err, errlen, "queue holds %llu bytes, queue_bytes says %llu", (unsigned long long)bytes,
				(unsigned long long)u->x.queue_bytes), -EBADMSG;
	if (u->x.type != SOCK_STREAM && u->x.type != SOCK_DGRAM && u->x.type != SOCK_SEQPACKET)
		return snprintf(err, errlen, "socket type %u", u->x.type), -EBADMSG;
	if (u->x.inode != r->key64)
		return snprintf(err, errlen, "inode differs from the index key"), -EBADMSG;
	return 0;
}

int unix_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct unix_rec u;
	return unix_parse(r, &u, err, errlen);
}

static int unix_get_img(const struct img *img, uint64_t inode, struct unix_rec *u)
{
	char why[256];
	const struct img_fdrec *r = img_fdrec_by_id(img, CKIMG_REC_UNIX_SOCKET, inode);

	return r && unix_parse(r, u, why, sizeof(why)) == 0;
}

static int unix_get(struct rst_fds *s, uint64_t inode, struct unix_rec *u)
{
	return unix_get_img(rst_fds_img(s), inode, u);
}

int rst_unix_pair_peer(const struct img *img, uint64_t inode, uint64_t *peer)
{
	struct unix_rec u;

	if (!unix_get_img(img, inode, &u) || !(u.x.flags & CKIMG_UNIX_PEER_INSIDE) || !u.x.peer_inode ||
	    u.x.peer_inode == inode)
		return 0;
	*peer = u.x.peer_inode;
	return 1;
}

int rst_unix_pair_make(const struct img *img, uint64_t inode, int fd[2], const char **step)
{
	struct unix_rec u;

	*step = "UNIX_SOCKET record";
	if (!unix_get_img(img, inode, &u))
		return -EBADMSG;
	*step = "socketpair";
	return socketpair(AF_UNIX, (int)u.x.type | SOCK_CLOEXEC, 0, fd) < 0 ? -errno : 0;
}

/* The socketpair tree.c made for a pair whose ends are in different processes, when u is one
 * of its ends: this process's copy (fd[0] the lower inode's end), *end the one u is. */
static struct rst_obj *tree_pair(struct rst_fds *s, const struct unix_rec *u, int *end)
{
	const struct restore_args *a = rst_fds_args(s);
	uint64_t lo = u->x.inode < u->x.peer_inode ? u->x.inode : u->x.peer_inode;
	int found = 0;

	if (!(u->x.flags & CKIMG_UNIX_PEER_INSIDE) || !u->x.peer_inode || u->x.peer_inode == u->x.inode)
		return NULL;
	for (size_t i = 0; i < a->ntree_objs && !found; i++)
		found = a->tree_objs[i].tag == UNIX_TAG && a->tree_objs[i].id == lo;
	if (!found)
		return NULL;
	*end = u->x.inode == lo ? 0 : 1;
	return rst_obj_get(s, UNIX_TAG, lo);
}

static int unix_match(struct rst_fds *s, const struct img_fd *d)
{
	struct unix_rec u;
	return d->f.kind == CKIMG_FD_SOCKET && unix_get(s, d->f.inode, &u);
}

static socklen_t make_addr(struct sockaddr_un *a, const uint8_t *name, uint32_t len)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, name, len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
}

/* bind(2), removing a stale socket file of the same name that nobody listens on any more.
 * A name whose socket file was gone at capture (NAME_GONE: the program unlinked it, as servers
 * do once their clients are connected) is bound and its file unlinked again: the socket keeps
 * its name, the path stays free; when something else is at that path now, it is left alone
 * and the socket goes without its name. */
static int bind_name(struct rst_fds *s, int fd, const struct unix_rec *u)
{
	struct sockaddr_un a;
	socklen_t l = make_addr(&a, u->name, u->name_len);
	struct stat st;

	if ((u->x.flags & CKIMG_UNIX_NAME_GONE) && u->name[0]) {
		if (lstat(a.sun_path, &st) == 0)
			return 0;
		if (bind(fd, (struct sockaddr *)&a, l) < 0)
			return rst_fds_fail(s, -errno, "bind %s (its file was removed before the capture)", a.sun_path);
		unlink(a.sun_path);
		return 0;
	}

	if (bind(fd, (struct sockaddr *)&a, l) == 0)
		return 0;
	if (errno != EADDRINUSE || u->name[0] == 0 || lstat(a.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return rst_fds_fail(s, -errno, "bind %.*s", (int)u->name_len, (const char *)u->name);
	int probe = socket(AF_UNIX, (int)u->x.type | SOCK_CLOEXEC, 0);
	int live = probe >= 0 && connect(probe, (struct sockaddr *)&a, l) == 0;
	int refused = !live && (errno == ECONNREFUSED || errno == EPROTOTYPE);
	if (probe >= 0)
		close(probe);
	if (!refused)
		return rst_fds_fail(s, -EADDRINUSE, "bind %s: a live socket has the name", a.sun_path);
	unlink(a.sun_path);
	return bind(fd, (struct sockaddr *)&a, l) < 0 ? rst_fds_fail(s, -errno, "bind %s", a.sun_path) : 0;
}

/* Does a recorded listening socket other than u have u's name? (An accepted stream socket
 * reports its listener's name: the listener binds it, the accepted end must not.) */
static int name_is_listeners(struct rst_fds *s, const struct unix_rec *u)
{
	const struct img *img = rst_fds_img(s);
	struct unix_rec o;

	for (size_t i = 0; i < img->nfdrecs; i++) {
		const struct img_fdrec *r = &img->fdrecs[i];
		if (r->type != CKIMG_REC_UNIX_SOCKET || r->key64 == u->x.inode || !unix_get(s, r->key64, &o))
			continue;
		if (o.x.state == 10 && o.name_len == u->name_len && memcmp(o.name, u->name, u->name_len) == 0)
			return 1;
	}
	return 0;
}

/* Send each recorded message of `u` (the queue of the socket at the other end) through `from`. */
/* UNIX_FILES of one socket: the entries follow the FIXED part. */
struct unix_files {
	struct ckimg_unix_files_fixed x;
	const uint8_t *p;               /* the record payload */
	uint64_t len;
};

struct passed_entry {
	struct ckimg_unix_file_entry e;
	char path[4097];
};

/* The entry at *pos (checked by files_parse), *pos moved past it. */
static void entry_at(const struct unix_files *uf, uint64_t *pos, struct passed_entry *pe)
{
	uint32_t l;

	memcpy(&pe->e, uf->p + *pos, sizeof(pe->e));
	memcpy(&l, uf->p + *pos + uf->x.entry_size, 4);
	memcpy(pe->path, uf->p + *pos + uf->x.entry_size + 4, l);
	pe->path[l] = 0;
	*pos += uf->x.entry_size + 4 + (uint64_t)l;
}

static int files_parse(const struct img_fdrec *r, struct unix_files *uf, char *err, size_t errlen)
{
	memset(uf, 0, sizeof(*uf));
	if (r->len < 4)
		return snprintf(err, errlen, "payload shorter than its size field"), -EBADMSG;
	memcpy(&uf->x, r->p, r->len < sizeof(uf->x) ? r->len : sizeof(uf->x));
	if (uf->x.fixed_size < sizeof(uf->x) || uf->x.fixed_size > r->len)
		return snprintf(err, errlen, "fixed_size %u (expected >= %zu, <= %llu)", uf->x.fixed_size, sizeof(uf->x),
				(unsigned long long)r->len), -EBADMSG;
	if (uf->x.entry_size < sizeof(struct ckimg_unix_file_entry) || uf->x.entry_size > 4096)
		return snprintf(err, errlen, "entry_size %u", uf->x.entry_size), -EBADMSG;
	if (uf->x.inode != r->key64)
		return snprintf(err, errlen, "inode differs from the index key"), -EBADMSG;
	if (uf->x.count == 0 || uf->x.count > (r->len - uf->x.fixed_size) / (uf->x.entry_size + 4))
		return snprintf(err, errlen, "count %u does not fit the payload", uf->x.count), -EBADMSG;
	uf->p = r->p;
	uf->len = r->len;
	uint64_t pos = uf->x.fixed_size;
	uint32_t last = 0;
	for (uint32_t i = 0; i < uf->x.count; i++) {
		struct ckimg_unix_file_entry e;
		uint32_t l;
		if (r->len - pos < (uint64_t)uf->x.entry_size + 4)
			return snprintf(err, errlen, "entry %u runs past the payload", i), -EBADMSG;
		memcpy(&e, r->p + pos, sizeof(e));
		memcpy(&l, r->p + pos + uf->x.entry_size, 4);
		if (l > 4096 || r->len - pos - uf->x.entry_size - 4 < l)
			return snprintf(err, errlen, "entry %u: path of %u bytes does not fit", i, l), -EBADMSG;
		if (e.kind < CKIMG_PASSED_FD || e.kind > CKIMG_PASSED_PIPE)
			return snprintf(err, errlen, "entry %u: kind %u", i, e.kind), -EBADMSG;
		if (e.message < last)
			return snprintf(err, errlen, "entry %u: message %u after message %u", i, e.message, last), -EBADMSG;
		if (e.kind == CKIMG_PASSED_FILE && (l == 0 || r->p[pos + uf->x.entry_size + 4] != '/' ||
						    memchr(r->p + pos + uf->x.entry_size + 4, 0, l)))
			return snprintf(err, errlen, "entry %u: a passed file needs an absolute path", i), -EBADMSG;
		last = e.message;
		pos += uf->x.entry_size + 4 + (uint64_t)l;
	}
	if (pos != r->len)
		return snprintf(err, errlen, "%llu bytes after the last entry", (unsigned long long)(r->len - pos)), -EBADMSG;
	return 0;
}

int unix_files_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct unix_files uf;
	return files_parse(r, &uf, err, errlen);
}

/* The UNIX_FILES record of socket `inode`, if it has one. */
static int files_get(struct rst_fds *s, uint64_t inode, struct unix_files *uf)
{
	char why[256];
	const struct img_fdrec *r = img_fdrec_by_id(rst_fds_img(s), CKIMG_REC_UNIX_FILES, inode);

	return r && files_parse(r, uf, why, sizeof(why)) == 0;
}

/* A passed file again: the process's own fd (in place by now), the file reopened, or a new
 * description on a pipe end. *own: the fd is the process's (not closed after sending). */
static int passed_open(struct rst_fds *s, const struct passed_entry *pe, int *own)
{
	const struct ckimg_unix_file_entry *e = &pe->e;
	int fd;

	*own = 0;
	switch (e->kind) {
	case CKIMG_PASSED_FD:
		if (fcntl((int)e->fd, F_GETFD) < 0)
			return rst_fds_fail(s, -EBADF, "passed file: fd %u is not open", e->fd);
		*own = 1;
		return (int)e->fd;
	case CKIMG_PASSED_FILE:
		fd = open(pe->path, ((int)e->open_flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return rst_fds_fail(s, -errno, "passed file %s", pe->path);
		if (lseek(fd, (off_t)e->pos, SEEK_SET) < 0) {
			int err = -errno;
			close(fd);
			return rst_fds_fail(s, err, "passed file %s: offset %llu", pe->path, (unsigned long long)e->pos);
		}
		return fd;
	default:
		fd = rst_pipe_end_open(s, e->inode, e->open_flags);
		return fd < 0 ? rst_fds_fail(s, fd, "passed pipe end (pipe %llu)", (unsigned long long)e->inode) : fd;
	}
}

#define PASS_MAX 253                    /* SCM_MAX_FD */

/*
 * A socket bound to the name a queued datagram came from (SENDERS), for sending it again so
 * that recvmsg names its sender: bound, its socket file (a path name) removed at once — the
 * name stays the socket's until it is closed, and no file is left behind. -1 (a warning)
 * when the name is taken: the message then comes from an unbound socket.
 */
static int named_sender(uint32_t type, const uint8_t *name, uint32_t len)
{
	struct sockaddr_un a;
	socklen_t al = make_addr(&a, name, len);
	int fd = socket(AF_UNIX, (int)type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, al) < 0) {
		rst_warn("unix socket: a queued message's sender %s%.*s: %s; it comes back from an unnamed sender",
			 name[0] ? "" : "@", (int)(name[0] ? len : len - 1), (const char *)(name[0] ? name : name + 1),
			 strerror(errno));
		close(fd);
		return -1;
	}
	if (name[0]) {
		char path[sizeof(a.sun_path) + 1];
		memcpy(path, name, len);
		path[len] = 0;
		unlink(path);
	}
	return fd;
}

/* Send each recorded message of `u` (the queue of the socket at the other end) through
 * `from`, with the files it carried (UNIX_FILES) when it carried some. */
static int refill(struct rst_fds *s, int from, const struct unix_rec *u, const struct sockaddr_un *to, socklen_t tolen)
{
	struct unix_files uf;
	int have_files = files_get(s, u->x.inode, &uf);
	uint64_t at = 0, epos = have_files ? uf.x.fixed_size : 0;
	uint32_t ei = 0;
	static struct passed_entry pe;
	int err = 0;

	uint64_t spos = 0;
	for (uint32_t i = 0; i < u->x.queue_count && !err; i++) {
		uint32_t l;
		int fds[PASS_MAX], own[PASS_MAX], nfds = 0;
		union { struct cmsghdr h; char b[CMSG_SPACE(PASS_MAX * sizeof(int))]; } ctl;

		memcpy(&l, u->queue + at, 4);
		const uint8_t *m = u->queue + at + 4;
		int sender = -1;
		if (to && u->senders) {     /* (a temporary sender) the message's own sender's name */
			uint32_t sl;
			memcpy(&sl, u->senders + spos, 4);
			if (sl)
				sender = named_sender(u->x.type, u->senders + spos + 4, sl);
			spos += 4 + (uint64_t)sl;
		}
		while (have_files && ei < uf.x.count && !err) {
			uint64_t p = epos;
			entry_at(&uf, &p, &pe);
			if (pe.e.message != i)
				break;
			if (nfds == PASS_MAX) {
				err = rst_fds_fail(s, -E2BIG, "message %u carries more than %d files", i, PASS_MAX);
				break;
			}
			int fd = passed_open(s, &pe, &own[nfds]);
			if (fd < 0)
				err = fd;
			else
				fds[nfds++] = fd;
			epos = p;
			ei++;
		}
		for (uint32_t done = 0; !err && (done < l || (l == 0 && done == 0));) {
			struct iovec iov = { (void *)(m + done), l - done };
			struct msghdr mh = { .msg_name = (void *)to, .msg_namelen = to ? tolen : 0, .msg_iov = &iov, .msg_iovlen = 1 };
			if (nfds && done == 0) {
				memset(ctl.b, 0, sizeof(ctl.b));
				mh.msg_control = ctl.b;
				mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
				struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
				cm->cmsg_level = SOL_SOCKET;
				cm->cmsg_type = SCM_RIGHTS;
				cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
				memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
			}
			ssize_t n = sendmsg(sender >= 0 ? sender : from, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0) {
				err = rst_fds_fail(s, -errno, "putting message %u (%u bytes%s) back in the queue", i, l,
						   nfds ? ", with its files" : "");
				break;
			}
			if (l == 0 || u->x.type != SOCK_STREAM)
				break;
			done += (uint32_t)n;
		}
		for (int k = 0; k < nfds; k++)
			if (!own[k])
				close(fds[k]);
		if (sender >= 0)
			close(sender);
		at += 4 + (uint64_t)l;
	}
	if (!err && have_files && ei < uf.x.count)
		err = rst_fds_fail(s, -EBADMSG, "UNIX_FILES: %u file(s) for messages beyond the %u queued", uf.x.count - ei,
				   u->x.queue_count);
	return err;
}

/* Does socket `inode` have files in its queue? Its queue then goes back in post_open, once
 * every fd the messages may pass is in place. */
static int has_files(struct rst_fds *s, uint64_t inode)
{
	return img_fdrec_by_id(rst_fds_img(s), CKIMG_REC_UNIX_FILES, inode) != NULL;
}

static int set_buffers(int fd, const struct unix_rec *u)
{
	int v;
	/* getsockopt gave the doubled value the kernel keeps; setsockopt doubles what it gets */
	if (u->x.sndbuf && (v = (int)(u->x.sndbuf / 2)) > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v));
	if (u->x.rcvbuf && (v = (int)(u->x.rcvbuf / 2)) > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v));
	v = 1;
	if (u->x.flags & CKIMG_UNIX_PASSCRED)
		setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &v, sizeof(v));
	if (u->x.flags & CKIMG_UNIX_PASSSEC)
		setsockopt(fd, SOL_SOCKET, SO_PASSSEC, &v, sizeof(v));
	return 0;
}

/* The helper of maker_pair: the maker's ids, then the pair, in the fd table it shares with us;
 * the two numbers go back through the pipe. */
static int maker_child(int pipe_wr, int type, uint32_t uid, uint32_t gid)
{
	int p[2] = { -1, -1 };
	if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0 ||
	    socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, p) < 0)
		p[0] = -errno;
	return write(pipe_wr, p, sizeof(p)) == sizeof(p) ? 0 : 1;
}

/*
 * A pair whose SO_PEERCRED names another process than ours (a child that made it and exited:
 * zdtm sock_peercred; CRIU has no way to do this): made by a helper created with that pid
 * (clone3 set_tid, sharing our fd table, no exit signal) and the recorded ids. 1 when made
 * (p[] set), 0 when the pid cannot be had (the caller makes the pair itself, with a warning),
 * -errno on failure.
 */
static int maker_pair(struct rst_fds *s, const struct unix_rec *lo, int p[2])
{
	pid_t want = (pid_t)lo->x.peer_pid;
	int pp[2], got[2] = { -1, -1 }, st;

	if (pipe2(pp, O_CLOEXEC) < 0)
		return -errno;
	struct clone_args ca = { .flags = CLONE_FILES, .exit_signal = 0, .set_tid = (uint64_t)(uintptr_t)&want,
				 .set_tid_size = 1 };
	long pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0)
		_exit(maker_child(pp[1], (int)lo->x.type, lo->x.peer_uid, lo->x.peer_gid));
	int e = errno;
	if (pid < 0) {
		close(pp[0]);
		close(pp[1]);
		rst_warn("unix socket pair (inode %llu): SO_PEERCRED named process %d, which cannot be had again (%s): the "
			 "pair is this process's own", (unsigned long long)lo->x.inode, (int)want, strerror(e));
		return 0;
	}
	/* the fd table is shared: its end of the pipe is ours to close once it is gone */
	while (waitpid((pid_t)pid, &st, __WALL) < 0 && errno == EINTR)
		;
	close(pp[1]);
	ssize_t n = read(pp[0], got, sizeof(got));
	close(pp[0]);
	if (n != (ssize_t)sizeof(got) || got[0] < 0)
		return n == (ssize_t)sizeof(got) ? got[0] : -EIO;
	p[0] = got[0];
	p[1] = got[1];
	return 1;
}

/* Both ends of a pair: one socketpair, names bound, each queue refilled from the other end. */
static int make_pair(struct rst_fds *s, struct rst_obj *o, const struct unix_rec *lo, const struct unix_rec *hi)
{
	int p[2], err, made = 0;

	/* a pair made by another process than this one (its pid is in both ends' SO_PEERCRED) */
	if (lo->x.peer_pid && lo->x.peer_pid == hi->x.peer_pid && lo->x.peer_pid != rst_fds_img(s)->proc.f.pid &&
	    !rst_fds_args(s)->new_pid && (made = maker_pair(s, lo, p)) < 0)
		return rst_fds_fail(s, made, "socketpair made with the pid and ids of its maker %u", lo->x.peer_pid);
	if (!made && socketpair(AF_UNIX, (int)lo->x.type | SOCK_CLOEXEC, 0, p) < 0)
		return rst_fds_fail(s, -errno, "socketpair");
	o->fd[0] = rst_fd_scratch(s, p[0]);
	o->fd[1] = rst_fd_scratch(s, p[1]);
	if (o->fd[0] < 0 || o->fd[1] < 0)
		return rst_fds_fail(s, -EMFILE, "socketpair");
	set_buffers(o->fd[0], lo);
	set_buffers(o->fd[1], hi);
	if ((lo->name_len && !name_is_listeners(s, lo) && (err = bind_name(s, o->fd[0], lo))) ||
	    (hi->name_len && !name_is_listeners(s, hi) && (err = bind_name(s, o->fd[1], hi))))
		return err;
	if ((!has_files(s, lo->x.inode) && (err = refill(s, o->fd[1], lo, NULL, 0))) ||
	    (!has_files(s, hi->x.inode) && (err = refill(s, o->fd[0], hi, NULL, 0))))
		return err;
	return 0;
}

static int shut(struct rst_fds *s, int fd, const struct unix_rec *u)
{
	int how = (u->x.flags & CKIMG_UNIX_SHUT_RD) && (u->x.flags & CKIMG_UNIX_SHUT_WR) ? SHUT_RDWR :
		  (u->x.flags & CKIMG_UNIX_SHUT_RD) ? SHUT_RD : (u->x.flags & CKIMG_UNIX_SHUT_WR) ? SHUT_WR : -1;
	if (how >= 0 && shutdown(fd, how) < 0 && errno != ENOTCONN)
		return rst_fds_fail(s, -errno, "shutdown");
	return 0;
}

static const struct rst_obj *standalone(struct rst_fds *s, const struct unix_rec *up, int *errp);

/* The recorded listening socket bound to `name`, decoded into *out, or NULL. */
static const struct unix_rec *listener_named(struct rst_fds *s, const uint8_t *name, uint32_t len, struct unix_rec *out)
{
	const struct img *img = rst_fds_img(s);

	for (size_t i = 0; i < img->nfdrecs; i++) {
		const struct img_fdrec *r = &img->fdrecs[i];
		if (r->type == CKIMG_REC_UNIX_SOCKET && unix_get(s, r->key64, out) && out->x.state == 10 &&
		    out->name_len == len && memcmp(out->name, name, len) == 0)
			return out;
	}
	return NULL;
}

/* A connected socket whose peer was closed (sock_diag shows no peer): one end of a new
 * pair, its queue written from the other end, which is then closed, so the program reads the
 * bytes and then end of file as it would have. */
static int orphan(struct rst_fds *s, const struct unix_rec *u)
{
	int p[2], err;

	if (socketpair(AF_UNIX, (int)u->x.type | SOCK_CLOEXEC, 0, p) < 0)
		return rst_fds_fail(s, -errno, "socketpair");
	set_buffers(p[0], u);
	if (has_files(s, u->x.inode)) {
		/* the other end stays (post_open sends the queue with its files, then it is closed) */
		struct rst_obj *o = rst_obj_get(s, SCM_TAG, u->x.inode);
		if (!o || (o->fd[1] = rst_fd_scratch(s, p[1])) < 0) {
			if (o)
				o->fd[1] = -1;
			close(p[0]);
			return rst_fds_fail(s, -ENOMEM, "socketpair");
		}
		return p[0];
	}
	err = refill(s, p[1], u, NULL, 0);
	close(p[1]);
	if (!err && (u->x.flags & CKIMG_UNIX_SHUT_WR) && shutdown(p[0], SHUT_WR) < 0 && errno != ENOTCONN)
		err = rst_fds_fail(s, -errno, "shutdown");
	if (err) {
		close(p[0]);
		return err;
	}
	return p[0];
}

static int unix_open(struct rst_fds *s, struct rst_file *f)
{
	struct unix_rec u, peer;
	int fd, err;

	if (!unix_get(s, f->d->f.inode, &u))
		return rst_fds_fail(s, -EBADMSG, "no UNIX_SOCKET record");
	int end;
	struct rst_obj *tp = tree_pair(s, &u, &end);
	if (tp) {
		/* one end of a pair between processes (made by tree.c): this end's options, name and
		 * queue, the queue written from the other end as make_pair does */
		if (tp->fd[0] < 0 || tp->fd[1] < 0)
			return rst_fds_fail(s, -ENOMEM, "socket pair between processes");
		fd = fcntl(tp->fd[end], F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return rst_fds_fail(s, -errno, "socket pair end");
		set_buffers(fd, &u);
		if ((u.name_len && !name_is_listeners(s, &u) && (err = bind_name(s, fd, &u))) ||
		    (!has_files(s, u.x.inode) && (err = refill(s, tp->fd[!end], &u, NULL, 0))) ||
		    (err = shut(s, fd, &u))) {
			close(fd);
			return err;
		}
		return fd;
	}
	if ((u.x.flags & CKIMG_UNIX_PEER_INSIDE) && u.x.peer_inode && unix_get(s, u.x.peer_inode, &peer) &&
	    peer.x.peer_inode == u.x.inode && u.x.peer_inode != u.x.inode) {
		int low = u.x.inode < peer.x.inode;
		struct rst_obj *o = rst_obj_get(s, UNIX_TAG, low ? u.x.inode : peer.x.inode);
		if (!o)
			return rst_fds_fail(s, -ENOMEM, "socket pair");
		if (o->fd[0] < 0 && (err = make_pair(s, o, low ? &u : &peer, low ? &peer : &u)))
			return err;
		fd = fcntl(o->fd[low ? 0 : 1], F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return rst_fds_fail(s, -errno, "socket pair end");
		return (err = shut(s, fd, &u)) ? (close(fd), err) : fd;
	}
	/* (an unbound datagram socket with a queue was connected too: nothing else can reach it) */
	if ((u.x.type != SOCK_DGRAM || !u.name_len) && !u.x.peer_inode && !(u.x.flags & CKIMG_UNIX_IN_BACKLOG) &&
	    u.x.state != 10 && (u.x.queue_count || (u.x.flags & CKIMG_UNIX_SHUT_RD)))
		return orphan(s, &u);
	if ((u.x.flags & CKIMG_UNIX_PEER_INSIDE) && u.x.peer_inode && !u.peer_len && unix_get(s, u.x.peer_inode, &peer) &&
	    peer.name_len && (peer.x.peer_inode != u.x.inode || u.x.peer_inode == u.x.inode)) {
		/* connected one way to a named socket of ours (datagram clients of a bound server, or
		 * a socket connected to itself): that socket is made now if it is not yet, and we
		 * connect to its name */
		const struct rst_obj *po = standalone(s, &peer, &err);
		if (!po)
			return err;
		u.peer_name = peer.name;
		u.peer_len = peer.name_len;
	}
	if ((u.x.flags & CKIMG_UNIX_IN_BACKLOG) && u.peer_len) {
		/* a connection our listener had not accepted: the listener is made first (whatever
		 * its fd number), the connect below puts the connection in its backlog again */
		const struct unix_rec *l = listener_named(s, u.peer_name, u.peer_len, &peer);
		if (l && !standalone(s, l, &err))
			return err;
	}
	const struct rst_obj *so = standalone(s, &u, &err);
	if (!so)
		return err;
	fd = fcntl(so->fd[0], F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return rst_fds_fail(s, -errno, "socket");
	if ((u.x.peer_inode || (u.x.flags & CKIMG_UNIX_IN_BACKLOG)) && u.peer_len) {
		/* the peer was a named socket (of another process, or one of ours connected one way,
		 * or our listener that had not accepted the connection yet):
		 * connect to that name again; if nobody listens there now, the socket stays unconnected
		 * (capture warned) */
		struct sockaddr_un a;
		socklen_t l = make_addr(&a, u.peer_name, u.peer_len);
		int fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		connect(fd, (struct sockaddr *)&a, l);
		fcntl(fd, F_SETFL, fl);
	}
	if ((err = shut(s, fd, &u)))
		goto fail;
	return fd;
fail:
	close(fd);
	return err;
}

/* A socket that is not one end of a recorded pair, made once (rst_obj by its inode, fd[0]):
 * bound, listening, its datagram queue refilled. Its fds dup it; a datagram client of ours
 * may need it bound before its own fd comes. NULL with *err set on failure. */
static const struct rst_obj *standalone(struct rst_fds *s, const struct unix_rec *up, int *errp)
{
	struct unix_rec u = *up;
	struct rst_obj *o = rst_obj_get(s, UNIX_TAG, u.x.inode);
	int fd, err;

	if (!o) {
		*errp = rst_fds_fail(s, -ENOMEM, "socket");
		return NULL;
	}
	if (o->fd[0] >= 0)
		return o;
	fd = socket(AF_UNIX, (int)u.x.type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*errp = rst_fds_fail(s, -errno, "socket");
		return NULL;
	}
	set_buffers(fd, &u);
	if (u.name_len && (err = bind_name(s, fd, &u)))
		goto fail;
	if (u.name_len && u.name[0] && u.x.file_mode) {
		/* the socket file's mode and owner as they were (chmod/chown after bind); not root:
		 * the owner stays ours */
		char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
		memcpy(path, u.name, u.name_len);
		path[u.name_len] = 0;
		(void)!chown(path, u.x.file_uid, u.x.file_gid);
		(void)!chmod(path, u.x.file_mode & 07777);
	}
	if (u.x.state == 10 && listen(fd, (int)u.x.backlog) < 0) {
		err = rst_fds_fail(s, -errno, "listen");
		goto fail;
	}
	if (u.x.state != 10 && u.x.queue_count && u.name_len && u.x.type != SOCK_STREAM && !has_files(s, u.x.inode)) {
		/* a bound datagram socket: its queue comes back from a temporary sender */
		struct sockaddr_un a;
		socklen_t l = make_addr(&a, u.name, u.name_len);
		int tmp = socket(AF_UNIX, (int)u.x.type | SOCK_CLOEXEC, 0);
		err = tmp < 0 ? rst_fds_fail(s, -errno, "socket") : refill(s, tmp, &u, &a, l);
		if (tmp >= 0)
			close(tmp);
		if (err)
			goto fail;
	}
	if ((o->fd[0] = rst_fd_scratch(s, fd)) < 0) {
		*errp = rst_fds_fail(s, o->fd[0], "socket");
		o->fd[0] = -1;
		return NULL;
	}
	return o;
fail:
	close(fd);
	*errp = err;
	return NULL;
}

/* A queue whose messages carried files goes back now that every fd is at its number: from
 * the other end of its pair, the kept end of an orphan, or a temporary sender to its name. */
static int unix_post_open(struct rst_fds *s, struct rst_file *f)
{
	struct unix_rec u, peer;
	struct rst_obj *o;
	int from = -1, err;

	if (!unix_get(s, f->d->f.inode, &u))
		return 0;
	if (u.x.state == 10 && u.name_len && u.x.pending_closed) {
		/* connections whose client had closed before accept(): made and closed again, so
		 * accept() gives a socket at end of file as it would have; after every client of
		 * ours connected again (their connections were the older ones in the tests seen) */
		struct sockaddr_un a;
		socklen_t l = make_addr(&a, u.name, u.name_len);
		for (uint32_t i = 0; i < u.x.pending_closed && i <= u.x.backlog; i++) {
			int tmp = socket(AF_UNIX, (int)u.x.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			int ok = tmp >= 0 && connect(tmp, (struct sockaddr *)&a, l) == 0;
			int e = -errno;
			if (tmp >= 0)
				close(tmp);
			if (!ok)
				return rst_fds_fail(s, e, "a waiting connection whose client had closed");
		}
		return 0;
	}
	if (!u.x.queue_count || !has_files(s, u.x.inode))
		return 0;
	if (!(o = rst_obj_get(s, SCM_TAG, u.x.inode)))
		return rst_fds_fail(s, -ENOMEM, "socket");
	if (o->priv)
		return 0;
	o->priv = o;
	if (o->fd[1] >= 0) {
		err = refill(s, o->fd[1], &u, NULL, 0);
		close(o->fd[1]);
		o->fd[1] = -1;
		return err;
	}
	int end;
	struct rst_obj *tp = tree_pair(s, &u, &end);
	if (tp)
		return tp->fd[!end] < 0 ? rst_fds_fail(s, -EBADF, "the other end of the pair is gone before its queue went back")
					: refill(s, tp->fd[!end], &u, NULL, 0);
	if ((u.x.flags & CKIMG_UNIX_PEER_INSIDE) && u.x.peer_inode && unix_get(s, u.x.peer_inode, &peer) &&
	    peer.x.peer_inode == u.x.inode && u.x.peer_inode != u.x.inode) {
		int low = u.x.inode < peer.x.inode;
		struct rst_obj *pair = rst_obj_get(s, UNIX_TAG, low ? u.x.inode : peer.x.inode);
		from = pair ? pair->fd[low ? 1 : 0] : -1;
		if (from < 0)
			return rst_fds_fail(s, -EBADF, "the other end of the pair is gone before its queue went back");
		return refill(s, from, &u, NULL, 0);
	}
	if (u.name_len && u.x.type != SOCK_STREAM && u.x.state != 10) {
		struct sockaddr_un a;
		socklen_t l = make_addr(&a, u.name, u.name_len);
		int tmp = socket(AF_UNIX, (int)u.x.type | SOCK_CLOEXEC, 0);
		err = tmp < 0 ? rst_fds_fail(s, -errno, "socket") : refill(s, tmp, &u, &a, l);
		if (tmp >= 0)
			close(tmp);
		return err;
	}
	return rst_fds_fail(s, -EOPNOTSUPP, "its queue carries files but the socket has no sender to refill it from");
}

const struct rst_fd_ops unix_ops = {
	.name = "unix",
	.match = unix_match,
	.open = unix_open,
	.post_open = unix_post_open,
};
