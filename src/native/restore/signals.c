/*
 * Pending signals with their siginfo (SIGQUEUE, FORMAT.md 4.14a), restore side.
 *
 * img_parse_sigqueue / img_check_sigqueue: the record as hostile input (count against the
 *   payload, each si_signo in range and not SIGKILL/SIGSTOP, each tid a THREAD), before any
 *   process exists.
 * restore_sigqueue: every entry queued again in its queue's order, from inside the process
 *   (the kernel accepts a siginfo with any si_code only from the process to itself): a remote
 *   rt_sigqueueinfo in the main thread for the process-wide queue, rt_tgsigqueueinfo in the
 *   thread itself for its private queue. Every thread still blocks all signals, so nothing is
 *   delivered before the release. Signals of the masks without an entry are left to
 *   restore_release (kill/tgkill, as for images without the record).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "restore.h"

#define SIGINFO_SCRATCH 4096    /* offset in the trampoline: its scratch page */

int img_parse_sigqueue(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off)
{
	struct ckimg_sigqueue_fixed f;
	uint32_t fs;

	if (img->have_sigq) {
		snprintf(img->err, sizeof(img->err), "DUPLICATE_RECORD: SIGQUEUE record #%u at offset %llu: "
			 "second record of this type", seq, (unsigned long long)off);
		return -EBADMSG;
	}
	if (plen < 4)
		goto short_;
	memcpy(&fs, pl, 4);
	if (fs < sizeof(f) || fs > plen)
		goto short_;
	memcpy(&f, pl, sizeof(f));
	if (f.count > CKIMG_SIGQUEUE_MAX || (uint64_t)f.count * sizeof(struct ckimg_sigqueue_entry) > plen - fs) {
		snprintf(img->err, sizeof(img->err), "BAD_FIELD: SIGQUEUE record #%u at offset %llu: %u entries do "
			 "not fit the payload", seq, (unsigned long long)off, f.count);
		return -EBADMSG;
	}
	img->sigq = malloc((size_t)f.count * sizeof(*img->sigq) + 1);
	if (!img->sigq)
		return -ENOMEM;
	memcpy(img->sigq, pl + fs, (size_t)f.count * sizeof(*img->sigq));
	img->nsigq = f.count;
	img->sigq_seq = seq;
	img->have_sigq = 1;
	for (uint32_t i = 0; i < f.count; i++) {
		int32_t signo;
		memcpy(&signo, img->sigq[i].siginfo, 4);
		if (signo < 1 || signo > 64 || signo == SIGKILL || signo == SIGSTOP) {
			snprintf(img->err, sizeof(img->err), "BAD_FIELD: SIGQUEUE record #%u at offset %llu: entry %u: "
				 "signal %d", seq, (unsigned long long)off, i, signo);
			return -EBADMSG;
		}
	}
	return 0;
short_:
	snprintf(img->err, sizeof(img->err), "BAD_FIELD: SIGQUEUE record #%u at offset %llu: fixed_size does not "
		 "fit (expected >= 16)", seq, (unsigned long long)off);
	return -EBADMSG;
}

static int thread_of(const struct img *img, uint32_t tid)
{
	for (size_t k = 0; k < img->nthreads; k++)
		if (img->threads[k].f.tid == tid)
			return (int)k;
	return -1;
}

int img_check_sigqueue(struct img *img)
{
	for (uint32_t i = 0; i < img->nsigq; i++)
		if (img->sigq[i].tid && thread_of(img, img->sigq[i].tid) < 0) {
			snprintf(img->err, sizeof(img->err), "BAD_FIELD: SIGQUEUE record #%u: entry %u: tid %u names no "
				 "THREAD record", img->sigq_seq, i, img->sigq[i].tid);
			return -EBADMSG;
		}
	return 0;
}

int restore_sigqueue(struct restore_args *a)
{
	struct img *img = a->img;
	uint64_t scratch = a->tramp + SIGINFO_SCRATCH;

	for (uint32_t i = 0; i < img->nsigq; i++) {
		const struct ckimg_sigqueue_entry *e = &img->sigq[i];
		struct rst_thread *t = &a->threads[0];
		int32_t signo;
		long r;
		int err;

		memcpy(&signo, e->siginfo, 4);
		if (e->tid) {
			int k = thread_of(img, e->tid);
			for (size_t j = 0; j < a->nthreads; j++)
				if (a->threads[j].img_idx == k)
					t = &a->threads[j];
		}
		if ((err = rst_write(a, scratch, e->siginfo, sizeof(e->siginfo))))
			return rst_err(a, err, "SIGQUEUE record #%u: writing a siginfo: %s", img->sigq_seq, strerror(-err));
		if (e->tid)
			r = rst_rsys(a, t, SYS_rt_tgsigqueueinfo, (uint64_t)a->pid, (uint64_t)t->tid, (uint64_t)signo,
				     scratch, 0, 0);
		else
			r = rst_rsys(a, t, SYS_rt_sigqueueinfo, (uint64_t)a->pid, (uint64_t)signo, scratch, 0, 0, 0);
		if (r < 0)
			return rst_err(a, (int)r, "SIGQUEUE record #%u: queueing signal %d%s: %s", img->sigq_seq, signo,
				       e->tid ? " to a thread" : "", strerror((int)-r));
	}
	return 0;
}

/* Is signal sig of queue tid (0: process-wide) among the entries? Then it was queued already. */
int rst_sigqueue_has(const struct img *img, uint32_t tid, int sig)
{
	for (uint32_t i = 0; i < img->nsigq; i++) {
		int32_t signo;
		memcpy(&signo, img->sigq[i].siginfo, 4);
		if (signo == sig && img->sigq[i].tid == tid)
			return 1;
	}
	return 0;
}
