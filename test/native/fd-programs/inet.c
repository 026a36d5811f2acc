/*
 * IPv4/IPv6 sockets with state in flight. Sets up, prints "ready", and on each "check" line
 * verifies the state after restore, printing "ok" or "FAIL: ...":
 *  - a TCP listener on 127.0.0.1 (backlog 5, SO_REUSEADDR, TCP_NODELAY) and an IPv6-only one on ::1;
 *  - an established connection to it, both ends ours, with unread bytes in both directions
 *    (restored with TCP repair: the same ports, sequence numbers, queues);
 *  - a bound UDP socket and a UDP socket connected to it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; } } while (0)

static int lis, lis6, cli, srv, ub, uc;
static int ub_dev;     /* ub is bound to device lo (SO_BINDTODEVICE needs CAP_NET_RAW) */
static struct sockaddr_in la, ua;
static struct sockaddr_in6 la6;
static struct sockaddr_in cli_addr;

static int geti(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);
	getsockopt(fd, level, opt, &v, &l);
	return v;
}

static void setup(void)
{
	socklen_t l;
	int one = 1;

	lis = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lis, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(lis, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	la.sin_family = AF_INET;
	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lis, (struct sockaddr *)&la, sizeof(la)) || listen(lis, 5))
		exit(10);
	l = sizeof(la);
	getsockname(lis, (struct sockaddr *)&la, &l);

	lis6 = socket(AF_INET6, SOCK_STREAM, 0);
	setsockopt(lis6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	la6.sin6_family = AF_INET6;
	la6.sin6_addr = in6addr_loopback;
	if (bind(lis6, (struct sockaddr *)&la6, sizeof(la6)) || listen(lis6, 9))
		exit(11);
	l = sizeof(la6);
	getsockname(lis6, (struct sockaddr *)&la6, &l);

	cli = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(cli, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (connect(cli, (struct sockaddr *)&la, sizeof(la)))
		exit(12);
	srv = accept(lis, NULL, NULL);
	if (srv < 0)
		exit(13);
	l = sizeof(cli_addr);
	getsockname(cli, (struct sockaddr *)&cli_addr, &l);
	char big[100000];
	memset(big, 'z', sizeof(big));
	if (write(cli, "hello-tcp", 9) != 9 || write(srv, "reply-from-server", 17) != 17)
		exit(14);
	usleep(100000);     /* let both reach the other side's receive queue */

	ub = socket(AF_INET, SOCK_DGRAM, 0);
	ub_dev = setsockopt(ub, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) == 0;
	ua.sin_family = AF_INET;
	ua.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(ub, (struct sockaddr *)&ua, sizeof(ua)))
		exit(15);
	l = sizeof(ua);
	getsockname(ub, (struct sockaddr *)&ua, &l);
	uc = socket(AF_INET, SOCK_DGRAM, 0);
	if (connect(uc, (struct sockaddr *)&ua, sizeof(ua)))
		exit(16);
}

static int read_is(int fd, const char *want)
{
	char buf[256];
	size_t got = 0, n = strlen(want);
	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);
		if (r <= 0)
			return 0;
		got += (size_t)r;
	}
	return !memcmp(buf, want, n);
}

static void check(void)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	char buf[64];

	fails = 0;
	struct timeval tv = { 5, 0 };
	setsockopt(srv, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(cli, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CHECK(read_is(srv, "hello-tcp"), "server side: the unread request is lost");
	CHECK(read_is(cli, "reply-from-server"), "client side: the unread reply is lost");
	CHECK(write(cli, "ping", 4) == 4 && read_is(srv, "ping"), "connection does not carry new bytes client→server");
	CHECK(write(srv, "pong", 4) == 4 && read_is(cli, "pong"), "connection does not carry new bytes server→client");
	CHECK(getsockname(cli, (struct sockaddr *)&a, &l) == 0 && a.sin_port == cli_addr.sin_port, "client port changed");
	CHECK(geti(cli, SOL_SOCKET, SO_KEEPALIVE) == 1, "SO_KEEPALIVE lost");
	CHECK(geti(lis, SOL_SOCKET, SO_ACCEPTCONN) == 1, "listener not listening");
	CHECK(geti(lis, SOL_SOCKET, SO_REUSEADDR) == 1, "SO_REUSEADDR lost");
	CHECK(geti(lis, IPPROTO_TCP, TCP_NODELAY) == 1, "TCP_NODELAY lost");
	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&la, sizeof(la)) == 0, "connect to the restored listener: %s", strerror(errno));
	int s = accept(lis, NULL, NULL);
	CHECK(s >= 0 && write(c, "x", 1) == 1 && read(s, buf, 1) == 1, "new connection carries no data");
	close(c);
	close(s);
	CHECK(geti(lis6, IPPROTO_IPV6, IPV6_V6ONLY) == 1, "IPV6_V6ONLY lost");
	c = socket(AF_INET6, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&la6, sizeof(la6)) == 0, "connect to the IPv6 listener: %s", strerror(errno));
	close(c);
	CHECK(send(uc, "udp!", 4, 0) == 4, "UDP send: %s", strerror(errno));
	setsockopt(ub, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CHECK(recv(ub, buf, sizeof(buf), 0) == 4 && !memcmp(buf, "udp!", 4), "UDP datagram not received on the bound port");
	if (ub_dev) {
		char dev[32] = { 0 };
		socklen_t dl = sizeof(dev);
		CHECK(getsockopt(ub, SOL_SOCKET, SO_BINDTODEVICE, dev, &dl) == 0 && !strcmp(dev, "lo"), "SO_BINDTODEVICE: '%s', was 'lo'", dev);
	}
	if (!fails)
		printf("ok\n");
}

int main(void)
{
	char line[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	setup();
	printf("ready %d\n", ntohs(la.sin_port));
	while (fgets(line, sizeof(line), stdin))
		if (!strncmp(line, "check", 5))
			check();
	return 0;
}
