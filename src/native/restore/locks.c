/*
 * File locks and leases (FILE_LOCK records), taken again once every fd is at its number: the
 * original process is gone, so its locks were released; anyone who took one since makes the
 * restore fail, naming the lock, rather than run a program that believes it holds it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>

#include "fds.h"

static const char *const kind_name[] = { "?", "flock", "POSIX", "OFD", "lease" };

int lock_record_check(const struct img_fdrec *r, char *err, size_t errlen)
{
	struct ckimg_lock_fixed l;
	uint32_t fixed;

	if (r->len < sizeof(l))
		return snprintf(err, errlen, "payload of %llu bytes is shorter than 32", (unsigned long long)r->len), -EBADMSG;
	memcpy(&l, r->p, sizeof(l));
	fixed = l.fixed_size;
	if (fixed < sizeof(l) || fixed > r->len)
		return snprintf(err, errlen, "fixed_size %u", fixed), -EBADMSG;
	if (l.kind < CKIMG_LOCK_FLOCK || l.kind > CKIMG_LOCK_LEASE || l.type > 1)
		return snprintf(err, errlen, "lock kind %u type %u", l.kind, l.type), -EBADMSG;
	if (l.start > l.end || (l.end != CKIMG_LOCK_EOF && l.end > INT64_MAX))
		return snprintf(err, errlen, "range %llu-%llu", (unsigned long long)l.start, (unsigned long long)l.end), -EBADMSG;
	return 0;
}

int restore_locks_child(struct rst_fds *s)
{
	const struct img *img = rst_fds_img(s);

	for (size_t i = 0; i < img->nfdrecs; i++) {
		const struct img_fdrec *r = &img->fdrecs[i];
		struct ckimg_lock_fixed l;
		int fd = (int)r->key32, rc;

		if (r->type != CKIMG_REC_FILE_LOCK)
			continue;
		memcpy(&l, r->p, sizeof(l));           /* checked before the fork */
		struct flock fl = {
			.l_type = l.type ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET, .l_start = (off_t)l.start,
			.l_len = l.end == CKIMG_LOCK_EOF ? 0 : (off_t)(l.end - l.start + 1),
		};
		switch (l.kind) {
		case CKIMG_LOCK_FLOCK: rc = flock(fd, (l.type ? LOCK_EX : LOCK_SH) | LOCK_NB); break;
		case CKIMG_LOCK_POSIX: rc = fcntl(fd, F_SETLK, &fl); break;
		case CKIMG_LOCK_OFD:   rc = fcntl(fd, F_OFD_SETLK, &fl); break;
		default:               rc = fcntl(fd, F_SETLEASE, l.type ? F_WRLCK : F_RDLCK); break;
		}
		if (rc < 0)
			return rst_fds_fail(s, -errno, "FILE_LOCK #%u (fd %d): cannot take the %s %s lock again%s", r->seq, fd,
					    l.type ? "write" : "read", kind_name[l.kind],
					    errno == EAGAIN || errno == EWOULDBLOCK || errno == EACCES ?
					    " (another process holds the file locked now)" : "");
	}
	return 0;
}
