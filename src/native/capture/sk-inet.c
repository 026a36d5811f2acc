/*
 * IPv4/IPv6 sockets (ip(7), ipv6(7), tcp(7), udp(7)): addresses, state and common options
 * from our pidfd_getfd copy; a listener's backlog from sock_diag(7). An established TCP
 * connection is put in repair mode (TCP_REPAIR) on that copy while the target is frozen, so
 * it stops moving (nothing is sent from it), and its sequence numbers, queues, MSS, window
 * scale, SACK, timestamps and windows are read as Linux's repair interface gives them. When
 * the target is let go it leaves repair mode and carries on; when it was killed (--kill),
 * closing our copy in repair mode ends the socket silently (no FIN, no RST), and restore
 * rebuilds the same connection, so the peer sees a pause and nothing else.
 */
#include "fds.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/rtnetlink.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <unistd.h>

static int inet_match(struct capture *c, struct cap_fd *d)
{
	int fam;

	if (d->f.kind != CKIMG_FD_SOCKET)
		return 0;
	fam = fd_socket_family(c, d);
	return fam == AF_INET || fam == AF_INET6;
}

static int geti(int fd, int level, int opt)
{
	int v = 0;
	socklen_t l = sizeof(v);

	return getsockopt(fd, level, opt, &v, &l) < 0 ? -1 : v;
}

/* Address bytes into addr; returns the port (host order). */
static uint16_t put_addr(const struct sockaddr_storage *ss, uint8_t addr[16])
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;
		memcpy(addr, &a->sin_addr, 4);
		return ntohs(a->sin_port);
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		memcpy(addr, &a->sin6_addr, 16);
		return ntohs(a->sin6_port);
	}
	return 0;
}

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif
#define MAX_UDP_QUEUE (64u << 20)

/*
 * The datagrams waiting in a UDP socket, with their sources, read in place (SO_PEEK_OFF +
 * MSG_PEEK, datagram by datagram; the peek offset is switched off again). A UDP_QUEUE record
 * when there are any.
 */
static int dump_udp_queue(struct capture *c, struct cap_fd *d, int fd)
{
	static uint8_t dgram[65536];
	struct ckimg_udp_queue_fixed q = { .fixed_size = sizeof(q), .inode = d->f.inode, .entry_size = sizeof(struct ckimg_udp_datagram) };
	struct buf b = { 0 };
	uint64_t total = 0;
	int zero = 0, off = -1, n = 0, err = 0;

	if (ioctl(fd, SIOCINQ, &n) < 0 || n <= 0)
		return 0;       /* SIOCINQ: the first datagram's size; 0 also for an empty one (rare) */
	if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0) {
		fprintf(stderr, "ckimg-capture: warning: fd %d (%s): datagrams waiting in the UDP receive queue are not "
			"brought back (SO_PEEK_OFF: %s)\n", d->fd, d->link, strerror(errno));
		return 0;
	}
	if ((err = buf_put(&b, &q, sizeof(q))))
		goto out;
	for (;;) {
		struct sockaddr_storage from;
		struct iovec iov = { dgram, sizeof(dgram) };
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1 };
		memset(&from, 0, sizeof(from));
		ssize_t k = recvmsg(fd, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
		if (k < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				err = -errno;
			break;
		}
		if ((size_t)k > sizeof(dgram) || total + (uint64_t)k > MAX_UDP_QUEUE) {
			err = -EMSGSIZE;
			break;
		}
		struct ckimg_udp_datagram e = { .family = from.ss_family, .length = (uint32_t)k };
		e.port = put_addr(&from, e.addr);
		if ((err = buf_put(&b, &e, sizeof(e))) || (err = buf_put(&b, dgram, (size_t)k)))
			break;
		q.count++;
		total += (uint64_t)k;
		if (k == 0)
			break;      /* a zero-length datagram does not move the peek offset */
	}
	setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	if (!err && q.count) {
		memcpy(b.p, &q, sizeof(q));
		err = fd_emit(c, CKIMG_REC_UDP_QUEUE, (uint32_t)d->fd, d->f.inode, &b);
	}
out:
	buf_free(&b);
	return err;
}

/*
 * sock_diag(7) of one IP socket: a TCP listener's backlog (sk_max_ack_backlog, idiag_wqueue
 * of LISTEN sockets) and the shutdown state (INET_DIAG_SHUTDOWN: bit 0 reading, bit 1
 * writing). -1 in *shut when not found.
 */
static uint32_t inet_diag_of(int family, int protocol, uint64_t inode, int *shut)
{
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
		.r = { .sdiag_family = (uint8_t)family, .sdiag_protocol = (uint8_t)protocol, .idiag_states = ~0u },
	};
	static char buf[32768];
	uint32_t found = 0;
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), done = 0;

	*shut = -1;
	if (nl < 0)
		return 0;
	if (send(nl, &req, sizeof(req), 0) < 0)
		goto out;
	while (!done) {
		ssize_t n = recv(nl, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				done = 1;
				break;
			}
			struct inet_diag_msg *m = NLMSG_DATA(h);
			if (m->idiag_inode != (uint32_t)inode)
				continue;
			found = m->idiag_state == 10 ? m->idiag_wqueue : 0;
			*shut = 0;
			int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
				if (a->rta_type == INET_DIAG_SHUTDOWN)
					*shut = *(uint8_t *)RTA_DATA(a);
		}
	}
out:
	close(nl);
	return found;
}

struct tcp_held {
	int fd;             /* our copy, in repair mode */
};

/* The queue selected by TCP_REPAIR_QUEUE, read in place (repair-mode MSG_PEEK). */
static int peek_tcp_queue(int fd, int queue, uint32_t len, struct buf *out)
{
	if (!len)
		return 0;
	if (len > CKIMG_TCP_MAX_QUEUE)
		return -EMSGSIZE;
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof(queue)) < 0)
		return -errno;
	uint8_t *p = malloc(len);
	if (!p)
		return -ENOMEM;
	ssize_t n = recv(fd, p, len, MSG_PEEK | MSG_DONTWAIT);
	int err = n == (ssize_t)len ? buf_put(out, p, len) : (n < 0 ? -errno : -EIO);
	free(p);
	return err;
}

static int dump_established(struct capture *c, struct cap_fd *d, int fd)
{
	struct ckimg_tcp_fixed t = { .fixed_size = sizeof(t) };
	struct tcp_info ti;
	struct tcp_repair_window w;
	struct buf inq = { 0 }, outq = { 0 }, b = { 0 };
	socklen_t l;
	int on = 1, v, q, err = 0;

	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)) < 0)
		return fd_cannot(c, d, "TCP_REPAIR refused (%s): an established connection needs CAP_NET_ADMIN", strerror(errno));
	struct tcp_held *h = malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fd = fd;
	d->priv = h;
	l = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0)
		return -errno;
	if (ti.tcpi_options & TCPI_OPT_TIMESTAMPS)
		t.options |= CKIMG_TCP_OPT_TIMESTAMPS;
	if (ti.tcpi_options & TCPI_OPT_SACK)
		t.options |= CKIMG_TCP_OPT_SACK;
	if (ti.tcpi_options & TCPI_OPT_WSCALE) {
		t.options |= CKIMG_TCP_OPT_WSCALE;
		t.snd_wscale = ti.tcpi_snd_wscale;
		t.rcv_wscale = ti.tcpi_rcv_wscale;
	}
	t.mss = (uint32_t)geti(fd, IPPROTO_TCP, TCP_MAXSEG);
	t.timestamp = (uint32_t)geti(fd, IPPROTO_TCP, TCP_TIMESTAMP);
	l = sizeof(w);
	if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &l) < 0)
		return -errno;
	t.snd_wl1 = w.snd_wl1;
	t.snd_wnd = w.snd_wnd;
	t.max_window = w.max_window;
	t.rcv_wnd = w.rcv_wnd;
	t.rcv_wup = w.rcv_wup;
	if (ioctl(fd, SIOCINQ, &v) < 0)
		return -errno;
	t.inq_len = (uint32_t)v;
	if (ioctl(fd, SIOCOUTQ, &v) < 0)
		return -errno;
	t.outq_len = (uint32_t)v;
	if (ioctl(fd, SIOCOUTQNSD, &v) < 0)
		return -errno;
	t.unsent_len = (uint32_t)v;
	q = TCP_RECV_QUEUE;
	setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
	t.rcv_seq = (uint32_t)geti(fd, IPPROTO_TCP, TCP_QUEUE_SEQ);
	q = TCP_SEND_QUEUE;
	setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
	t.snd_seq = (uint32_t)geti(fd, IPPROTO_TCP, TCP_QUEUE_SEQ);
	if ((err = peek_tcp_queue(fd, TCP_SEND_QUEUE, t.outq_len, &outq)) ||
	    (err = peek_tcp_queue(fd, TCP_RECV_QUEUE, t.inq_len, &inq)))
		goto out;
	q = TCP_NO_QUEUE;
	setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
	if (!(err = buf_put(&b, &t, sizeof(t))) && !(err = buf_put(&b, outq.p, outq.len)) &&
	    !(err = buf_put(&b, inq.p, inq.len)))
		err = fd_emit(c, CKIMG_REC_TCP_STREAM, (uint32_t)d->fd, d->f.inode, &b);
out:
	buf_free(&inq);
	buf_free(&outq);
	buf_free(&b);
	return err;
}

static int inet_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_inet_fixed x = { .fixed_size = sizeof(x), .inode = d->f.inode };
	struct sockaddr_storage ss;
	struct linger lg;
	socklen_t l;
	int fd = fd_local(c, d), err, shut = -1;

	if (fd < 0)
		return fd;
	x.family = (uint32_t)geti(fd, SOL_SOCKET, SO_DOMAIN);
	x.type = (uint32_t)geti(fd, SOL_SOCKET, SO_TYPE);
	x.protocol = (uint32_t)geti(fd, SOL_SOCKET, SO_PROTOCOL);
	if (!((x.type == SOCK_STREAM && x.protocol == IPPROTO_TCP) || (x.type == SOCK_DGRAM && x.protocol == IPPROTO_UDP)))
		return fd_cannot(c, d, "IP sockets of type %u, protocol %u are not brought back (only TCP and UDP; raw "
				 "sockets are not)", x.type, x.protocol);
	l = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &l) == 0)
		x.local_port = put_addr(&ss, x.local_addr);
	l = sizeof(ss);
	int connected = getpeername(fd, (struct sockaddr *)&ss, &l) == 0;
	if (connected)
		x.peer_port = put_addr(&ss, x.peer_addr);
	if (x.protocol == IPPROTO_TCP) {
		struct tcp_info ti;
		l = sizeof(ti);
		x.state = getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0 ? ti.tcpi_state : 7;
	} else {
		x.state = connected ? 1 : 7;
	}
	if (geti(fd, SOL_SOCKET, SO_REUSEADDR) > 0)
		x.flags |= CKIMG_INET_REUSEADDR;
	if (geti(fd, SOL_SOCKET, SO_REUSEPORT) > 0)
		x.flags |= CKIMG_INET_REUSEPORT;
	if (geti(fd, SOL_SOCKET, SO_KEEPALIVE) > 0)
		x.flags |= CKIMG_INET_KEEPALIVE;
	if (geti(fd, SOL_SOCKET, SO_BROADCAST) > 0)
		x.flags |= CKIMG_INET_BROADCAST;
	if (x.family == AF_INET6 && geti(fd, IPPROTO_IPV6, IPV6_V6ONLY) > 0)
		x.flags |= CKIMG_INET_V6ONLY;
	if (x.protocol == IPPROTO_TCP) {
		if (geti(fd, IPPROTO_TCP, TCP_NODELAY) > 0)
			x.flags |= CKIMG_INET_NODELAY;
		x.keepidle = (uint32_t)geti(fd, IPPROTO_TCP, TCP_KEEPIDLE);
		x.keepintvl = (uint32_t)geti(fd, IPPROTO_TCP, TCP_KEEPINTVL);
		x.keepcnt = (uint32_t)geti(fd, IPPROTO_TCP, TCP_KEEPCNT);
	}
	l = sizeof(lg);
	if (getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &l) == 0 && lg.l_onoff) {
		x.flags |= CKIMG_INET_LINGER;
		x.linger = (uint32_t)lg.l_linger;
	}
	x.priority = (uint32_t)geti(fd, SOL_SOCKET, SO_PRIORITY);
	x.rcvlowat = (uint32_t)geti(fd, SOL_SOCKET, SO_RCVLOWAT);
	x.mark = (uint32_t)geti(fd, SOL_SOCKET, SO_MARK);
	if ((int)x.priority < 0)
		x.priority = 0;
	if ((int)x.rcvlowat < 0)
		x.rcvlowat = 0;
	if ((int)x.mark < 0)
		x.mark = 0;
	if (geti(fd, SOL_SOCKET, SO_DONTROUTE) > 0)
		x.more_flags |= CKIMG_INET2_DONTROUTE;
	if (geti(fd, SOL_SOCKET, SO_NO_CHECK) > 0)
		x.more_flags |= CKIMG_INET2_NO_CHECK;
	if (geti(fd, SOL_SOCKET, SO_OOBINLINE) > 0)
		x.more_flags |= CKIMG_INET2_OOBINLINE;
	socklen_t dl = sizeof(x.bound_dev);
	if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, x.bound_dev, &dl) < 0 || dl == 0)
		memset(x.bound_dev, 0, sizeof(x.bound_dev));
	x.bound_dev[sizeof(x.bound_dev) - 1] = 0;
	x.sndbuf = (uint32_t)geti(fd, SOL_SOCKET, SO_SNDBUF);
	x.rcvbuf = (uint32_t)geti(fd, SOL_SOCKET, SO_RCVBUF);
	if (x.protocol == IPPROTO_TCP && x.state == 10)
		x.backlog = inet_diag_of((int)x.family, IPPROTO_TCP, d->f.inode, &shut);
	if (x.protocol == IPPROTO_UDP) {      /* shutdown(2) of a UDP socket (TCP: its state says it) */
		inet_diag_of((int)x.family, IPPROTO_UDP, d->f.inode, &shut);
		if (shut > 0 && (shut & 1))
			x.flags |= CKIMG_INET_SHUT_RD;
		if (shut > 0 && (shut & 2))
			x.flags |= CKIMG_INET_SHUT_WR;
	}
	if (x.protocol == IPPROTO_TCP && x.state != 10 && x.state != 7 && x.state != 1)
		return fd_cannot(c, d, "TCP connection in state %u (closing or connecting) is not brought back; "
				 "only listening and established ones are", x.state);
	/* INET_SOCKET first, then (established) its TCP_STREAM, or (UDP) its waiting datagrams */
	struct buf b = { 0 };
	err = buf_put(&b, &x, sizeof(x));
	if (!err)
		err = fd_emit(c, CKIMG_REC_INET_SOCKET, (uint32_t)d->fd, d->f.inode, &b);
	buf_free(&b);
	if (!err && x.protocol == IPPROTO_UDP)
		err = dump_udp_queue(c, d, fd);
	if (!err && x.protocol == IPPROTO_TCP && x.state == 1)
		err = dump_established(c, d, fd);
	return err;
}

/* Let the connection go: back to normal when the target runs on; when it was killed, our
 * copy (the last reference) is closed while still in repair mode, which sends nothing. */
static void inet_release(struct capture *c, struct cap_fd *d, int killed)
{
	struct tcp_held *h = d->priv;

	if (!h)
		return;
	if (!killed) {
		int off = TCP_REPAIR_OFF_NO_WP;
		if (setsockopt(h->fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)) < 0) {
			off = TCP_REPAIR_OFF;
			setsockopt(h->fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off));
		}
	}
	free(h);
	d->priv = NULL;
}

const struct fd_ops inet_ops = {
	.name = "inet",
	.match = inet_match,
	.dump = inet_dump,
	.release = inet_release,
};
