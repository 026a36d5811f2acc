/*
 * A pty pair whose slave node was given another owner and mode (CRIU zdtm pty01): fchown and
 * fchmod on /dev/pts/N change the devpts inode, which only the kernel holds. After restore the
 * new pty's slave has that owner and mode, both slave fds and the master still talk.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include "zdtm.h"

int main(void)
{
	char buf[8];
	struct stat st;
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master))
		fail("posix_openpt");
	const char *name = ptsname(master);
	int s1 = open(name, O_RDWR | O_NOCTTY), s2 = open(name, O_RDWR | O_NOCTTY);
	if (s1 < 0 || s2 < 0)
		fail("open %s", name);
	if (fchown(s1, 13333, 44444) || fchmod(s2, 0604))
		fail("fchown/fchmod");
	ready();
	wait_check();

	signal(SIGHUP, SIG_IGN);
	if (fstat(s1, &st))
		fail("fstat");
	else if (st.st_uid != 13333 || st.st_gid != 44444 || (st.st_mode & 07777) != 0604)
		fail("slave node: owner %u:%u mode %04o, not 13333:44444 0604", (unsigned)st.st_uid, (unsigned)st.st_gid,
		     (unsigned)(st.st_mode & 07777));
	for (int i = 0; i < 2; i++) {
		if (write(master, "ping\n", 5) != 5)
			fail("write master");
		ssize_t n = read(i ? s2 : s1, buf, sizeof(buf));
		if (n != 5 || memcmp(buf, "ping\n", 5))
			fail("read slave %d: %zd", i + 1, n);
	}
	return finish();
}
