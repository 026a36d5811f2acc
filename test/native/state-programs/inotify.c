/*
 * inotify watches come back under their own numbers (CRIU zdtm inotify00): a watch added and
 * removed first, so the live watches are wd 2 (a directory: create/delete) and wd 3 (a file:
 * modify, one-shot), and a second inotify fd watching the directory for moves. After restore,
 * no stray event is queued, and new events arrive with the recorded wd and name.
 */
#include <fcntl.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include "zdtm.h"

/* One event at a time from an inotify fd (a read may return several). */
struct events {
	int fd;
	ssize_t len, at;
	char buf[4096] __attribute__((aligned(8)));
};

static const struct inotify_event *next_event(struct events *q)
{
	if (q->at >= q->len) {
		q->len = read(q->fd, q->buf, sizeof(q->buf));
		q->at = 0;
		if (q->len < (ssize_t)sizeof(struct inotify_event))
			return NULL;
	}
	const struct inotify_event *ev = (const void *)(q->buf + q->at);
	q->at += (ssize_t)sizeof(*ev) + ev->len;
	return ev;
}

static const struct inotify_event none = { .wd = -1 };

int main(void)
{
	char dir[] = "inotify-XXXXXX", file[64], path[PATH_MAX + 64], junk[4096];
	static struct events qin, qmoves;
	const struct inotify_event *ev;

	if (!mkdtemp(dir))
		fail("mkdtemp");
	snprintf(file, sizeof(file), "%s/data", dir);
	close(open(file, O_CREAT | O_WRONLY, 0600));
	int in = inotify_init1(IN_NONBLOCK), moves = inotify_init1(0);
	int gone = inotify_add_watch(in, file, IN_ACCESS);
	inotify_rm_watch(in, gone);
	while (read(in, junk, sizeof(junk)) > 0)
		;
	int wd_dir = inotify_add_watch(in, dir, IN_CREATE | IN_DELETE);
	int wd_file = inotify_add_watch(in, file, IN_MODIFY | IN_ONESHOT);
	int wd_moves = inotify_add_watch(moves, dir, IN_MOVED_FROM | IN_MOVED_TO);
	if (gone != 1 || wd_dir != 2 || wd_file != 3 || wd_moves != 1)
		fail("setup gave wds %d %d %d %d", gone, wd_dir, wd_file, wd_moves);
	ready();
	wait_check();

	/* nothing queued by the restore itself */
	qin.fd = in;
	qmoves.fd = moves;
	if (read(in, junk, sizeof(junk)) >= 0 || errno != EAGAIN)
		fail("an event was queued before any change (restore left its own events)");
	/* a file created in the directory: IN_CREATE under wd 2 with its name */
	snprintf(path, sizeof(path), "%s/new", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	if (!(ev = next_event(&qin)) || ev->wd != wd_dir || !(ev->mask & IN_CREATE) || !ev->len || strcmp(ev->name, "new"))
		ev = ev ? ev : &none, fail("create event: wd %d mask %#x name %s", ev->wd, ev->mask, ev->len ? ev->name : "-");
	/* the file modified: IN_MODIFY under wd 3, then IN_IGNORED (one-shot) */
	int w = open(file, O_WRONLY | O_APPEND);
	if (write(w, "x", 1) != 1)
		fail("write");
	close(w);
	if (!(ev = next_event(&qin)) || ev->wd != wd_file || !(ev->mask & IN_MODIFY))
		ev = ev ? ev : &none, fail("modify event: wd %d mask %#x", ev->wd, ev->mask);
	if (!(ev = next_event(&qin)) || ev->wd != wd_file || !(ev->mask & IN_IGNORED))
		ev = ev ? ev : &none, fail("one-shot watch did not end with IN_IGNORED: wd %d mask %#x", ev->wd, ev->mask);
	/* a rename: the blocking fd sees both halves under wd 1 */
	char to[PATH_MAX + 64];
	snprintf(to, sizeof(to), "%s/moved", dir);
	rename(path, to);
	if (!(ev = next_event(&qmoves)) || ev->wd != wd_moves || !(ev->mask & IN_MOVED_FROM))
		ev = ev ? ev : &none, fail("move event: wd %d mask %#x", ev->wd, ev->mask);
	/* the blocking fd is still blocking, the other still non-blocking */
	if ((fcntl(moves, F_GETFL) & O_NONBLOCK) || !(fcntl(in, F_GETFL) & O_NONBLOCK))
		fail("status flags changed");
	unlink(to);
	unlink(file);
	rmdir(dir);
	return finish();
}
