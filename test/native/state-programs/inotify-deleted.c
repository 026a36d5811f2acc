/*
 * An inotify watch on a file whose only name was removed while the process keeps it open
 * (CRIU zdtm inotify00): the watch names an inode that has no path any more. It comes back on
 * the file restore makes again for the open fd: closing that fd after restore gives
 * IN_CLOSE_WRITE under the watch's own wd, writing to it IN_MODIFY; the directory's watch
 * still sees files created in it.
 */
#include <fcntl.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include "zdtm.h"

int main(void)
{
	char dir[] = "inotify-del-XXXXXX", file[64], junk[4096] __attribute__((aligned(8)));
	uint32_t mask = IN_DELETE | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_CREATE | IN_MODIFY;

	if (!mkdtemp(dir))
		fail("mkdtemp");
	snprintf(file, sizeof(file), "%s/removed", dir);
	int in = inotify_init1(IN_NONBLOCK);
	int real = open(file, O_CREAT | O_TRUNC | O_RDWR, 0644);
	int wd_dir = inotify_add_watch(in, dir, mask);
	int wd_file = inotify_add_watch(in, file, mask);
	if (in < 0 || real < 0 || wd_dir != 1 || wd_file != 2)
		fail("setup: fd %d %d, wds %d %d", in, real, wd_dir, wd_file);
	if (unlink(file))
		fail("unlink");
	while (read(in, junk, sizeof(junk)) > 0)
		;                       /* IN_DELETE of the name (IN_DELETE_SELF waits for the close) */
	ready();
	wait_check();

	if (write(real, "x", 1) != 1)
		fail("write to the open deleted file");
	close(real);
	uint32_t seen = 0;
	ssize_t n;
	while ((n = read(in, junk, sizeof(junk))) > 0)
		for (ssize_t at = 0; at < n;) {
			const struct inotify_event *ev = (const void *)(junk + at);
			if (ev->wd == wd_file)
				seen |= ev->mask;
			at += (ssize_t)sizeof(*ev) + ev->len;
		}
	if ((seen & (IN_MODIFY | IN_CLOSE_WRITE)) != (IN_MODIFY | IN_CLOSE_WRITE))
		fail("the watch on the deleted file gave events %#x, not IN_MODIFY|IN_CLOSE_WRITE (%#x)", seen,
		     IN_MODIFY | IN_CLOSE_WRITE);
	/* the directory's watch: a new file of that name */
	close(open(file, O_CREAT | O_WRONLY, 0600));
	seen = 0;
	while ((n = read(in, junk, sizeof(junk))) > 0)
		for (ssize_t at = 0; at < n;) {
			const struct inotify_event *ev = (const void *)(junk + at);
			if (ev->wd == wd_dir)
				seen |= ev->mask;
			at += (ssize_t)sizeof(*ev) + ev->len;
		}
	if ((seen & (IN_CREATE | IN_CLOSE_WRITE)) != (IN_CREATE | IN_CLOSE_WRITE))
		fail("directory watch: events %#x", seen);
	unlink(file);
	rmdir(dir);
	return finish();
}
