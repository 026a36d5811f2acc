/*
 * Anon-inode fds come back with their state (CRIU zdtm eventfs00, timerfd, signalfd00,
 * epoll): an eventfd holding 5, a semaphore eventfd holding 3, a periodic timerfd and a far
 * one-shot one, a signalfd for SIGUSR1 (blocked), and an epoll set watching them all plus a
 * pipe, each with its own events and data (one edge-triggered).
 */
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include "zdtm.h"

int main(void)
{
	int efd = eventfd(0, EFD_NONBLOCK), sem = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), far = timerfd_create(CLOCK_BOOTTIME, 0);
	int p[2], ep = epoll_create1(0);
	uint64_t v = 5;
	sigset_t mask;

	if (pipe(p))
		fail("pipe");
	write(efd, &v, 8);
	v = 3;
	write(sem, &v, 8);
	struct itimerspec its = { { 0, 300000000 }, { 0, 300000000 } }, farv = { { 0, 0 }, { 7200, 0 } };
	timerfd_settime(tfd, 0, &its, NULL);
	timerfd_settime(far, 0, &farv, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK);
	struct { int fd; uint32_t ev; uint64_t data; } w[] = {
		{ efd, EPOLLIN, 0x1111 }, { tfd, EPOLLIN, 0x2222 }, { sfd, EPOLLIN, 0x3333 },
		{ p[0], EPOLLIN | EPOLLET, 0x4444 }, { sem, EPOLLIN | EPOLLOUT, 0x5555 },
	};
	for (int i = 0; i < 5; i++) {
		struct epoll_event ev = { .events = w[i].ev, .data.u64 = w[i].data };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, w[i].fd, &ev))
			fail("epoll_ctl %d: %s", i, strerror(errno));
	}
	ready();
	wait_check();

	/* eventfd counts */
	if (read(efd, &v, 8) != 8 || v != 5)
		fail("eventfd count %llu", (unsigned long long)v);
	if (read(sem, &v, 8) != 8 || v != 1 || read(sem, &v, 8) != 8 || read(sem, &v, 8) != 8 || read(sem, &v, 8) != -1)
		fail("semaphore eventfd did not give 1, 1, 1, then EAGAIN");
	/* timerfds */
	struct itimerspec cur;
	timerfd_gettime(tfd, &cur);
	if (cur.it_interval.tv_nsec != 300000000)
		fail("timerfd interval %ld", cur.it_interval.tv_nsec);
	timerfd_gettime(far, &cur);
	if (cur.it_value.tv_sec > 7200 || cur.it_value.tv_sec < 7000)
		fail("far timerfd: %ld s left", (long)cur.it_value.tv_sec);
	/* the epoll set: a pipe write and a signal arrive with their data, the timer fires */
	write(p[1], "x", 1);
	raise(SIGUSR1);
	/* the semaphore eventfd is always writable (EPOLLOUT), so epoll_wait returns at once:
	 * bound the loop by time, not by rounds, to give the 300 ms timer its chance */
	int seen = 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (now = t0; seen != 0xe && now.tv_sec - t0.tv_sec < 4; clock_gettime(CLOCK_MONOTONIC, &now)) {
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, 100);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == 0x2222) {
				seen |= 2;
				read(tfd, &v, 8);
			} else if (evs[i].data.u64 == 0x3333) {
				struct signalfd_siginfo si;
				if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1)
					seen |= 4;
			} else if (evs[i].data.u64 == 0x4444) {
				char c;
				read(p[0], &c, 1);
				seen |= 8;
			} else if (evs[i].data.u64 != 0x5555 && evs[i].data.u64 != 0x1111) {
				fail("unknown epoll data %llx", (unsigned long long)evs[i].data.u64);
			}
		}
	}
	if (seen != 0xe)
		fail("epoll saw %#x of 0xe (timer 2, signalfd 4, pipe 8)", seen);
	return finish();
}
