/*
 * A bound datagram server whose queue holds messages from named senders (CRIU zdtm
 * socket_snd_addr): from a client bound to an abstract name and closed since, from a client
 * bound to a path and closed since (its socket file removed), from a client that is still open
 * and bound, and from an unbound sender. argv[1]: a scratch dir. Prints "ready"; on each "check"
 * line reads the queue and verifies each message's text and the name recvmsg gives for its
 * sender, then that the still-open client's name is still its own, printing "ok" or "FAIL: ...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; } } while (0)

static int srv, live;
static struct sockaddr_un srv_a, names[4];
static socklen_t srv_l, lens[4];

static socklen_t addr(struct sockaddr_un *a, const char *name, size_t len)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, name, len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
}

static int sender(int i, const char *msg)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (lens[i] && bind(fd, (struct sockaddr *)&names[i], lens[i]) < 0)
		return -1;
	if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&srv_a, srv_l) < 0)
		return -1;
	return fd;
}

static void check(void)
{
	static const char *want[4] = { "from abstract", "from a path", "from the live one", "from nobody" };
	fails = 0;
	for (int i = 0; i < 4; i++) {
		char buf[64];
		struct sockaddr_un from;
		socklen_t fl = sizeof(from);
		memset(&from, 0, sizeof(from));
		ssize_t n = recvfrom(srv, buf, sizeof(buf) - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			CHECK(0, "message %d: %s", i, strerror(errno));
			continue;
		}
		buf[n] = 0;
		CHECK(!strcmp(buf, want[i]), "message %d reads \"%s\"", i, buf);
		socklen_t got = fl > offsetof(struct sockaddr_un, sun_path) ? fl - (socklen_t)offsetof(struct sockaddr_un, sun_path) : 0;
		socklen_t exp = lens[i] ? lens[i] - (socklen_t)offsetof(struct sockaddr_un, sun_path) : 0;
		if (i == 1)      /* a path: compare as a string */
			CHECK(got && !strcmp(from.sun_path, names[i].sun_path), "message %d: sender \"%s\"", i, from.sun_path);
		else
			CHECK(got == exp && !memcmp(from.sun_path, names[i].sun_path, exp), "message %d: sender of %u bytes (want %u)",
			      i, (unsigned)got, (unsigned)exp);
	}
	struct sockaddr_un me;
	socklen_t ml = sizeof(me);
	CHECK(getsockname(live, (struct sockaddr *)&me, &ml) == 0 && ml == lens[2] && !memcmp(&me, &names[2], ml),
	      "the live client lost its name");
	if (!fails)
		printf("ok\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	char line[64], path[4096];
	int fd;

	if (argc < 2)
		return 2;
	srv = socket(AF_UNIX, SOCK_DGRAM, 0);
	srv_l = addr(&srv_a, "\0ckimg-senders-srv", 18);
	snprintf(path, sizeof(path), "%s/sender.sock", argv[1]);
	lens[0] = addr(&names[0], "\0ckimg-sender-gone", 18);
	lens[1] = addr(&names[1], path, strlen(path) + 1);
	lens[2] = addr(&names[2], "\0ckimg-sender-live", 18);
	lens[3] = 0;
	if (bind(srv, (struct sockaddr *)&srv_a, srv_l) < 0)
		return 3;
	if ((fd = sender(0, "from abstract")) < 0)
		return 4;
	close(fd);
	if ((fd = sender(1, "from a path")) < 0)
		return 5;
	close(fd);
	unlink(path);
	if ((live = sender(2, "from the live one")) < 0)
		return 6;
	if ((fd = sender(3, "from nobody")) < 0)
		return 7;
	close(fd);
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin))
		if (!strncmp(line, "check", 5))
			check();
	return 0;
}
