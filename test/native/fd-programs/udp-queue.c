/*
 * Datagrams waiting in UDP sockets. Sets up, prints "ready", and on each "check" line receives
 * them and verifies bytes, boundaries and source addresses, printing "ok" or "FAIL: ..." lines:
 *  - an IPv4 server on 127.0.0.1 with three datagrams: one from a socket of ours (still open:
 *    the source is exact), one from a socket that was closed (its port is free again on
 *    restore: the source is exact too), and an empty one;
 *  - an IPv6 server on the wildcard address with a datagram from [::1] (closed sender);
 *  - a connected IPv4 socket with a datagram from its peer (a socket of ours);
 *  - shut down sockets (CRIU zdtm socket_udp_shutdown): a connected one for writing (send fails
 *    with EPIPE) and a bound one for reading (a blocking recv returns 0 at once).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int fails;
static int shw, shr;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; } } while (0)

static int srv4, ours, srv6, conn, peer;
static uint16_t ours_port, gone_port, gone6_port, peer_port;

static uint16_t bound_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &l);
	return ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port : ((struct sockaddr_in6 *)&a)->sin6_port);
}

static struct sockaddr_in lo4(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static void setup(void)
{
	struct sockaddr_in a = lo4(0);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };

	srv4 = socket(AF_INET, SOCK_DGRAM, 0);
	ours = socket(AF_INET, SOCK_DGRAM, 0);
	int gone = socket(AF_INET, SOCK_DGRAM, 0);
	if (bind(srv4, (struct sockaddr *)&a, sizeof(a)) || bind(ours, (struct sockaddr *)&a, sizeof(a)) ||
	    bind(gone, (struct sockaddr *)&a, sizeof(a)))
		exit(10);
	struct sockaddr_in to = lo4(bound_port(srv4));
	ours_port = bound_port(ours);
	gone_port = bound_port(gone);
	if (sendto(ours, "from-ours", 9, 0, (struct sockaddr *)&to, sizeof(to)) != 9 ||
	    sendto(gone, "from-gone", 9, 0, (struct sockaddr *)&to, sizeof(to)) != 9 ||
	    sendto(ours, "", 0, 0, (struct sockaddr *)&to, sizeof(to)) != 0)
		exit(11);
	close(gone);

	srv6 = socket(AF_INET6, SOCK_DGRAM, 0);
	int one = 1;
	setsockopt(srv6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(srv6, (struct sockaddr *)&a6, sizeof(a6)))
		exit(12);
	int gone6 = socket(AF_INET6, SOCK_DGRAM, 0);
	struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	if (bind(gone6, (struct sockaddr *)&lo6, sizeof(lo6)))
		exit(13);
	gone6_port = bound_port(gone6);
	lo6.sin6_port = htons(bound_port(srv6));
	if (sendto(gone6, "six", 3, 0, (struct sockaddr *)&lo6, sizeof(lo6)) != 3)
		exit(14);
	close(gone6);

	conn = socket(AF_INET, SOCK_DGRAM, 0);
	peer = socket(AF_INET, SOCK_DGRAM, 0);
	if (bind(conn, (struct sockaddr *)&a, sizeof(a)) || bind(peer, (struct sockaddr *)&a, sizeof(a)))
		exit(15);
	peer_port = bound_port(peer);
	struct sockaddr_in pa = lo4(peer_port), ca = lo4(bound_port(conn));
	if (connect(conn, (struct sockaddr *)&pa, sizeof(pa)) || sendto(peer, "to-connected", 12, 0, (struct sockaddr *)&ca, sizeof(ca)) != 12)
		exit(16);

	shw = socket(AF_INET, SOCK_DGRAM, 0);
	shr = socket(AF_INET, SOCK_DGRAM, 0);
	if (connect(shw, (struct sockaddr *)&pa, sizeof(pa)) || shutdown(shw, SHUT_WR) || bind(shr, (struct sockaddr *)&a, sizeof(a)))
		exit(17);
	shutdown(shr, SHUT_RD);    /* unconnected: ENOTCONN, yet the socket is marked */
	struct timeval tv = { 3, 0 };
	setsockopt(shr, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* One datagram: its bytes equal want and it came from port `port` of the loopback address. */
static int got(int fd, const char *want, uint16_t port)
{
	char buf[256];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n)) {
		printf("FAIL: got %zd bytes instead of '%s' (%s)\n", n, want, n < 0 ? strerror(errno) : "");
		return 0;
	}
	uint16_t p = ntohs(from.ss_family == AF_INET ? ((struct sockaddr_in *)&from)->sin_port : ((struct sockaddr_in6 *)&from)->sin6_port);
	int lo = from.ss_family == AF_INET ? ((struct sockaddr_in *)&from)->sin_addr.s_addr == htonl(INADDR_LOOPBACK)
					   : IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&from)->sin6_addr);
	if (p != port || !lo) {
		printf("FAIL: '%s' came from port %u (%s loopback), not %u\n", want, p, lo ? "" : "not", port);
		return 0;
	}
	return 1;
}

static void check(void)
{
	fails = 0;
	CHECK(got(srv4, "from-ours", ours_port), "datagram from our socket");
	CHECK(got(srv4, "from-gone", gone_port), "datagram from a closed socket");
	CHECK(got(srv4, "", ours_port), "empty datagram");
	char b;
	CHECK(recv(srv4, &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "a datagram too many");
	CHECK(got(srv6, "six", gone6_port), "IPv6 datagram");
	CHECK(got(conn, "to-connected", peer_port), "datagram to the connected socket");
	CHECK(send(shw, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "a socket shut down for writing sends (%s)", strerror(errno));
	CHECK(recv(shr, &b, 1, 0) == 0, "a socket shut down for reading waits or reads (%s)", strerror(errno));
	if (!fails)
		printf("ok\n");
}

int main(void)
{
	char line[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	setup();
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin))
		if (!strncmp(line, "check", 5))
			check();
	return 0;
}
