/*
 * Format 1.1 state records for restore (FORMAT.md 4.11-4.14): TIMERS, PROCESS_STATE, SECCOMP,
 * THREAD_STATE. Hostile input like every record: counts and lengths are checked against the
 * payload before anything is allocated, every field restore hands to the kernel is range-checked
 * here, and cross-record references (a thread's filter chain, a timer's target thread) are
 * resolved before any process exists, so damaged state is refused with one line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

#define RECFMT "%s record #%u at offset %llu"
#define RECARG(type, seq, off) img_type_name(type), (unsigned)(seq), (unsigned long long)(off)

static int bad(struct img *img, uint16_t type, uint32_t seq, uint64_t off, const char *fmt, ...)
{
	char what[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(img->err, sizeof(img->err), "BAD_FIELD: " RECFMT ": %s", RECARG(type, seq, off), what);
	return -EBADMSG;
}

/* FIXED part: at least min_size, at most plen; copies what we know, zero-fills the rest. */
static int fixed(struct img *img, uint16_t type, const uint8_t *pl, uint64_t plen, uint32_t min_size,
		 void *out, size_t out_size, uint32_t *fixed_size, uint32_t seq, uint64_t off)
{
	uint32_t fs;

	if (plen < 4)
		return bad(img, type, seq, off, "payload shorter than its size field");
	memcpy(&fs, pl, 4);
	if (fs < min_size || fs > plen)
		return bad(img, type, seq, off, "fixed_size %u (expected >= %u, <= %llu)", fs, min_size,
			   (unsigned long long)plen);
	memset(out, 0, out_size);
	memcpy(out, pl, out_size < fs ? out_size : fs);
	*fixed_size = fs;
	return 0;
}

static int dup_record(struct img *img, uint16_t type, uint32_t seq, uint64_t off)
{
	snprintf(img->err, sizeof(img->err), "DUPLICATE_RECORD: " RECFMT ": second record of this type",
		 RECARG(type, seq, off));
	return -EBADMSG;
}

#define MAX_NS (1ull << 62)   /* ~146 years: anything larger is damage, not a timer */

static int parse_timers(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off)
{
	struct img_state *st = &img->st;
	struct ckimg_timers_fixed *t = &st->timers;
	uint32_t fs;
	int err;

	if (st->have_timers)
		return dup_record(img, CKIMG_REC_TIMERS, seq, off);
	if ((err = fixed(img, CKIMG_REC_TIMERS, pl, plen, 64, t, sizeof(*t), &fs, seq, off)))
		return err;
	if (t->entry_size < sizeof(struct ckimg_posix_timer) || t->entry_size > 4096)
		return bad(img, CKIMG_REC_TIMERS, seq, off, "entry_size %u", t->entry_size);
	if ((uint64_t)t->count * t->entry_size > plen - fs)
		return bad(img, CKIMG_REC_TIMERS, seq, off, "%u timers do not fit the payload", t->count);
	for (int i = 0; i < 3; i++)
		if (t->itimer[i][0] > MAX_NS || t->itimer[i][1] > MAX_NS)
			return bad(img, CKIMG_REC_TIMERS, seq, off, "itimer %d out of range", i);
	st->ptimers = calloc((size_t)t->count + 1, sizeof(*st->ptimers));
	if (!st->ptimers)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->count; i++) {
		struct ckimg_posix_timer *p = &st->ptimers[i];
		memcpy(p, pl + fs + (uint64_t)i * t->entry_size, sizeof(*p));
		if (p->timer_id > 0x7fffffffu || p->interval_ns > MAX_NS || p->value_ns > MAX_NS)
			return bad(img, CKIMG_REC_TIMERS, seq, off, "timer %u out of range", p->timer_id);
		if (p->notify != CKIMG_SIGEV_SIGNAL && p->notify != CKIMG_SIGEV_NONE && p->notify != CKIMG_SIGEV_THREAD_ID)
			return bad(img, CKIMG_REC_TIMERS, seq, off, "timer %u: notify %u", p->timer_id, p->notify);
		if (p->notify != CKIMG_SIGEV_NONE && (p->signo < 1 || p->signo > 64))
			return bad(img, CKIMG_REC_TIMERS, seq, off, "timer %u: signal %u", p->timer_id, p->signo);
		for (uint32_t j = 0; j < i; j++)
			if (st->ptimers[j].timer_id == p->timer_id)
				return bad(img, CKIMG_REC_TIMERS, seq, off, "timer id %u appears twice", p->timer_id);
	}
	st->nptimers = t->count;
	st->timers_seq = seq;
	st->have_timers = 1;
	return 0;
}

static int parse_pstate(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off)
{
	struct img_state *st = &img->st;
	struct ckimg_process_state_fixed *p = &st->pstate;
	uint32_t fs;
	int err;

	if (st->have_pstate)
		return dup_record(img, CKIMG_REC_PROCESS_STATE, seq, off);
	if ((err = fixed(img, CKIMG_REC_PROCESS_STATE, pl, plen, 32, p, sizeof(*p), &fs, seq, off)))
		return err;
	if (p->ngroups > 65536 || (uint64_t)p->ngroups * 4 > plen - fs)
		return bad(img, CKIMG_REC_PROCESS_STATE, seq, off, "%u groups do not fit the payload", p->ngroups);
	if (p->oom_score_adj < -1000 || p->oom_score_adj > 1000 || p->dumpable > 2 || p->child_subreaper > 1 ||
	    p->thp_disable > 1)
		return bad(img, CKIMG_REC_PROCESS_STATE, seq, off, "oom_score_adj %d / dumpable %u / flags out of range",
			   p->oom_score_adj, p->dumpable);
	st->groups = malloc((size_t)p->ngroups * 4 + 4);
	if (!st->groups)
		return -ENOMEM;
	memcpy(st->groups, pl + fs, (size_t)p->ngroups * 4);
	st->pstate_seq = seq;
	st->have_pstate = 1;
	return 0;
}

static int parse_seccomp(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off)
{
	struct img_state *st = &img->st;
	struct ckimg_seccomp_fixed sf;
	uint32_t fs;
	uint64_t pos;
	int err;

	if (st->have_seccomp)
		return dup_record(img, CKIMG_REC_SECCOMP, seq, off);
	if ((err = fixed(img, CKIMG_REC_SECCOMP, pl, plen, 8, &sf, sizeof(sf), &fs, seq, off)))
		return err;
	if ((uint64_t)sf.count * sizeof(struct ckimg_seccomp_filter) > plen - fs)
		return bad(img, CKIMG_REC_SECCOMP, seq, off, "%u filters do not fit the payload", sf.count);
	st->seccomp_payload = malloc(plen + 8);
	st->filters = calloc((size_t)sf.count + 1, sizeof(*st->filters));
	if (!st->seccomp_payload || !st->filters)
		return -ENOMEM;
	/* 8-byte aligned copy so instructions can be pointed at in place */
	memcpy(st->seccomp_payload, pl, plen);
	pos = fs;
	for (uint32_t i = 0; i < sf.count; i++) {
		struct img_filter *f = &st->filters[i];
		if (plen - pos < sizeof(f->h))
			return bad(img, CKIMG_REC_SECCOMP, seq, off, "filter %u runs past the payload", i);
		memcpy(&f->h, pl + pos, sizeof(f->h));
		pos += sizeof(f->h);
		if (f->h.ninsns < 1 || f->h.ninsns > CKIMG_SECCOMP_MAX_INSNS || (uint64_t)f->h.ninsns * 8 > plen - pos)
			return bad(img, CKIMG_REC_SECCOMP, seq, off, "filter %u: %u instructions", i, f->h.ninsns);
		/* a parent is always an earlier entry: chains end, no cycles */
		if (f->h.parent != CKIMG_NO_FILTER && f->h.parent >= i)
			return bad(img, CKIMG_REC_SECCOMP, seq, off, "filter %u: parent %u", i, f->h.parent);
		f->insns = (const uint64_t *)(st->seccomp_payload + pos);
		pos += (uint64_t)f->h.ninsns * 8;
	}
	st->nfilters = sf.count;
	st->seccomp_seq = seq;
	st->have_seccomp = 1;
	return 0;
}

static int parse_tstate(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off)
{
	struct img_state *st = &img->st;
	struct img_thread_state *t;
	uint32_t fs;
	int err;

	if (st->ntstates == st->cap_tstates) {
		st->cap_tstates = st->cap_tstates ? st->cap_tstates * 2 : 16;
		void *q = realloc(st->tstates, st->cap_tstates * sizeof(*st->tstates));
		if (!q)
			return -ENOMEM;
		st->tstates = q;
	}
	t = &st->tstates[st->ntstates];
	if ((err = fixed(img, CKIMG_REC_THREAD_STATE, pl, plen, 136, &t->f, sizeof(t->f), &fs, seq, off)))
		return err;
	t->seq = seq;
	t->thread_idx = -1;
	st->ntstates++;
	const struct ckimg_thread_state_fixed *f = &t->f;
	if (f->rseq_addr && (f->rseq_len < 32 || f->rseq_len > 4096 || (f->rseq_addr & 31)))
		return bad(img, CKIMG_REC_THREAD_STATE, seq, off, "rseq area %#llx+%u", (unsigned long long)f->rseq_addr,
			   f->rseq_len);
	if (f->seccomp_mode > 2 || f->pdeathsig > 64 || f->securebits > 0xff)
		return bad(img, CKIMG_REC_THREAD_STATE, seq, off, "seccomp mode %u / pdeathsig %u / securebits %#x",
			   f->seccomp_mode, f->pdeathsig, f->securebits);
	if ((f->valid & CKIMG_TS_SCHED) &&
	    ((f->sched_policy & ~0x40000000u) > 6 || f->sched_priority > 99 || f->nice < -20 || f->nice > 19))
		return bad(img, CKIMG_REC_THREAD_STATE, seq, off, "scheduler policy %#x priority %u nice %d",
			   f->sched_policy, f->sched_priority, f->nice);
	return 0;
}

int img_parse_state(struct img *img, uint16_t type, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off)
{
	switch (type) {
	case CKIMG_REC_TIMERS: return parse_timers(img, pl, plen, seq, off);
	case CKIMG_REC_PROCESS_STATE: return parse_pstate(img, pl, plen, seq, off);
	case CKIMG_REC_SECCOMP: return parse_seccomp(img, pl, plen, seq, off);
	case CKIMG_REC_THREAD_STATE: return parse_tstate(img, pl, plen, seq, off);
	}
	return 0;
}

/* References between records: each THREAD_STATE names a THREAD (once), its filter exists,
 * each SIGEV_THREAD_ID timer targets a recorded thread. */
int img_check_state(struct img *img)
{
	struct img_state *st = &img->st;

	for (size_t i = 0; i < st->ntstates; i++) {
		struct img_thread_state *t = &st->tstates[i];
		for (size_t k = 0; k < img->nthreads; k++)
			if (img->threads[k].f.tid == t->f.tid)
				t->thread_idx = (int)k;
		if (t->thread_idx < 0)
			return bad(img, CKIMG_REC_THREAD_STATE, t->seq, 0, "tid %u names no THREAD record", t->f.tid);
		for (size_t j = 0; j < i; j++)
			if (st->tstates[j].f.tid == t->f.tid) {
				snprintf(img->err, sizeof(img->err), "DUPLICATE_RECORD: two THREAD_STATE records for tid %u",
					 t->f.tid);
				return -EBADMSG;
			}
		if (t->f.seccomp_filter != CKIMG_NO_FILTER && t->f.seccomp_filter >= st->nfilters)
			return bad(img, CKIMG_REC_THREAD_STATE, t->seq, 0, "seccomp filter %u of %u", t->f.seccomp_filter,
				   st->nfilters);
	}
	for (uint32_t i = 0; i < st->nptimers; i++) {
		const struct ckimg_posix_timer *p = &st->ptimers[i];
		int found = p->notify != CKIMG_SIGEV_THREAD_ID;
		for (size_t k = 0; !found && k < img->nthreads; k++)
			found = img->threads[k].f.tid == p->notify_tid;
		if (!found)
			return bad(img, CKIMG_REC_TIMERS, st->timers_seq, 0, "timer %u targets tid %u, which is no THREAD",
				   p->timer_id, p->notify_tid);
	}
	return 0;
}

void img_free_state(struct img *img)
{
	struct img_state *st = &img->st;

	free(st->ptimers);
	free(st->groups);
	free(st->seccomp_payload);
	free(st->filters);
	free(st->tstates);
	memset(st, 0, sizeof(*st));
}
