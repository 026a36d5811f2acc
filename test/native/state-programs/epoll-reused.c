/* Epoll watches whose number no longer names the watched file (CRIU zdtm epoll, epoll01): the
 * kernel keys a watch by (file, number), so it outlives the close of the number it was added
 * under while the file stays open elsewhere. Three pipes' read ends, each watched under a
 * dup'ed number: pipe A's number closed, pipe B's number re-used by /dev/null, pipe C's number
 * still its own. After restore: data written into each pipe is reported with that watch's
 * data, the re-used number still names /dev/null (with its FD_CLOEXEC), and the closed one
 * stays closed. */
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include "zdtm.h"

#define A_NO 500
#define B_NO 501
#define C_NO 502

int main(void)
{
	int pa[2], pb[2], pc[2], ep, nul;
	struct epoll_event ev;
	struct stat st, nst;

	if (pipe(pa) || pipe(pb) || pipe(pc) || (ep = epoll_create1(0)) < 0)
		return fail("setup: %s", strerror(errno)), finish();
	dup2(pa[0], A_NO);
	dup2(pb[0], B_NO);
	dup2(pc[0], C_NO);
	ev.events = EPOLLIN; ev.data.u64 = 0xa;
	epoll_ctl(ep, EPOLL_CTL_ADD, A_NO, &ev);
	ev.events = EPOLLIN | EPOLLET; ev.data.u64 = 0xb;
	epoll_ctl(ep, EPOLL_CTL_ADD, B_NO, &ev);
	ev.events = EPOLLIN; ev.data.u64 = 0xc;
	epoll_ctl(ep, EPOLL_CTL_ADD, C_NO, &ev);
	close(A_NO);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	dup3(nul, B_NO, O_CLOEXEC);
	close(nul);
	ready();
	wait_check();
	if (fcntl(A_NO, F_GETFD) != -1 || errno != EBADF)
		fail("fd %d is open again", A_NO);
	if (fstat(B_NO, &st) || stat("/dev/null", &nst) || st.st_rdev != nst.st_rdev)
		fail("fd %d no longer names /dev/null", B_NO);
	if (fcntl(B_NO, F_GETFD) != FD_CLOEXEC)
		fail("fd %d lost FD_CLOEXEC", B_NO);
	struct epoll_event out[4];
	if (epoll_wait(ep, out, 4, 0) != 0)
		fail("events before any write");
	int fds[3] = { pa[1], pb[1], pc[1] };
	for (int i = 0; i < 3; i++) {
		if (write(fds[i], "x", 1) != 1)
			fail("write: %s", strerror(errno));
		int n = epoll_wait(ep, out, 4, 1000);
		if (n != 1 || out[0].data.u64 != (uint64_t)(0xa + i) || !(out[0].events & EPOLLIN))
			fail("pipe %c: %d events, data %#llx", 'A' + i, n, n > 0 ? (unsigned long long)out[0].data.u64 : 0ull);
		char c;
		if (read(i == 0 ? pa[0] : i == 1 ? pb[0] : pc[0], &c, 1) != 1)
			fail("read back");
	}
	return finish();
}
