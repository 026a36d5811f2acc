/*
 * IPv4/IPv6 sockets (ip(7), ipv6(7), tcp(7), udp(7)). Options are set before bind; a listener
 * binds its address under TCP_REPAIR (which lets it share the port with connections restored
 * from it) and listens with its backlog; a UDP socket binds and connects again.
 *
 * An established TCP connection is rebuilt with Linux's repair interface, in the order the
 * kernel needs: repair mode, both queues' sequence numbers (start of the recorded data), bind
 * to the same local address and port, connect (in repair mode: established at once, nothing
 * sent), the negotiated options (MSS, window scales, SACK, timestamps) and the timestamp
 * offset, the queues (sent-but-unacknowledged bytes to the send queue, received-but-unread
 * bytes to the receive queue), the windows, then out of repair mode; the bytes the program had
 * written but the kernel had not sent yet are written normally last.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fds.h"

#ifndef TCPOPT_MSS
#define TCPOPT_MSS 2
#define TCPOPT_WINDOW 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_TIMESTAMP 8
#endif

struct inet_rec {
	struct ckimg_inet_fixed x;
	int has_tcp;
	struct ckimg_tcp_fixed t;
	const uint8_t *outq, *inq;
};

static int copy_fixed(const struct img_fdrec *r, void *out, size_t size, char *err, size_t errlen)
{
	uint32_t fixed;

	if (r->len < 4)
		return snprintf(err, errlen, "payload shorter than its size field"), -EBADMSG;
	memcpy(&fixed, r->p, 4);
	if (fixed < size || fixed > r->len)
		return snprintf(err, errlen, "fixed_size %u (expected >= %zu, <= %llu)", fixed, size, (unsigned long long)r->len),
		       -EBADMSG;
	memcpy(out, r->p, size);
	return 0;
}

int inet_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_inet_fixed x;
	int e = copy_fixed(r, &x, CKIMG_INET_MIN_FIXED, err, errlen);

	if (e)
		return e;
	if (x.family != AF_INET && x.family != AF_INET6)
		return snprintf(err, errlen, "family %u", x.family), -EBADMSG;
	if (!((x.type == SOCK_STREAM && x.protocol == IPPROTO_TCP) || (x.type == SOCK_DGRAM && x.protocol == IPPROTO_UDP)))
		return snprintf(err, errlen, "type %u with protocol %u", x.type, x.protocol), -EBADMSG;
	if (x.inode != r->key64)
		return snprintf(err, errlen, "inode differs from the index key"), -EBADMSG;
	uint32_t fs;
	memcpy(&fs, r->p, 4);
	if (fs >= sizeof(x)) {
		memcpy(&x, r->p, sizeof(x));
		if (!memchr(x.bound_dev, 0, sizeof(x.bound_dev)))
			return snprintf(err, errlen, "bound_dev is not NUL-terminated"), -EBADMSG;
	}
	return 0;
}

int tcp_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_tcp_fixed t;
	int e = copy_fixed(r, &t, sizeof(t), err, errlen);

	if (e)
		return e;
	if (t.outq_len > CKIMG_TCP_MAX_QUEUE || t.inq_len > CKIMG_TCP_MAX_QUEUE ||
	    (uint64_t)t.outq_len + t.inq_len != r->len - t.fixed_size)
		return snprintf(err, errlen, "queues of %u + %u bytes do not match the payload", t.outq_len, t.inq_len), -EBADMSG;
	if (t.unsent_len > t.outq_len)
		return snprintf(err, errlen, "unsent_len %u exceeds outq_len %u", t.unsent_len, t.outq_len), -EBADMSG;
	if (t.snd_wscale > 14 || t.rcv_wscale > 14 || t.mss > 65535)
		return snprintf(err, errlen, "window scale %u/%u or MSS %u out of range", t.snd_wscale, t.rcv_wscale, t.mss),
		       -EBADMSG;
	return 0;
}

static int inet_get(struct rst_fds *s, uint64_t inode, struct inet_rec *u)
{
	const struct img *img = rst_fds_img(s);
	const struct img_fdrec *r = img_fdrec_by_id(img, CKIMG_REC_INET_SOCKET, inode), *t;

	memset(u, 0, sizeof(*u));
	if (!r)
		return 0;
	/* checked before the fork: fixed_size >= 96; a 96-byte record has no option fields */
	uint32_t fs;
	memcpy(&fs, r->p, 4);
	memcpy(&u->x, r->p, fs < sizeof(u->x) ? fs : sizeof(u->x));
	t = img_fdrec_by_id(img, CKIMG_REC_TCP_STREAM, inode);
	if (t) {
		memcpy(&u->t, t->p, sizeof(u->t));
		u->has_tcp = 1;
		u->outq = t->p + u->t.fixed_size;
		u->inq = u->outq + u->t.outq_len;
	}
	return 1;
}

static socklen_t make_addr(struct sockaddr_storage *ss, uint32_t family, const uint8_t addr[16], uint16_t port);

/* UDP_QUEUE: FIXED, then count × (datagram header, DATA). */
int udp_queue_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_udp_queue_fixed q;
	int e = copy_fixed(r, &q, sizeof(q), err, errlen);

	if (e)
		return e;
	if (q.inode != r->key64)
		return snprintf(err, errlen, "inode differs from the index key"), -EBADMSG;
	if (q.entry_size < sizeof(struct ckimg_udp_datagram) || q.entry_size > 4096)
		return snprintf(err, errlen, "entry_size %u", q.entry_size), -EBADMSG;
	if (q.count == 0 || q.count > (r->len - q.fixed_size) / q.entry_size)
		return snprintf(err, errlen, "count %u does not fit the payload", q.count), -EBADMSG;
	uint64_t pos = q.fixed_size;
	for (uint32_t i = 0; i < q.count; i++) {
		struct ckimg_udp_datagram g;
		if (r->len - pos < q.entry_size)
			return snprintf(err, errlen, "datagram %u runs past the payload", i), -EBADMSG;
		memcpy(&g, r->p + pos, sizeof(g));
		if (g.family != AF_INET && g.family != AF_INET6)
			return snprintf(err, errlen, "datagram %u: source family %u", i, g.family), -EBADMSG;
		if (g.length > 65535 || r->len - pos - q.entry_size < g.length)
			return snprintf(err, errlen, "datagram %u of %u bytes runs past the payload", i, g.length), -EBADMSG;
		pos += q.entry_size + (uint64_t)g.length;
	}
	if (pos != r->len)
		return snprintf(err, errlen, "%llu bytes after the last datagram", (unsigned long long)(r->len - pos)), -EBADMSG;
	return 0;
}

static int is_any(uint32_t family, const uint8_t a[16])
{
	static const uint8_t zero[16];
	return !memcmp(a, zero, family == AF_INET ? 4 : 16);
}

static int is_v4_mapped(const uint8_t a[16])
{
	static const uint8_t pre[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return !memcmp(a, pre, 12);
}

/* The fd (placed by now) of a UDP socket of ours bound to the datagram's source, or -1. */
static int our_udp_sender(struct rst_fds *s, const struct ckimg_udp_datagram *g)
{
	const struct img *img = rst_fds_img(s);
	struct ckimg_inet_fixed x;

	for (size_t i = 0; i < img->nfdrecs; i++) {
		const struct img_fdrec *r = &img->fdrecs[i];
		if (r->type != CKIMG_REC_INET_SOCKET)
			continue;
		memcpy(&x, r->p, sizeof(x));
		if (x.protocol == IPPROTO_UDP && x.family == g->family && x.local_port == g->port &&
		    (is_any(x.family, x.local_addr) || !memcmp(x.local_addr, g->addr, x.family == AF_INET ? 4 : 16)) &&
		    fcntl((int)r->key32, F_GETFD) >= 0)
			return (int)r->key32;
	}
	return -1;
}

/*
 * The datagrams that waited in a UDP socket, sent to it again (every fd is in place). From a
 * socket of ours bound to the source when there is one (the source is then exact); else from
 * a temporary socket bound to the source address and port, which works when the port is free
 * and the address is local (a loopback peer that is gone, typically); else from a temporary
 * socket on an ephemeral port of that address or of loopback: the bytes come back, the source
 * port differs (capture warned). The destination is the socket's own address (loopback for a
 * wildcard one).
 */
static int udp_refill(struct rst_fds *s, int fd, const struct inet_rec *u)
{
	const struct img_fdrec *r = img_fdrec_by_id(rst_fds_img(s), CKIMG_REC_UDP_QUEUE, u->x.inode);
	struct ckimg_udp_queue_fixed q;
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);

	if (!r)
		return 0;
	memcpy(&q, r->p, sizeof(q));
	if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0)
		return rst_fds_fail(s, -errno, "getsockname");
	uint64_t pos = q.fixed_size;
	for (uint32_t i = 0; i < q.count; i++) {
		struct ckimg_udp_datagram g;
		memcpy(&g, r->p + pos, sizeof(g));
		const uint8_t *data = r->p + pos + q.entry_size;
		pos += q.entry_size + (uint64_t)g.length;

		/* where to: our own address, loopback of the source's flavour for a wildcard */
		struct sockaddr_storage to = me;
		if (to.ss_family == AF_INET && ((struct sockaddr_in *)&to)->sin_addr.s_addr == htonl(INADDR_ANY))
			((struct sockaddr_in *)&to)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (to.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&to)->sin6_addr)) {
			struct in6_addr *a6 = &((struct sockaddr_in6 *)&to)->sin6_addr;
			if (g.family == AF_INET6 && is_v4_mapped(g.addr)) {
				static const uint8_t lo4[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1 };
				memcpy(a6, lo4, 16);
			} else {
				*a6 = in6addr_loopback;
			}
		}
		socklen_t tl = to.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

		int from = our_udp_sender(s, &g), tmp = -1;
		if (from < 0) {
			struct sockaddr_storage src;
			socklen_t sl = make_addr(&src, g.family, g.addr, g.port);
			int one = 1;
			tmp = socket((int)g.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (tmp < 0)
				return rst_fds_fail(s, -errno, "socket");
			setsockopt(tmp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(tmp, (struct sockaddr *)&src, sl) < 0) {
				/* the port is taken or the address is not ours: same address, any port */
				make_addr(&src, g.family, g.addr, 0);
				bind(tmp, (struct sockaddr *)&src, sl);
			}
			from = tmp;
		}
		ssize_t n = sendto(from, data, g.length, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&to, tl);
		int e = -errno;
		if (tmp >= 0)
			close(tmp);
		if (n < 0)
			return rst_fds_fail(s, e, "putting datagram %u (%u bytes) back in the UDP queue", i, g.length);
	}
	return 0;
}

static int inet_match(struct rst_fds *s, const struct img_fd *d)
{
	struct inet_rec u;
	return d->f.kind == CKIMG_FD_SOCKET && inet_get(s, d->f.inode, &u) && !(d->f.state & CKIMG_FDS_UNRESTORABLE);
}

static socklen_t make_addr(struct sockaddr_storage *ss, uint32_t family, const uint8_t addr[16], uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)ss;
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, addr, 4);
		a->sin_port = htons(port);
		return sizeof(*a);
	}
	struct sockaddr_in6 *a = (void *)ss;
	a->sin6_family = AF_INET6;
	memcpy(&a->sin6_addr, addr, 16);
	a->sin6_port = htons(port);
	return sizeof(*a);
}

static void seti(int fd, int level, int opt, int v)
{
	setsockopt(fd, level, opt, &v, sizeof(v));
}

/* The recorded options; 0, or -errno when the socket cannot be bound to its device again. */
static int set_options(int fd, const struct ckimg_inet_fixed *x)
{
	const uint32_t f = x->flags;

	/* first: bind(2) below then looks the address up on that device */
	if (x->bound_dev[0] &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, x->bound_dev, (socklen_t)strlen(x->bound_dev) + 1) < 0)
		return -errno;

	seti(fd, SOL_SOCKET, SO_REUSEADDR, !!(f & CKIMG_INET_REUSEADDR));
	if (f & CKIMG_INET_REUSEPORT)
		seti(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	if (f & CKIMG_INET_KEEPALIVE)
		seti(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (f & CKIMG_INET_BROADCAST)
		seti(fd, SOL_SOCKET, SO_BROADCAST, 1);
	if (x->family == AF_INET6)
		seti(fd, IPPROTO_IPV6, IPV6_V6ONLY, !!(f & CKIMG_INET_V6ONLY));
	if (f & CKIMG_INET_LINGER) {
		struct linger lg = { .l_onoff = 1, .l_linger = (int)x->linger };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (x->priority)
		seti(fd, SOL_SOCKET, SO_PRIORITY, (int)x->priority);
	if (x->rcvlowat > 1)
		seti(fd, SOL_SOCKET, SO_RCVLOWAT, (int)x->rcvlowat);
	if (x->mark)
		seti(fd, SOL_SOCKET, SO_MARK, (int)x->mark);
	if (x->more_flags & CKIMG_INET2_DONTROUTE)
		seti(fd, SOL_SOCKET, SO_DONTROUTE, 1);
	if (x->more_flags & CKIMG_INET2_NO_CHECK)
		seti(fd, SOL_SOCKET, SO_NO_CHECK, 1);
	if (x->more_flags & CKIMG_INET2_OOBINLINE)
		seti(fd, SOL_SOCKET, SO_OOBINLINE, 1);
	/* getsockopt gave the doubled size the kernel keeps; setsockopt doubles what it gets */
	if (x->sndbuf / 2)
		seti(fd, SOL_SOCKET, SO_SNDBUFFORCE, (int)(x->sndbuf / 2));
	if (x->rcvbuf / 2)
		seti(fd, SOL_SOCKET, SO_RCVBUFFORCE, (int)(x->rcvbuf / 2));
	if (x->protocol == IPPROTO_TCP) {
		if (f & CKIMG_INET_NODELAY)
			seti(fd, IPPROTO_TCP, TCP_NODELAY, 1);
		if ((int)x->keepidle > 0)
			seti(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)x->keepidle);
		if ((int)x->keepintvl > 0)
			seti(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)x->keepintvl);
		if ((int)x->keepcnt > 0)
			seti(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)x->keepcnt);
	}
	return 0;
}

static int repair(int fd, int on)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on));
}

static int queue_seq(int fd, int queue, uint32_t seq)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof(queue)) < 0)
		return -1;
	return setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, sizeof(seq));
}

static int fill_queue(int fd, int queue, const uint8_t *p, uint32_t len)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof(queue)) < 0)
		return -1;
	for (uint32_t done = 0; done < len;) {
		ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);
		if (n <= 0)
			return -1;
		done += (uint32_t)n;
	}
	return 0;
}

static int restore_established(struct rst_fds *s, int fd, const struct inet_rec *u)
{
	const struct ckimg_tcp_fixed *t = &u->t;
	struct sockaddr_storage la, pa;
	socklen_t ll = make_addr(&la, u->x.family, u->x.local_addr, u->x.local_port);
	socklen_t pl = make_addr(&pa, u->x.family, u->x.peer_addr, u->x.peer_port);
	uint32_t sent = t->outq_len - t->unsent_len;
	struct tcp_repair_opt opts[4];
	int n = 0;

	if (repair(fd, 1) < 0)
		return rst_fds_fail(s, -errno, "TCP_REPAIR (needs CAP_NET_ADMIN)");
	if (queue_seq(fd, TCP_RECV_QUEUE, t->rcv_seq - t->inq_len) < 0 ||
	    queue_seq(fd, TCP_SEND_QUEUE, t->snd_seq - t->outq_len) < 0)
		return rst_fds_fail(s, -errno, "TCP_QUEUE_SEQ");
	if (bind(fd, (struct sockaddr *)&la, ll) < 0)
		return rst_fds_fail(s, -errno, "bind to the connection's local address, port %u", u->x.local_port);
	if (connect(fd, (struct sockaddr *)&pa, pl) < 0)
		return rst_fds_fail(s, -errno, "repair-mode connect to port %u", u->x.peer_port);
	opts[n++] = (struct tcp_repair_opt){ TCPOPT_MSS, t->mss };
	if (t->options & CKIMG_TCP_OPT_WSCALE)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_WINDOW, t->snd_wscale | (t->rcv_wscale << 16) };
	if (t->options & CKIMG_TCP_OPT_SACK)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_SACK_PERM, 0 };
	if (t->options & CKIMG_TCP_OPT_TIMESTAMPS)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_TIMESTAMP, 0 };
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, (socklen_t)(n * sizeof(opts[0]))) < 0)
		return rst_fds_fail(s, -errno, "TCP_REPAIR_OPTIONS");
	if ((t->options & CKIMG_TCP_OPT_TIMESTAMPS) &&
	    setsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &t->timestamp, sizeof(t->timestamp)) < 0)
		return rst_fds_fail(s, -errno, "TCP_TIMESTAMP");
	if (fill_queue(fd, TCP_SEND_QUEUE, u->outq, sent) < 0)
		return rst_fds_fail(s, -errno, "refilling %u sent, unacknowledged bytes", sent);
	if (fill_queue(fd, TCP_RECV_QUEUE, u->inq, t->inq_len) < 0)
		return rst_fds_fail(s, -errno, "refilling %u received bytes", t->inq_len);
	struct tcp_repair_window w = {
		.snd_wl1 = t->snd_wl1, .snd_wnd = t->snd_wnd, .max_window = t->max_window,
		.rcv_wnd = t->rcv_wnd, .rcv_wup = t->rcv_wup,
	};
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) < 0)
		return rst_fds_fail(s, -errno, "TCP_REPAIR_WINDOW");
	int q = TCP_NO_QUEUE;
	setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
	return 0;       /* repair mode ends in inet_post_open, once every socket exists */
}

/*
 * Every fd is open: connections leave repair mode now, without a window probe, so that no
 * segment reaches a peer socket that is not rebuilt yet (a connection with both ends in the
 * process; a segment to the listener's port would be answered with a reset). Leaving repair
 * mode resets the socket's address reuse, so SO_REUSEADDR is set again; then the bytes the
 * program wrote but the kernel had not sent go out normally.
 */
static int inet_post_open(struct rst_fds *s, struct rst_file *f)
{
	struct inet_rec u;
	int fd = f->fd;

	if (!inet_get(s, f->d->f.inode, &u))
		return 0;
	if (u.x.protocol == IPPROTO_UDP) {
		int err = udp_refill(s, fd, &u);
		/* after the refill (a reading shutdown would not stop it, but keep the order of
		 * events); an unconnected socket answers ENOTCONN yet keeps the flag, as it did */
		if (!err && (u.x.flags & (CKIMG_INET_SHUT_RD | CKIMG_INET_SHUT_WR)))
			shutdown(fd, (u.x.flags & CKIMG_INET_SHUT_RD) ? ((u.x.flags & CKIMG_INET_SHUT_WR) ? SHUT_RDWR : SHUT_RD) : SHUT_WR);
		return err;
	}
	if (!u.has_tcp)
		return 0;
	if (repair(fd, TCP_REPAIR_OFF_NO_WP) < 0 && repair(fd, TCP_REPAIR_OFF) < 0)
		return rst_fds_fail(s, -errno, "leaving TCP repair mode");
	seti(fd, SOL_SOCKET, SO_REUSEADDR, !!(u.x.flags & CKIMG_INET_REUSEADDR));
	uint32_t sent = u.t.outq_len - u.t.unsent_len;
	for (uint32_t done = 0; done < u.t.unsent_len;) {
		ssize_t k = send(fd, u.outq + sent + done, u.t.unsent_len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k <= 0)
			return rst_fds_fail(s, k < 0 ? -errno : -EIO, "writing %u unsent bytes", u.t.unsent_len);
		done += (uint32_t)k;
	}
	return 0;
}

static int inet_open(struct rst_fds *s, struct rst_file *f)
{
	struct inet_rec u;
	struct sockaddr_storage la, pa;
	int fd, err = 0;

	if (!inet_get(s, f->d->f.inode, &u))
		return rst_fds_fail(s, -EBADMSG, "no INET_SOCKET record");
	fd = socket((int)u.x.family, (int)u.x.type | SOCK_CLOEXEC, (int)u.x.protocol);
	if (fd < 0)
		return rst_fds_fail(s, -errno, "socket");
	if ((err = set_options(fd, &u.x))) {
		close(fd);
		return rst_fds_fail(s, err, "SO_BINDTODEVICE %s", u.x.bound_dev);
	}
	socklen_t ll = make_addr(&la, u.x.family, u.x.local_addr, u.x.local_port);
	if (u.x.protocol == IPPROTO_TCP && u.has_tcp) {
		err = restore_established(s, fd, &u);
	} else if (u.x.protocol == IPPROTO_TCP) {
		/* repair mode while binding: the port may be shared with connections restored from it */
		int rep = repair(fd, 1) == 0;
		if (u.x.local_port && bind(fd, (struct sockaddr *)&la, ll) < 0)
			err = rst_fds_fail(s, -errno, "bind to port %u", u.x.local_port);
		if (rep) {
			repair(fd, TCP_REPAIR_OFF);
			/* leaving repair mode cleared the address reuse set before */
			seti(fd, SOL_SOCKET, SO_REUSEADDR, !!(u.x.flags & CKIMG_INET_REUSEADDR));
		}
		if (!err && u.x.state == 10 && listen(fd, (int)(u.x.backlog ? u.x.backlog : 128)) < 0)
			err = rst_fds_fail(s, -errno, "listen on port %u", u.x.local_port);
	} else {
		if (u.x.local_port && bind(fd, (struct sockaddr *)&la, ll) < 0)
			err = rst_fds_fail(s, -errno, "bind to port %u", u.x.local_port);
		socklen_t pl = make_addr(&pa, u.x.family, u.x.peer_addr, u.x.peer_port);
		if (!err && u.x.state == 1 && connect(fd, (struct sockaddr *)&pa, pl) < 0)
			err = rst_fds_fail(s, -errno, "connect to port %u", u.x.peer_port);
	}
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

const struct rst_fd_ops inet_ops = {
	.name = "inet",
	.match = inet_match,
	.open = inet_open,
	.post_open = inet_post_open,
};
