/*
 * Unix sockets (unix(7)). What a socket is connected to is only told by sock_diag(7): one
 * NETLINK_SOCK_DIAG query per socket (by inode) gives its type, state, name, peer inode,
 * listen backlog and shutdown state. The receive queue is read without taking it from the
 * target: SO_PEEK_OFF + MSG_PEEK on our copy of the fd, message by message, then the peek
 * offset is switched off again. A peer inside the process is paired again on restore; a peer
 * outside it is recorded with a warning (a named one is connected to again on restore).
 */
#include "fds.h"
#include "tree.h"

#include <errno.h>
#include <stddef.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif
#define MAX_QUEUE_BYTES (64u << 20)

#define MAX_ICONS 256

struct unix_diag {
	uint32_t type, state, peer, backlog, rqueue, shutdown;
	uint32_t vfs_ino, vfs_dev;      /* bound to a path: the socket file's inode (UNIX_DIAG_VFS) */
	uint32_t icons[MAX_ICONS];      /* listening: inodes of the connections waiting for accept */
	uint32_t nicons;
	char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	size_t name_len;
};

static int query_diag(uint64_t inode, struct unix_diag *out)
{
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST },
		.r = { .sdiag_family = AF_UNIX, .udiag_states = ~0u, .udiag_ino = (uint32_t)inode,
		       .udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_ICONS | UDIAG_SHOW_VFS,
		       .udiag_cookie = { ~0u, ~0u } },
	};
	char buf[8192];
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), err = -ENOENT;

	if (nl < 0)
		return -errno;
	if (send(nl, &req, sizeof(req), 0) < 0) {
		err = -errno;
		goto out;
	}
	ssize_t n = recv(nl, buf, sizeof(buf), 0);
	if (n < 0) {
		err = -errno;
		goto out;
	}
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
		if (h->nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr *e = NLMSG_DATA(h);
			err = e->error ? e->error : -ENOENT;
			break;
		}
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
			continue;
		struct unix_diag_msg *m = NLMSG_DATA(h);
		memset(out, 0, sizeof(*out));
		out->type = m->udiag_type;
		out->state = m->udiag_state;
		int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
		for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
			size_t l = RTA_PAYLOAD(a);
			switch (a->rta_type) {
			case UNIX_DIAG_NAME:
				out->name_len = l < sizeof(out->name) - 1 ? l : sizeof(out->name) - 1;
				memcpy(out->name, RTA_DATA(a), out->name_len);
				break;
			case UNIX_DIAG_PEER:
				memcpy(&out->peer, RTA_DATA(a), 4);
				break;
			case UNIX_DIAG_RQLEN: {
				struct unix_diag_rqlen q;
				memcpy(&q, RTA_DATA(a), sizeof(q));
				out->rqueue = q.udiag_rqueue;
				out->backlog = q.udiag_wqueue;     /* listening: max backlog */
				break;
			}
			case UNIX_DIAG_VFS: {
				struct unix_diag_vfs v;
				memcpy(&v, RTA_DATA(a), sizeof(v));
				out->vfs_ino = v.udiag_vfs_ino;
				out->vfs_dev = v.udiag_vfs_dev;
				break;
			}
			case UNIX_DIAG_ICONS:
				out->nicons = (uint32_t)(l / 4 < MAX_ICONS ? l / 4 : MAX_ICONS);
				memcpy(out->icons, RTA_DATA(a), out->nicons * 4);
				break;
			case UNIX_DIAG_SHUTDOWN:
				out->shutdown = *(uint8_t *)RTA_DATA(a);
				break;
			}
		}
		err = 0;
		break;
	}
out:
	close(nl);
	return err;
}

static int unix_match(struct capture *c, struct cap_fd *d);

/* The files passed in the queue (SCM_RIGHTS): UNIX_FILES entries, and why one cannot be
 * described (the first such file). */
struct passed {
	struct buf entries;
	uint32_t count;
	char why[400];
};

/*
 * One passed file, which the peek put in our table as `f`: the same open file description
 * as one of the target's fds (kcmp), a regular file reopened by path, or an end of a pipe
 * one of the target's fds holds. Anything else cannot be described (p->why says what).
 */
static int describe_passed(struct capture *c, int f, uint32_t message, struct passed *p)
{
	struct ckimg_unix_file_entry e = { .message = message };
	char link[64], path[4096];
	struct stat st;
	size_t n;
	struct cap_fd *all = fd_all(c, &n);
	ssize_t l;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", f);
	l = readlink(link, path, sizeof(path) - 1);
	path[l > 0 ? l : 0] = 0;
	if (fstat(f, &st) < 0)
		return -errno;
	int fl = fcntl(f, F_GETFL);
	e.open_flags = fl < 0 ? 0 : (uint32_t)fl & ~(uint32_t)O_CLOEXEC;
	e.inode = st.st_ino;
	e.dev_major = major(st.st_dev);
	e.dev_minor = minor(st.st_dev);
	for (size_t i = 0; i < n && !e.kind; i++)
		if (all[i].have_stat && all[i].st.st_ino == st.st_ino && all[i].st.st_dev == st.st_dev &&
		    syscall(SYS_kcmp, getpid(), c->pid, KCMP_FILE, f, all[i].fd) == 0) {
			e.kind = CKIMG_PASSED_FD;
			e.fd = (uint32_t)all[i].file->fd;
		}
	if (!e.kind && S_ISREG(st.st_mode) && path[0] == '/' && !strstr(path, " (deleted)")) {
		off_t pos = lseek(f, 0, SEEK_CUR);
		e.kind = CKIMG_PASSED_FILE;
		e.pos = pos < 0 ? 0 : (uint64_t)pos;
	}
	if (!e.kind && S_ISFIFO(st.st_mode) && strncmp(path, "pipe:[", 6) == 0)
		for (size_t i = 0; i < n && !e.kind; i++)
			if (all[i].have_stat && all[i].st.st_ino == st.st_ino && all[i].st.st_dev == st.st_dev)
				e.kind = CKIMG_PASSED_PIPE;
	if (!e.kind) {
		if (!p->why[0])
			snprintf(p->why, sizeof(p->why), "message %u carries %.160s, which the process holds no other way "
				 "(only its own files, regular files and ends of its pipes can be passed again)", message,
				 path[0] ? path : "a file");
		return 0;
	}
	int err = buf_put(&p->entries, &e, sizeof(e));
	if (!err)
		err = buf_put_cstr(&p->entries, path);
	if (!err)
		p->count++;
	return err;
}

/* Files passed in a peeked message land in our table: describe and close them. */
static int passed_files(struct capture *c, struct msghdr *mh, uint32_t message, struct passed *p)
{
	int err = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (!err)
				err = describe_passed(c, f, message, p);
			close(f);
		}
	}
	if (!err && (mh->msg_flags & MSG_CTRUNC) && !p->why[0])
		snprintf(p->why, sizeof(p->why), "message %u carries more files than one message can (SCM_MAX_FD)", message);
	return err;
}

/*
 * The receive queue, message by message, left in place (peek offset on, then off again),
 * with the files messages carry (SCM_RIGHTS) described in p.
 */
static int peek_queue(struct capture *c, int fd, uint32_t type, struct buf *q, uint32_t *count, uint64_t *bytes,
		      struct passed *p, struct buf *senders, int *named)
{
	int zero = 0, off = -1, err = 0;
	static uint8_t msg[1 << 20];
	/* SCM_MAX_FD (253) files per message */
	union { struct cmsghdr h; char b[CMSG_SPACE(253 * sizeof(int))]; } ctl;

	if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0)
		return -errno;
	for (;;) {
		struct iovec iov = { msg, type == SOCK_STREAM ? 65536 : sizeof(msg) };
		struct sockaddr_un from;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
		if (type == SOCK_DGRAM) {      /* who sent it (a bound sender's name, else none) */
			memset(&from, 0, sizeof(from));
			mh.msg_name = &from;
			mh.msg_namelen = sizeof(from);
		}
		ssize_t n = recvmsg(fd, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
		if (n >= 0 && (err = passed_files(c, &mh, *count, p)))
			break;
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				err = -errno;
			break;
		}
		if (n == 0 && type == SOCK_STREAM)
			break;
		if ((size_t)n > sizeof(msg) || *bytes + (uint64_t)n > MAX_QUEUE_BYTES) {
			err = -EMSGSIZE;
			break;
		}
		uint32_t l = (uint32_t)n;
		if ((err = buf_put(q, &l, 4)) || (err = buf_put(q, msg, (size_t)n)))
			break;
		if (senders) {
			size_t nl = mh.msg_name && mh.msg_namelen > offsetof(struct sockaddr_un, sun_path) ?
				    mh.msg_namelen - offsetof(struct sockaddr_un, sun_path) : 0;
			if (nl > sizeof(from.sun_path))
				nl = sizeof(from.sun_path);
			while (nl && from.sun_path[0] && !from.sun_path[nl - 1])   /* a path's trailing NULs */
				nl--;
			*named |= nl != 0;
			if ((err = buf_put_str(senders, from.sun_path, nl)))
				break;
		}
		(*count)++;
		*bytes += (uint64_t)n;
		if (n == 0)
			break;     /* a zero-length datagram does not move the peek offset */
	}
	setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	return err;
}

/* Is an end of pipe (dev, ino) with access mode acc in flight in a queue of one of the
 * process's unix sockets? Then that end is the process's (restore passes it again) and the
 * pipe is not shared with another process. Only asked for a pipe that seems to be. */
int unix_pipe_in_flight(struct capture *c, dev_t dev, ino_t ino, int acc)
{
	size_t n;
	struct cap_fd *all = fd_all(c, &n);
	int found = 0;

	for (size_t i = 0; i < n && !found; i++) {
		struct cap_fd *d = &all[i];
		struct unix_diag u;
		struct buf q = { 0 };
		struct passed p = { .entries = { 0 } };
		uint32_t qn = 0;
		uint64_t qb = 0;
		int fd;
		if (d->file != d || !unix_match(c, d) || (fd = fd_local(c, d)) < 0 || query_diag(d->f.inode, &u) ||
		    u.state == 10 || (u.type != SOCK_DGRAM && u.state != 1))
			continue;
		if (peek_queue(c, fd, u.type, &q, &qn, &qb, &p, NULL, NULL) == 0)
			for (size_t at = 0; at + sizeof(struct ckimg_unix_file_entry) + 4 <= p.entries.len && !found;) {
				struct ckimg_unix_file_entry e;
				uint32_t l;
				memcpy(&e, p.entries.p + at, sizeof(e));
				memcpy(&l, p.entries.p + at + sizeof(e), 4);
				found = e.kind == CKIMG_PASSED_PIPE && e.inode == ino && makedev(e.dev_major, e.dev_minor) == dev &&
					(int)(e.open_flags & O_ACCMODE) == acc;
				at += sizeof(e) + 4 + l;
			}
		buf_free(&q);
		buf_free(&p.entries);
	}
	return found;
}

static int unix_match(struct capture *c, struct cap_fd *d)
{
	return d->f.kind == CKIMG_FD_SOCKET && fd_socket_family(c, d) == AF_UNIX;
}

/* Is inode one of the target's sockets? */
static int recorded_socket(struct capture *c, uint64_t inode)
{
	size_t n;
	struct cap_fd *all = fd_all(c, &n);

	for (size_t i = 0; i < n; i++)
		if (all[i].f.kind == CKIMG_FD_SOCKET && all[i].f.inode == inode)
			return 1;
	return 0;
}

/*
 * A client whose connection waits in the backlog of a listening socket of ours: sock_diag
 * shows it connected with no peer (the embryo has no inode), and the listener lists it among
 * its waiting connections (UNIX_DIAG_ICONS gives the clients' inodes). 1 with the listener's
 * name in *l, or 0.
 */
static int our_listener_holds(struct capture *c, uint64_t client, struct unix_diag *l)
{
	size_t n;
	struct cap_fd *all = fd_all(c, &n);

	for (size_t i = 0; i < n; i++) {
		if (all[i].file != &all[i] || !unix_match(c, &all[i]) || query_diag(all[i].f.inode, l) || l->state != 10)
			continue;
		for (uint32_t k = 0; k < l->nicons; k++)
			if (l->icons[k] == (uint32_t)client)
				return l->name_len > 0;
	}
	return 0;
}

/* Of a listener's waiting connections, how many have a client that is one of our sockets
 * (those come back: the client connects again), and how many a client that was closed (the
 * embryo's peer has no inode any more: restore makes and closes one each)? */
static uint32_t own_waiting(struct capture *c, const struct unix_diag *u, uint32_t *closed)
{
	uint32_t k = 0;

	*closed = 0;
	for (uint32_t i = 0; i < u->nicons; i++)
		if (!u->icons[i])
			(*closed)++;
		else if (recorded_socket(c, u->icons[i]))
			k++;
	return k;
}

/* The socket file of a socket bound to a path: its mode and owner, when the file at that
 * path (from the target's root, or its cwd for a relative name) is still the socket's. */
static void socket_file(struct capture *c, const struct unix_diag *u, struct ckimg_unix_fixed *x)
{
	char path[4400];
	struct stat st;

	if (!u->name_len || !u->name[0] || !u->vfs_ino)
		return;
	snprintf(path, sizeof(path), "/proc/%d/%s/%s", (int)c->pid, u->name[0] == '/' ? "root" : "cwd", u->name);
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == u->vfs_ino) {
		x->file_mode = st.st_mode;
		x->file_uid = st.st_uid;
		x->file_gid = st.st_gid;
	} else {
		x->flags |= CKIMG_UNIX_NAME_GONE;   /* unlinked after bind (or another file there now) */
	}
}

static int unix_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_unix_fixed x = { .fixed_size = sizeof(x), .inode = d->f.inode };
	struct unix_diag u;
	struct buf q = { 0 }, b = { 0 }, snd = { 0 };
	int named = 0;
	char peer_name[sizeof(u.name)];
	size_t peer_len = 0;
	uint32_t qn = 0;
	uint64_t qb = 0;
	struct passed passed = { .entries = { 0 } };
	int fd = fd_local(c, d), err, v;
	socklen_t sl = sizeof(v);

	if (fd < 0)
		return fd;
	if ((err = query_diag(d->f.inode, &u)))
		return err;
	x.type = u.type;
	x.state = u.state;
	x.peer_inode = u.peer;
	x.backlog = u.state == 10 ? u.backlog : 0;
	x.pending = u.state == 10 ? u.rqueue : 0;
	if (u.shutdown & 1)
		x.flags |= CKIMG_UNIX_SHUT_RD;
	if (u.shutdown & 2)
		x.flags |= CKIMG_UNIX_SHUT_WR;
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &sl) == 0)
		x.sndbuf = (uint32_t)v;
	sl = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &sl) == 0)
		x.rcvbuf = (uint32_t)v;
	sl = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &v, &sl) == 0 && v)
		x.flags |= CKIMG_UNIX_PASSCRED;
	sl = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_PASSSEC, &v, &sl) == 0 && v)
		x.flags |= CKIMG_UNIX_PASSSEC;
	/* the peer's credentials (a pair: whoever made it; zdtm sock_peercred) */
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) == 0 && cr.pid > 0) {
		x.peer_pid = (uint32_t)cr.pid;
		x.peer_uid = (uint32_t)cr.uid;
		x.peer_gid = (uint32_t)cr.gid;
	}
	if (u.peer) {
		struct unix_diag pu;
		if (recorded_socket(c, u.peer) || tree_other_holds(c, d->st.st_dev, u.peer, -1))
			x.flags |= CKIMG_UNIX_PEER_INSIDE;
		else if (query_diag(u.peer, &pu) == 0) {
			memcpy(peer_name, pu.name, pu.name_len);
			peer_len = pu.name_len;
		}
	} else if (u.type != SOCK_DGRAM && u.state == 1) {
		struct unix_diag l;
		if (our_listener_holds(c, d->f.inode, &l)) {
			/* the client connects to the listener's name again on restore */
			x.flags |= CKIMG_UNIX_IN_BACKLOG;
			memcpy(peer_name, l.name, l.name_len);
			peer_len = l.name_len;
			/* for a socket that is not listening, sock_diag's wqueue is what it sent and
			 * nobody read yet: here, bytes in the embryo, which only accept() could reach */
			if (u.backlog && (err = fd_cannot(c, d, "what it sent before its connection was accepted (%u bytes of "
							  "buffers) waits in the listener's backlog, where it cannot be read "
							  "without accepting the connection", u.backlog)))
				goto out;
		}
	}
	if (tree_earlier_holds(c, d->st.st_dev, d->f.inode))
		x.flags |= CKIMG_UNIX_QUEUE_ELSEWHERE;  /* one copy of the queue per tree */
	else if (u.state != 10 && (u.type == SOCK_DGRAM || u.state == 1) &&   /* an unconnected stream has no queue (recv: EINVAL) */
		 (err = peek_queue(c, fd, u.type, &q, &qn, &qb, &passed, &snd, &named)))
		goto out;
	if (passed.why[0] && (err = fd_cannot(c, d, "a file passed in its queue (SCM_RIGHTS) cannot be kept: %s",
					      passed.why)))
		goto out;
	x.queue_count = qn;
	x.queue_bytes = qb;
	if (named)
		x.flags |= CKIMG_UNIX_SENDERS;
	if (u.peer && !(x.flags & (CKIMG_UNIX_PEER_INSIDE | CKIMG_UNIX_IN_BACKLOG))) {
		if (peer_len && peer_name[0])
			err = fd_peer_outside(c, d, "connected to %.*s in another process; restore connects to it again "
					      "(a new connection: the peer sees it as a new client)", (int)peer_len, peer_name);
		else
			err = fd_peer_outside(c, d, "its peer socket is in another process; restore leaves it unconnected");
	}
	uint32_t closed = 0, own = x.pending ? own_waiting(c, &u, &closed) : 0;
	x.pending_closed = closed;
	socket_file(c, &u, &x);
	if (!err && x.pending > own + closed)
		fprintf(stderr, "ckimg-capture: warning: fd %d (%s): %u connection(s) waiting for accept() are not "
			"brought back (their clients are other processes)\n", d->fd, d->link, x.pending - own - closed);
	if (!err)
		err = buf_put(&b, &x, sizeof(x));
	if (!err)
		err = buf_put_str(&b, u.name, u.name_len);
	if (!err)
		err = buf_put_str(&b, peer_name, peer_len);
	if (!err)
		err = buf_put(&b, q.p, q.len);
	if (!err && named)
		err = buf_put(&b, snd.p, snd.len);
	if (!err)
		err = fd_emit(c, CKIMG_REC_UNIX_SOCKET, (uint32_t)d->fd, d->f.inode, &b);
	if (!err && passed.count && !passed.why[0]) {
		struct ckimg_unix_files_fixed ff = { .fixed_size = sizeof(ff), .count = passed.count, .inode = d->f.inode,
						     .entry_size = sizeof(struct ckimg_unix_file_entry) };
		struct buf fb = { 0 };
		if (!(err = buf_put(&fb, &ff, sizeof(ff))) && !(err = buf_put(&fb, passed.entries.p, passed.entries.len)))
			err = fd_emit(c, CKIMG_REC_UNIX_FILES, (uint32_t)d->fd, d->f.inode, &fb);
		buf_free(&fb);
	}
out:
	buf_free(&passed.entries);
	buf_free(&snd);
	buf_free(&q);
	buf_free(&b);
	return err;
}

const struct fd_ops unix_ops = {
	.name = "unix",
	.match = unix_match,
	.dump = unix_dump,
};
