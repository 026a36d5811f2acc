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
#include <sys/syscall.h>

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

/* kcmp(2) KCMP_EPOLL_TFD: is the file at fd `fd` of pid the one the toff-th watch of epoll
 * fd efd added under number tfd watches? 1 yes, 0 no, -1 kcmp cannot tell (no kcmp here) */
struct kcmp_epoll_slot_ { uint32_t efd, tfd, toff; };
static int same_watched_file(pid_t pid, int fd, int efd, unsigned int tfd, unsigned int toff)
{
	struct kcmp_epoll_slot_ slot = { (uint32_t)efd, tfd, toff };
	long r = syscall(SYS_kcmp, pid, pid, 7 /* KCMP_EPOLL_TFD */, fd, (unsigned long)&slot);
	if (r < 0 && (errno == ENOSYS || errno == EPERM || errno == EOPNOTSUPP))
		return -1;
	return r == 0;
}

/*
 * The fd on which the watched file of a watch is open: tfd itself when it still names it,
 * else another fd with the same inode that kcmp says is that file (the number was closed or
 * reused since the watch was added); -1 when the file is open under no fd of the process.
 * toff: how many watches before this one were added under the same number.
 */
static int watched_via(struct capture *c, struct cap_fd *d, unsigned int tfd, uint64_t ino, unsigned int toff)
{
	size_t cnt;
	struct cap_fd *all = fd_all(c, &cnt);
	int kcmp_ok = 1;

	for (size_t i = 0; i < cnt; i++)       /* tfd first */
		if (all[i].fd == (int)tfd && all[i].f.inode == ino) {
			int same = same_watched_file(c->pid, (int)tfd, d->fd, tfd, toff);
			if (same > 0 || (same < 0 && toff == 0))
				return (int)tfd;   /* (no kcmp here: the 1.1 rule, the number names the inode) */
			kcmp_ok = same >= 0;
		}
	for (size_t i = 0; kcmp_ok && i < cnt; i++)
		if (all[i].fd != (int)tfd && all[i].f.inode == ino && same_watched_file(c->pid, all[i].fd, d->fd, tfd, toff) > 0)
			return all[i].fd;
	return -1;
}

static int epoll_dump(struct capture *c, struct cap_fd *d)
{
	struct ckimg_epoll_fixed x = { .fixed_size = sizeof(x), .entry_size = sizeof(struct ckimg_epoll_entry) };
	struct buf ents = { 0 };
	int err = 0, lost = 0;

	for (const char *p = d->fdinfo; p && *p && !err && !lost; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		unsigned int tfd, events, toff = 0;
		unsigned long long data, ino;
		long long pos;
		if (sscanf(p, "tfd: %u events: %x data: %llx pos:%lli ino:%llx", &tfd, &events, &data, &pos, &ino) != 5)
			continue;
		/* earlier watches under the same number (fdinfo lists them in the kernel's order,
		 * the order kcmp's toff counts in) */
		for (size_t o = 0; o + sizeof(struct ckimg_epoll_entry) <= ents.len; o += sizeof(struct ckimg_epoll_entry)) {
			struct ckimg_epoll_entry prev;
			memcpy(&prev, ents.p + o, sizeof(prev));
			toff += prev.tfd == tfd;
		}
		/* the watch names a file; the number it was added under may since name another */
		int via = watched_via(c, d, tfd, ino, toff);
		if (via < 0) {
			err = fd_cannot(c, d, "epoll watch of fd %u: its file is open under no fd of the process", tfd);
			lost = 1;
			break;
		}
		struct ckimg_epoll_entry e = { tfd, events, data, ino, (uint32_t)via, 0 };
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
