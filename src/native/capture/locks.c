/*
 * File locks and leases the process holds (flock(2), POSIX fcntl(2) record locks, OFD locks,
 * leases), from the "lock:" lines of /proc/PID/fdinfo/N (proc(5)):
 *   lock:	1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 10 29
 * One FILE_LOCK record per lock, on the first fd of the description that shows it. A POSIX
 * lock belongs to the process, not a description, and shows on every fd of its file: it is
 * recorded once. Locks are not a kind of fd, so this is generic code beside fds.c.
 */
#include "fds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seen_lock {
	uint64_t inode, start, end;
	uint32_t type;
};

static int parse_lock(const char *line, struct ckimg_lock_fixed *l)
{
	char kind[16], mode[16], type[16], range_end[32];
	long long pid;
	unsigned maj, min;
	unsigned long long ino, start;

	if (sscanf(line, "%*d: %15s %15s %15s %lld %x:%x:%llu %llu %31s", kind, mode, type, &pid, &maj, &min, &ino,
		   &start, range_end) != 9)
		return -1;
	memset(l, 0, sizeof(*l));
	l->fixed_size = sizeof(*l);
	if (!strcmp(kind, "FLOCK"))
		l->kind = CKIMG_LOCK_FLOCK;
	else if (!strcmp(kind, "POSIX"))
		l->kind = CKIMG_LOCK_POSIX;
	else if (!strcmp(kind, "OFDLCK"))
		l->kind = CKIMG_LOCK_OFD;
	else if (!strcmp(kind, "LEASE"))
		l->kind = CKIMG_LOCK_LEASE;
	else
		return -1;       /* DELEG and others: not a process's to restore */
	if (!strcmp(mode, "ADVISORY") || !strcmp(mode, "MANDATORY") || !strcmp(mode, "ACTIVE"))
		;
	else
		return -1;       /* a lease being broken, a pending (blocked) request */
	l->type = !strcmp(type, "WRITE") ? 1 : 0;
	l->start = start;
	l->end = !strcmp(range_end, "EOF") ? CKIMG_LOCK_EOF : strtoull(range_end, NULL, 10);
	return 0;
}

int collect_locks(struct capture *c)
{
	size_t n, nseen = 0;
	struct cap_fd *all = fd_all(c, &n);
	struct seen_lock *seen = NULL;
	int err = 0;

	for (size_t i = 0; !err && i < n; i++) {
		struct cap_fd *d = &all[i];
		if (d->file != d || !d->fdinfo)
			continue;
		for (const char *p = strstr(d->fdinfo, "lock:"); !err && p; p = strstr(p + 5, "lock:")) {
			struct ckimg_lock_fixed l;
			if (parse_lock(p + 5, &l))
				continue;
			if (l.kind == CKIMG_LOCK_POSIX) {
				int dup = 0;
				for (size_t k = 0; k < nseen; k++)
					dup |= seen[k].inode == d->f.inode && seen[k].start == l.start && seen[k].end == l.end &&
					       seen[k].type == l.type;
				if (dup)
					continue;
				struct seen_lock *q = realloc(seen, (nseen + 1) * sizeof(*q));
				if (!q) {
					err = -ENOMEM;
					break;
				}
				seen = q;
				seen[nseen++] = (struct seen_lock){ d->f.inode, l.start, l.end, l.type };
			}
			struct buf b = { 0 };
			err = buf_put(&b, &l, sizeof(l));
			if (!err)
				err = fd_emit(c, CKIMG_REC_FILE_LOCK, (uint32_t)d->fd, d->f.inode, &b);
			buf_free(&b);
		}
	}
	free(seen);
	return err;
}
