/*
 * Pending signals with their siginfo (SIGQUEUE, FORMAT.md 4.14a), capture side.
 *
 * The masks (ShdPnd in SIGACTIONS, SigPnd per THREAD) say which signals are pending, not how
 * often a realtime signal is queued nor with which siginfo (sender, si_code, value, a child's
 * exit status). PTRACE_PEEKSIGINFO copies the queued siginfos of a stopped tracee without
 * dequeuing them: the process-wide queue with PTRACE_PEEKSIGINFO_SHARED, then each thread's own.
 * Read while the target is frozen, so nothing is delivered or queued meanwhile.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>

#include "capture.h"

#ifndef PTRACE_PEEKSIGINFO
#define PTRACE_PEEKSIGINFO 0x4209
#endif
#ifndef PTRACE_PEEKSIGINFO_SHARED
#define PTRACE_PEEKSIGINFO_SHARED 1
#endif

struct peeksiginfo_args_ {
	uint64_t off;
	uint32_t flags;
	int32_t nr;
};

#define BATCH 32

/* Append the queue of thread tid (shared: the process-wide one) as entries keyed qtid. */
static int read_queue(struct capture *c, pid_t tid, int shared, uint32_t qtid, uint32_t *count)
{
	uint8_t infos[BATCH][128];

	for (uint64_t off = 0;;) {
		struct peeksiginfo_args_ pa = { off, shared ? PTRACE_PEEKSIGINFO_SHARED : 0, BATCH };
		long n = ptrace(PTRACE_PEEKSIGINFO, tid, &pa, infos);
		if (n < 0)
			return cap_fail(-errno, "thread %d: PTRACE_PEEKSIGINFO%s", tid, shared ? " (shared queue)" : "");
		if (n == 0)
			return 0;
		for (long i = 0; i < n; i++) {
			int32_t signo;
			memcpy(&signo, infos[i], 4);
			if (signo == SIGKILL || signo == SIGSTOP)   /* the capture's own business */
				continue;
			if (*count >= CKIMG_SIGQUEUE_MAX)
				return cap_fail(-E2BIG, "more than %u pending signals", CKIMG_SIGQUEUE_MAX);
			struct ckimg_sigqueue_entry e = { .tid = qtid };
			memcpy(e.siginfo, infos[i], sizeof(e.siginfo));
			int err = buf_put(&c->sigqueue, &e, sizeof(e));
			if (err)
				return err;
			(*count)++;
		}
		off += (uint64_t)n;
	}
}

int collect_sigqueue(struct capture *c)
{
	struct ckimg_sigqueue_fixed fx = { sizeof(fx), 0, 0 };
	uint32_t count = 0;
	int err;

	c->sigqueue.len = 0;
	err = buf_put(&c->sigqueue, &fx, sizeof(fx));
	if (!err && c->nthreads)
		err = read_queue(c, c->threads[0].tid, 1, 0, &count);
	for (size_t i = 0; !err && i < c->nthreads; i++)
		err = read_queue(c, c->threads[i].tid, 0, (uint32_t)c->threads[i].tid, &count);
	if (!err)
		memcpy(c->sigqueue.p + 4, &count, 4);
	return err;
}

/* Written only when something is pending: an image without it reads the same. */
int put_sigqueue(struct capture *c, struct image *im)
{
	if (c->sigqueue.len <= sizeof(struct ckimg_sigqueue_fixed))
		return 0;
	return image_record(im, CKIMG_REC_SIGQUEUE, &c->sigqueue, 0, 0);
}
