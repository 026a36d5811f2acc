/*
 * Anon-inode fds (FORMAT.md 4.21-4.24): eventfd, timerfd, signalfd, epoll. Their state is in
 * /proc/PID/fdinfo/N (proc(5)), which the generic code has read already:
 *   eventfd   "eventfd-count: %16llx", "eventfd-id: %d", "eventfd-semaphore: %d"
 *   timerfd   "clockid: %d", "ticks: %llu", "settime flags: 0%o", "it_value: (%llu, %llu)",
 *             "it_interval: (%llu, %llu)"
 *   signalfd  "sigmask:\t%016llx"
 *   eventpoll one "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x" per watch
 * Nothing is taken from the target. One file, four rows of the kinds table.
 */
#include "fds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *field(const char *info, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, n) && p[n] == ':')
			return p + n + 1;
	return NULL;
}

static int anon_is(const struct cap_fd *d, const char *what)
{
	char want[64];
	snprintf(want, sizeof(want), "anon_inode:[%s]", what);
	return d->f.kind == CKIMG_FD_ANON_INODE && !strcmp(d->link, want);
}

static int emit(struct capture *c, struct cap_fd *d, uint16_t type, const void *fx, size_t fl, const struct buf *var)
{
	struct buf b = { 0 };
	int err = buf_put(&b, fx, fl);
	if (!err && var)
		err = buf_put(&b, var->p, var->len);
	if (!err)
		err = fd_emit(c, type, (uint32_t)d->fd, 0, &b);
	buf_free(&b);
	return err;
}

static int eventfd_match(struct capture *c, struct cap_fd *d) { return anon_is(d, "eventfd"); }
static int timerfd_match(struct capture *c, struct cap_fd *d) { return anon_is(d, "timerfd"); }
static int signalfd_match(struct capture *c, struct cap_fd *d) { return anon_is(d, "signalfd"); }
static int epoll_match(struct capture *c, struct cap_fd *d) { return anon_is(d, "eventpoll"); }

static int eventfd_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_eventfd_fixed x = { .fixed_size = sizeof(x) };
	const char *v = d->fdinfo ? field(d->fdinfo, "eventfd-count") : NULL;

	if (!v)
		return fd_cannot(c, d, "fdinfo has no eventfd-count");
	x.count = strtoull(v, NULL, 16);
	if ((v = field(d->fdinfo, "eventfd-id")))
		x.id = strtoull(v, NULL, 10);
	if ((v = field(d->fdinfo, "eventfd-semaphore")) && strtoul(v, NULL, 10))
		x.flags |= CKIMG_EVENTFD_SEMAPHORE;
	return emit(c, d, CKIMG_REC_EVENTFD, &x, sizeof(x), NULL);
}

static int timerfd_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_timerfd_fixed x = { .fixed_size = sizeof(x) };
	unsigned long long s, ns;
	const char *v;

	if (!d->fdinfo || !(v = field(d->fdinfo, "clockid")))
		return fd_cannot(c, d, "fdinfo has no timerfd state");
	x.clock_id = (int32_t)strtol(v, NULL, 10);
	if ((v = field(d->fdinfo, "ticks")))
		x.ticks = strtoull(v, NULL, 10);
	if ((v = field(d->fdinfo, "settime flags")))
		x.settime_flags = (uint32_t)strtoul(v, NULL, 8);
	if ((v = field(d->fdinfo, "it_value")) && sscanf(v, " (%llu, %llu)", &s, &ns) == 2)
		x.value_ns = s * 1000000000ull + ns;
	if ((v = field(d->fdinfo, "it_interval")) && sscanf(v, " (%llu, %llu)", &s, &ns) == 2)
		x.interval_ns = s * 1000000000ull + ns;
	if (x.settime_flags & 2)
		cap_warn("fd %d (timerfd): TFD_TIMER_CANCEL_ON_SET is not restored (the timer comes back relative)", d->fd);
	return emit(c, d, CKIMG_REC_TIMERFD, &x, sizeof(x), NULL);
}

static int signalfd_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_signalfd_fixed x = { .fixed_size = sizeof(x) };
	const char *v = d->fdinfo ? field(d->fdinfo, "sigmask") : NULL;

	if (!v)
		return fd_cannot(c, d, "fdinfo has no sigmask");
	x.sigmask = strtoull(v, NULL, 16);
	return emit(c, d, CKIMG_REC_SIGNALFD, &x, sizeof(x), NULL);
}

/* The inode of the target's fd n (0 if it is not open). */
static uint64_t fd_inode(struct capture *c, int n)
{
	size_t cnt;
	struct cap_fd *all = fd_all(c, &cnt);
	for (size_t i = 0; i < cnt; i++)
		if (all[i].fd == n)
			return all[i].f.inode;
	return 0;
}

static int epoll_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_epoll_fixed x = { .fixed_size = sizeof(x), .entry_size = sizeof(struct ckimg_epoll_entry) };
	struct buf ents = { 0 };
	int err = 0, lost = 0;

	for (const char *p = d->fdinfo; p && *p && !err && !lost; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		unsigned int tfd, events;
		unsigned long long data, ino;
		long long pos;
		if (sscanf(p, "tfd: %u events: %x data: %llx pos:%lli ino:%llx", &tfd, &events, &data, &pos, &ino) != 5)
			continue;
		/* the watch names a file; the number it was added under may since name another */
		if (fd_inode(c, (int)tfd) != ino) {
			err = fd_cannot(c, d, "epoll watch of fd %u: that number now names another file (or none)", tfd);
			lost = 1;
			break;
		}
		struct ckimg_epoll_entry e = { tfd, events, data, ino };
		err = buf_put(&ents, &e, sizeof(e));
		x.count++;
	}
	if (!err && !lost)
		err = emit(c, d, CKIMG_REC_EPOLL, &x, sizeof(x), &ents);
	buf_free(&ents);
	return err;
}

const struct fd_ops eventfd_ops = { .name = "eventfd", .match = eventfd_match, .dump = eventfd_dump };
const struct fd_ops timerfd_ops = { .name = "timerfd", .match = timerfd_match, .dump = timerfd_dump };
const struct fd_ops signalfd_ops = { .name = "signalfd", .match = signalfd_match, .dump = signalfd_dump };
const struct fd_ops epoll_ops = { .name = "epoll", .match = epoll_match, .dump = epoll_dump };
