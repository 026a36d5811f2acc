/*
 * Anon-inode fds (FORMAT.md 4.21-4.24), made again in the new child from their records:
 *   eventfd   eventfd(0, flags) then write(count) (the initial value is only 32 bits wide)
 *   timerfd   timerfd_create(clock), timerfd_settime relative to now, TFD_IOC_SET_TICKS for
 *             expirations not yet read
 *   signalfd  signalfd4(-1, mask)
 *   epoll     epoll_create1, then (post_open, when every fd is at its number) EPOLL_CTL_ADD of
 *             each watched fd with its events and data
 * A recorded fd of these kinds without its record (a 1.0 image) falls through to the
 * placeholder row, as before. Records are checked before the fork (rst_fd_records).
 */
#include "fds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif
#define MAX_NS (1ull << 62)

/* The FIXED part of a kind record, zero-extended; 0 or -EBADMSG with err set. */
static int fixed_of(const struct img_fdrec *r, void *out, size_t size, char *err, size_t errlen)
{
	uint32_t fs;

	if (r->len < 4)
		return snprintf(err, errlen, "payload shorter than its size field"), -EBADMSG;
	memcpy(&fs, r->p, 4);
	if (fs < size || fs > r->len)
		return snprintf(err, errlen, "fixed_size %u (expected >= %zu, <= %llu)", fs, size, (unsigned long long)r->len),
		       -EBADMSG;
	memcpy(out, r->p, size);
	return 0;
}

int eventfd_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_eventfd_fixed x;
	int e = fixed_of(r, &x, sizeof(x), err, errlen);
	if (!e && x.count == UINT64_MAX)
		return snprintf(err, errlen, "count 0xffffffffffffffff is beyond an eventfd's maximum"), -EBADMSG;
	return e;
}

int timerfd_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_timerfd_fixed x;
	int e = fixed_of(r, &x, sizeof(x), err, errlen);
	if (e)
		return e;
	if (x.clock_id != CLOCK_REALTIME && x.clock_id != CLOCK_MONOTONIC && x.clock_id != CLOCK_BOOTTIME &&
	    x.clock_id != CLOCK_REALTIME_ALARM && x.clock_id != CLOCK_BOOTTIME_ALARM)
		return snprintf(err, errlen, "clock %d is not a timerfd clock", x.clock_id), -EBADMSG;
	if (x.value_ns > MAX_NS || x.interval_ns > MAX_NS)
		return snprintf(err, errlen, "value/interval out of range"), -EBADMSG;
	return 0;
}

int signalfd_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_signalfd_fixed x;
	return fixed_of(r, &x, sizeof(x), err, errlen);
}

/* Watch i; a 1.1 entry (24 bytes) has no via_fd: the watched file is at tfd. */
static void epoll_entry(const struct img_fdrec *r, const struct ckimg_epoll_fixed *x, uint32_t i, struct ckimg_epoll_entry *en)
{
	size_t n = x->entry_size < sizeof(*en) ? x->entry_size : sizeof(*en);
	memset(en, 0, sizeof(*en));
	memcpy(en, r->p + x->fixed_size + (uint64_t)i * x->entry_size, n);
	if (n < sizeof(*en))
		en->via_fd = en->tfd;
}

int epoll_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_epoll_fixed x;
	int e = fixed_of(r, &x, sizeof(x), err, errlen);
	if (e)
		return e;
	if (x.entry_size < CKIMG_EPOLL_ENTRY_1_1 || x.entry_size > 4096)
		return snprintf(err, errlen, "entry_size %u", x.entry_size), -EBADMSG;
	if ((uint64_t)x.count * x.entry_size > r->len - x.fixed_size)
		return snprintf(err, errlen, "%u watches do not fit the payload", x.count), -EBADMSG;
	for (uint32_t i = 0; i < x.count; i++) {
		struct ckimg_epoll_entry en;
		epoll_entry(r, &x, i, &en);
		if (en.tfd > (1u << 20) || en.via_fd > (1u << 20))
			return snprintf(err, errlen, "watch %u: fd %u via fd %u", i, en.tfd, en.via_fd), -EBADMSG;
	}
	return 0;
}

static const struct img_fdrec *rec(struct rst_fds *s, uint16_t type, const struct img_fd *d, const char *what)
{
	char want[64];
	snprintf(want, sizeof(want), "anon_inode:[%s]", what);
	if (d->f.kind != CKIMG_FD_ANON_INODE || strcmp(d->path.s, want))
		return NULL;
	return img_fdrec_by_fd(rst_fds_img(s), type, d->f.fd);
}

static int eventfd_match(struct rst_fds *s, const struct img_fd *d) { return rec(s, CKIMG_REC_EVENTFD, d, "eventfd") != NULL; }
static int timerfd_match(struct rst_fds *s, const struct img_fd *d) { return rec(s, CKIMG_REC_TIMERFD, d, "timerfd") != NULL; }
static int signalfd_match(struct rst_fds *s, const struct img_fd *d) { return rec(s, CKIMG_REC_SIGNALFD, d, "signalfd") != NULL; }
static int epoll_match(struct rst_fds *s, const struct img_fd *d) { return rec(s, CKIMG_REC_EPOLL, d, "eventpoll") != NULL; }

static int eventfd_open(struct rst_fds *s, struct rst_file *f)
{
	struct ckimg_eventfd_fixed x;
	memcpy(&x, rec(s, CKIMG_REC_EVENTFD, f->d, "eventfd")->p, sizeof(x));
	int fd = eventfd(0, EFD_CLOEXEC | ((x.flags & CKIMG_EVENTFD_SEMAPHORE) ? EFD_SEMAPHORE : 0));
	if (fd < 0)
		return rst_fds_fail(s, -errno, "eventfd");
	if (x.count && write(fd, &x.count, 8) != 8) {
		int e = -errno;
		close(fd);
		return rst_fds_fail(s, e, "eventfd count %llu", (unsigned long long)x.count);
	}
	return fd;
}

static int timerfd_open(struct rst_fds *s, struct rst_file *f)
{
	struct ckimg_timerfd_fixed x;
	memcpy(&x, rec(s, CKIMG_REC_TIMERFD, f->d, "timerfd")->p, sizeof(x));
	int fd = timerfd_create(x.clock_id, TFD_CLOEXEC), e;
	if (fd < 0)
		return rst_fds_fail(s, -errno, "timerfd_create (clock %d)", x.clock_id);
	/* a periodic timer that expired and was not read shows no value (the kernel re-arms it
	 * on read): it runs on from the next period */
	if (!x.value_ns && x.interval_ns && x.ticks)
		x.value_ns = x.interval_ns;
	if (x.value_ns) {
		struct itimerspec its = {
			{ (time_t)(x.interval_ns / 1000000000ull), (long)(x.interval_ns % 1000000000ull) },
			{ (time_t)(x.value_ns / 1000000000ull), (long)(x.value_ns % 1000000000ull) } };
		if (timerfd_settime(fd, 0, &its, NULL) < 0) {
			e = rst_fds_fail(s, -errno, "timerfd_settime");
			close(fd);
			return e;
		}
	}
	if (x.ticks && ioctl(fd, TFD_IOC_SET_TICKS, &x.ticks) < 0) {
		e = rst_fds_fail(s, -errno, "timerfd: %llu expirations not read (TFD_IOC_SET_TICKS)", (unsigned long long)x.ticks);
		close(fd);
		return e;
	}
	return fd;
}

static int signalfd_open(struct rst_fds *s, struct rst_file *f)
{
	struct ckimg_signalfd_fixed x;
	memcpy(&x, rec(s, CKIMG_REC_SIGNALFD, f->d, "signalfd")->p, sizeof(x));
	int fd = (int)syscall(SYS_signalfd4, -1, &x.sigmask, 8, O_CLOEXEC);   /* SFD_CLOEXEC == O_CLOEXEC */
	return fd < 0 ? rst_fds_fail(s, -errno, "signalfd (mask %#llx)", (unsigned long long)x.sigmask) : fd;
}

static int epoll_open(struct rst_fds *s, struct rst_file *f)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);
	return fd < 0 ? rst_fds_fail(s, -errno, "epoll_create1") : fd;
}

/* Every fd is at its number now: add the watches. */
static int epoll_post_open(struct rst_fds *s, struct rst_file *f)
{
	const struct img_fdrec *r = rec(s, CKIMG_REC_EPOLL, f->d, "eventpoll");
	struct ckimg_epoll_fixed x;

	memcpy(&x, r->p, sizeof(x));
	for (uint32_t i = 0; i < x.count; i++) {
		struct ckimg_epoll_entry en;
		epoll_entry(r, &x, i, &en);
		struct epoll_event ev = { .events = en.events, .data.u64 = en.data };
		int tfd = (int)en.tfd, saved = -1, cloexec = 0, e = 0;
		if (en.via_fd != en.tfd) {
			/* the watch was added under a number that now names another file (or none):
			 * put the watched file there for the add, then give the number back */
			cloexec = fcntl(tfd, F_GETFD);
			if (cloexec >= 0 && (saved = fcntl(tfd, F_DUPFD_CLOEXEC, 3)) < 0)
				return rst_fds_fail(s, -errno, "epoll fd %u: setting fd %u aside", f->d->f.fd, en.tfd);
			if (dup2((int)en.via_fd, tfd) < 0)
				return rst_fds_fail(s, -errno, "epoll fd %u: fd %u at %u for its watch", f->d->f.fd, en.via_fd, en.tfd);
		}
		if (epoll_ctl((int)f->d->f.fd, EPOLL_CTL_ADD, tfd, &ev) < 0)
			e = -errno;
		if (en.via_fd != en.tfd) {
			if (saved >= 0) {
				dup3(saved, tfd, (cloexec & FD_CLOEXEC) ? O_CLOEXEC : 0);
				close(saved);
			} else
				close(tfd);
		}
		if (e)
			return rst_fds_fail(s, e, "epoll fd %u: watching fd %u%s (events %#x)", f->d->f.fd, en.tfd,
					    en.via_fd != en.tfd ? " (its file, from another fd)" : "", en.events);
	}
	return 0;
}

const struct rst_fd_ops eventfd_ops = { .name = "eventfd", .match = eventfd_match, .open = eventfd_open };
const struct rst_fd_ops timerfd_ops = { .name = "timerfd", .match = timerfd_match, .open = timerfd_open };
const struct rst_fd_ops signalfd_ops = { .name = "signalfd", .match = signalfd_match, .open = signalfd_open };
const struct rst_fd_ops epoll_ops = { .name = "epoll", .match = epoll_match, .open = epoll_open, .post_open = epoll_post_open };
