/*
 * Dirty-page tracking kept between captures (Linux >= 6.7): userfaultfd asynchronous
 * write-protection + the PAGEMAP_SCAN ioctl.
 *
 * Why: without it an incremental capture (--parent) must read every page and compare its
 * digest with the parent's, which costs what exists, not what changed. With it, the kernel
 * marks a page "written" on the first write after it was write-protected (WP_ASYNC: the write
 * goes on at once, no thread of ours handles a fault) and PAGEMAP_SCAN lists the written
 * pages and write-protects them again, atomically, in about a millisecond per GiB.
 *
 * Lifecycle:
 *   - `--track`, first capture (no keeper yet): during the freeze a userfaultfd is made inside
 *     the target with the remote-syscall primitive (userfaultfd(O_CLOEXEC|UFFD_USER_MODE_ONLY):
 *     the handle belongs to the target's mm), taken out with pidfd_getfd and closed in the
 *     target (no fd is left there); then, from here, UFFDIO_API (WP_ASYNC|WP_UNPOPULATED),
 *     UFFDIO_REGISTER (WP) of each private writable area and UFFDIO_WRITEPROTECT. Once the
 *     image is published, a keeper (this program, `--keeper`, detached) holds the handle; its
 *     baseline is that image's image_id.
 *   - a later capture with --parent (or --track) asks the keeper over an abstract unix socket
 *     named after the target's pid and start time (peer credentials checked) for the handle and
 *     baseline. If the parent IS the baseline, the pages written since are the only candidates
 *     of the tracked areas (track_plan; the others are inherited with the parent's digests, no
 *     page read), and the capture is stop-and-copy of just those pages: no fork of the memory,
 *     no pass over it. Either way the scan runs during the freeze, so the new image becomes the
 *     baseline once published (track_commit). Areas the handle does not cover (created or
 *     moved since, the scan says EPERM) are read and compared as without tracking, and are
 *     registered now for the next capture.
 *   - the keeper exits when the target exits (pidfd), when a capture that scanned does not
 *     commit (killed, failed: the pages it re-protected are in no image, so the baseline is
 *     lost), or when killed. Closing the last handle makes the kernel unregister the areas;
 *     leftover write-protect bits in the target's page tables are dropped by its next faults.
 * A capture that cannot track (older kernel, seccomp...) says why and goes on as before.
 * A tree: each process has its own handle and keeper (track_open per process, before its
 *   seize; a keeper follows its own target's exit, so a worker that exits takes its keeper).
 */
#include "capture.h"
#include "uffd_wp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TRK_MAGIC "CKTR"

/* keeper -> capture, with the handle (SCM_RIGHTS) when status is not BUSY */
struct trk_reply {
	char magic[4];
	uint32_t status;
	uint8_t baseline[16];
	int32_t keeper_pid;
};
enum { TRK_BASELINE = 1, TRK_BUSY = 2 };

/* capture -> keeper */
struct trk_msg {
	char op;                       /* 'C' commit (baseline = id), 'A' abort (nothing changed) */
	uint8_t id[16];
};

struct track {
	int uffd;                      /* the handle (the keeper's copy, or made here), or -1 */
	int sess;                      /* session with the keeper, or -1 */
	int made;                      /* made in this capture: a keeper is spawned at commit */
	int direct;                    /* the parent is the keeper's baseline: use the written pages */
	int scanned;                   /* write-protect bits were reset in this freeze */
	pid_t keeper;
	uint8_t baseline[16];
	uint64_t written_pages;
	uint32_t tracked_areas, untracked_areas, registered_areas;
	char note[200];                /* why tracking was not used, for the summary */
	struct pre_run {               /* precopy: runs written before the freeze, copied */
		uint64_t start, end, off;
		int valid;
	} *pre;
	size_t npre;
	uint8_t *pre_pool;
	size_t pre_pool_len;
};

static void socket_name(pid_t pid, uint64_t start_time, struct sockaddr_un *a, socklen_t *len)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "ckimg-track/%d/%llu", (int)pid,
			 (unsigned long long)start_time);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static void note(struct capture *c, const char *fmt, const char *arg)
{
	snprintf(c->track->note, sizeof(c->track->note), fmt, arg);
}

/* Start time (field 22 of /proc/PID/stat), 0 when unknown. */
static uint64_t start_time_of(pid_t pid)
{
	uint64_t v = 0;
	proc_start_time(pid, &v);
	return v;
}

static int recv_reply(int s, struct trk_reply *r, int *fd)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { r, sizeof(*r) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	*fd = -1;
	ssize_t n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
	if (n != (ssize_t)sizeof(*r) || memcmp(r->magic, TRK_MAGIC, 4))
		return -EPROTO;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(h), sizeof(int));
	return 0;
}

/*
 * Before the freeze, the target running (an incremental capture on the tracked baseline): the
 * pages written so far are listed and write-protected again (PAGEMAP_SCAN, WP_MATCHING) and
 * copied now. The scan in the freeze then reports only what was written since this one; a page
 * copied here and not reported again is unchanged since it was re-protected, which was before
 * its copy, so the copy is its content at the freeze. In the freeze only the pages written
 * meanwhile are copied from the target (measured: copying scattered pages costs 10-30 us of
 * CPU each on this VM, cold page tables). Also faulted in here: the buffer the freeze copies
 * into (a first touch is a page fault). From this scan on, the baseline moves to this capture.
 */
static int add_pre(struct track *t, size_t *cap, uint64_t s, uint64_t e)
{
	if (t->npre == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		void *q = realloc(t->pre, *cap * sizeof(*t->pre));
		if (!q)
			return -ENOMEM;
		t->pre = q;
	}
	t->pre[t->npre++] = (struct pre_run){ .start = s, .end = e };
	return 0;
}

static int cmp_pre(const void *a, const void *b)
{
	const struct pre_run *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* The first of the first n runs of t->pre (sorted) that ends after addr; n when none does. */
static size_t pre_index(const struct track *t, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t->pre[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Whether addr is in one of the first n runs of t->pre. */
static int in_pre(const struct track *t, size_t n, uint64_t addr)
{
	size_t k = pre_index(t, n, addr);
	return k < n && t->pre[k].start <= addr;
}

/*
 * A tree's descendant (its parent image known): pages it shared copy-on-write with its parent
 * at the last capture were not held then; once the parent writes such a page the descendant's
 * copy is its own, unwritten by it (not reported written) and must be read (mm.c,
 * plan_tracked_area). Those unshared now are listed here (present, not the parent's frame, not
 * held by the parent image, not written) so that precopy copies them before the freeze too: a
 * copy stays good unless the process writes the page, which the freeze's scan reports.
 * Returns the pages added to t->pre (sorted again).
 */
static uint64_t add_unshared(struct capture *c, size_t *cap)
{
	struct track *t = c->track;
	char path[64], *maps = NULL;
	uint64_t added = 0;
	unsigned long long ppid = 0;
	size_t nwritten = t->npre;
	snprintf(path, sizeof(path), "/proc/%d/status", c->pid);
	char *status = NULL;
	if (!c->parent || !c->parent_tree_root || (pid_t)c->parent_tree_root == c->pid || read_file(path, &status, NULL))
		return 0;               /* not a tree's descendant */
	proc_status_value(status, "PPid", 10, &ppid);
	free(status);
	snprintf(path, sizeof(path), "/proc/%d/maps", c->pid);
	if (!ppid || read_file(path, &maps, NULL))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	int pm = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%llu/pagemap", ppid);
	int ppm = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t *a = malloc(CKIMG_SPAN_GRID_PAGES * 8), *b = malloc(CKIMG_SPAN_GRID_PAGES * 8);
	for (char *save = NULL, *l = strtok_r(maps, "\n", &save); pm >= 0 && ppm >= 0 && a && b && l; l = strtok_r(NULL, "\n", &save)) {
		unsigned long long s0, e0;
		char perms[8];
		if (sscanf(l, "%llx-%llx %7s", &s0, &e0, perms) != 3 || strcmp(perms, "rw-p"))
			continue;
		for (uint64_t s = s0; s < e0; s += (uint64_t)CKIMG_SPAN_GRID_PAGES * PAGE_SIZE_4K) {
			uint64_t n = (e0 - s) / PAGE_SIZE_4K;
			n = n > CKIMG_SPAN_GRID_PAGES ? CKIMG_SPAN_GRID_PAGES : n;
			off_t at = (off_t)(s / PAGE_SIZE_4K * 8);
			if (pread(pm, a, n * 8, at) != (ssize_t)(n * 8))
				break;
			if (pread(ppm, b, n * 8, at) != (ssize_t)(n * 8))
				memset(b, 0, n * 8);
			for (uint64_t i = 0; i < n; i++) {
				uint64_t addr = s + i * PAGE_SIZE_4K;
				int mine = pm_own_private_page(a[i]);
				int shared = shared_with_parent(a[i], b[i]);
				if (!mine || shared || incr_parent_holds(c, addr) || in_pre(t, nwritten, addr))
					continue;
				if (t->npre > nwritten && t->pre[t->npre - 1].end == addr) {
					t->pre[t->npre - 1].end += PAGE_SIZE_4K;
				} else if (add_pre(t, cap, addr, addr + PAGE_SIZE_4K)) {
					goto out;
				}
				added++;
			}
		}
	}
out:
	if (pm >= 0)
		close(pm);
	if (ppm >= 0)
		close(ppm);
	free(a);
	free(b);
	free(maps);
	if (t->npre > nwritten)
		qsort(t->pre, t->npre, sizeof(*t->pre), cmp_pre);
	return added;
}

static void precopy(struct capture *c)
{
	struct track *t = c->track;
	char path[64];
	struct ck_page_region v[512];
	uint64_t pages = 0, at = 0, end = 0x7ffffffff000ull;   /* TASK_SIZE: past it EINVAL */
	size_t cap = 0;
	uint64_t t0 = now_ns(CLOCK_MONOTONIC), t1;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	int pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return;
	t->scanned = 1;
	while (at < end) {
		struct ck_pm_scan_arg a = {
			.size = sizeof(a), .flags = CK_PM_SCAN_WP_MATCHING, .start = at, .end = end,
			.vec = (uint64_t)(uintptr_t)v, .vec_len = 512,
			.category_mask = CK_PAGE_IS_WRITTEN, .return_mask = CK_PAGE_IS_WRITTEN,
		};
		long n = ioctl(pm, CK_PAGEMAP_SCAN, &a);
		if (n < 0)
			break;
		for (long i = 0; i < n; i++) {
			if (add_pre(t, &cap, v[i].start, v[i].end))
				break;
			pages += (v[i].end - v[i].start) / PAGE_SIZE_4K;
		}
		if (a.walk_end <= at)
			break;
		at = a.walk_end;
	}
	close(pm);
	t1 = now_ns(CLOCK_MONOTONIC);
	t->written_pages = pages;       /* + what the freeze's scan reports */
	pages += add_unshared(c, &cap);  /* (copied too, not counted written) */
	/* huge pages (cap_alloc_buf): a 4 KiB page faulted in here cost 11-17 us on this VM */
	size_t len = (size_t)(pages ? pages : 1) * PAGE_SIZE_4K;
	uint8_t *p = cap_alloc_buf(len);
	if (p) {
		t->pre_pool = p;
		t->pre_pool_len = len;
		uint64_t off = 0;
		struct iovec loc, rem[1024];
		for (size_t k = 0; k < t->npre;) {       /* batches of runs, one local buffer */
			size_t k0 = k, nr = 0;
			uint64_t off0 = off;
			for (; k < t->npre && nr < 1024; k++, nr++) {
				t->pre[k].off = off;
				rem[nr] = (struct iovec){ (void *)(uintptr_t)t->pre[k].start, t->pre[k].end - t->pre[k].start };
				off += t->pre[k].end - t->pre[k].start;
			}
			loc = (struct iovec){ p + off0, off - off0 };
			if (process_vm_readv(c->pid, &loc, 1, rem, nr, 0) == (ssize_t)(off - off0)) {
				for (size_t j = k0; j < k; j++)
					t->pre[j].valid = 1;
			} else {
				for (size_t j = k0; j < k; j++) {   /* run by run; a failed one is read frozen */
					struct iovec l1 = { p + t->pre[j].off, rem[j - k0].iov_len };
					t->pre[j].valid = process_vm_readv(c->pid, &l1, 1, &rem[j - k0], 1, 0) == (ssize_t)l1.iov_len;
				}
			}
		}
	}
	if (getenv("CKIMG_DEBUG_TIMES"))
		fprintf(stderr, "track: before the freeze, %llu pages written in %zu runs: scan %.3f ms, copy %.3f ms\n",
			(unsigned long long)pages, t->npre, (t1 - t0) / 1e6, (now_ns(CLOCK_MONOTONIC) - t1) / 1e6);
	/* tests: CKIMG_TEST_AFTER_PRECOPY=DIR: create DIR/precopied, wait (30 s at most) for
	 * DIR/go: a page can then be written between the copy and the freeze, deterministically */
	const char *hook = getenv("CKIMG_TEST_AFTER_PRECOPY");
	if (hook) {
		char f[512];
		snprintf(f, sizeof(f), "%s/precopied", hook);
		close(open(f, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
		snprintf(f, sizeof(f), "%s/go", hook);
		for (int i = 0; i < 3000 && access(f, F_OK); i++)
			usleep(10000);
	}
	/* The freeze copies a chunk's pages in place, into this copy, when they are all here
	 * (pre_in_place); the pool below takes the other chunks: those with pages first written
	 * after this scan, and areas not tracked yet. Usually few: not faulted in now (a first
	 * touch in the freeze costs a fault per 2 MiB when huge pages come, 0.2 ms each). */
	len = (size_t)(pages / 4 + 64) * PAGE_SIZE_4K;
	if (len > (256u << 20))
		len = 256u << 20;               /* more: malloc'd in the freeze */
	p = cap_alloc_buf(len);
	if (p) {
		c->preread_pool = p;
		c->preread_pool_len = len;
	}
}

/*
 * Chunk ch's candidates, when every one of them was copied by precopy: they are then packed
 * in address order at one place of pre_pool (runs are copied there in address order), which
 * becomes the chunk's buffer; the freeze re-reads in place only the pages written since.
 * NULL when some candidate was not copied (written first after precopy's scan, or a run that
 * failed to copy).
 */
static uint8_t *pre_in_place(const struct track *t, const struct chunk *ch)
{
	uint64_t s = ch->first_page, e = s + (uint64_t)ch->span_pages * PAGE_SIZE_4K, n = 0;
	uint8_t *first = NULL;
	if (!t->pre_pool)
		return NULL;
	for (size_t r = pre_index(t, t->npre, s); r < t->npre && t->pre[r].start < e; r++) {
		uint64_t rs = t->pre[r].start < s ? s : t->pre[r].start;
		uint64_t re = t->pre[r].end > e ? e : t->pre[r].end;
		if (!t->pre[r].valid)
			return NULL;
		if (!first)
			first = t->pre_pool + t->pre[r].off + (rs - t->pre[r].start);
		n += (re - rs) / PAGE_SIZE_4K;
	}
	return n == ch->cand_pages ? first : NULL;
}

/* The copy made by precopy of the page at addr, or NULL. */
static const uint8_t *pre_copy_of(const struct track *t, uint64_t addr)
{
	size_t k = pre_index(t, t->npre, addr);
	if (k < t->npre && t->pre[k].start <= addr && t->pre[k].valid && t->pre_pool)
		return t->pre_pool + t->pre[k].off + (addr - t->pre[k].start);
	return NULL;
}

/* Whether the freeze's scan reported addr written (area a's runs). */
static int written_at(const struct area *a, uint64_t addr)
{
	size_t lo = 0, hi = a->nwritten;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (a->written[mid][1] <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < a->nwritten && a->written[lo][0] <= addr;
}

int track_open(struct capture *c)
{
	struct track *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->uffd = t->sess = -1;
	c->track = t;
	if ((!c->parent_path && !c->track_wanted) || c->track_off)
		return 0;
	struct sockaddr_un a;
	socklen_t len;
	uint64_t st = start_time_of(c->pid);
	if (!st)
		return 0;                   /* the freeze says what is wrong */
	socket_name(c->pid, st, &a, &len);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return 0;
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	if (connect(s, (struct sockaddr *)&a, len) < 0) {
		close(s);
		note(c, "%s", c->track_wanted ? c->parent ? "no tracking keeper (never started, or gone): compared all memory; tracking starts now" :
			 "tracking starts now" :
			 "no dirty-page tracking for this process (capture with --track to start it)");
		return 0;
	}
	struct trk_reply r;
	int fd;
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 || (cr.uid != 0 && cr.uid != getuid()) ||
	    send(s, "Q", 1, 0) != 1 || recv_reply(s, &r, &fd)) {
		close(s);
		note(c, "%s", "the tracking keeper did not answer");
		return 0;
	}
	t->keeper = r.keeper_pid;
	if (r.status == TRK_BUSY || fd < 0) {
		if (fd >= 0)
			close(fd);
		close(s);
		note(c, "%s", "another capture is using the tracking");
		return 0;
	}
	t->sess = s;
	t->uffd = fd;
	memcpy(t->baseline, r.baseline, 16);
	if (c->parent && r.status == TRK_BASELINE && !memcmp(r.baseline, incr_parent_id(c), 16)) {
		t->direct = 1;
		precopy(c);
	}
	else if (c->parent)
		note(c, "%s", "the parent is not the last tracked capture: compared all memory (tracking goes on from this image)");
	return 0;
}

int track_direct(const struct capture *c)
{
	return c->track && c->track->direct;
}

void track_drop(struct capture *c, const char *why)
{
	struct track *t = c->track;
	if (!t || (t->uffd < 0 && t->sess < 0))
		return;
	if (t->sess >= 0) {
		struct trk_msg m = { .op = 'A' };
		send(t->sess, &m, sizeof(m), MSG_NOSIGNAL);
		close(t->sess);
		t->sess = -1;
	}
	if (t->uffd >= 0)
		close(t->uffd);
	t->uffd = -1;
	t->direct = 0;
	note(c, "%s", why);
}

/* Private memory a write can reach: what is registered and scanned. */
static int trackable(const struct area *a)
{
	if (a->shared || !(a->prot & CKIMG_PROT_WRITE) || (a->flags & CKIMG_AREA_UNREADABLE))
		return 0;
	return a->kind == CKIMG_KIND_ANON || a->kind == CKIMG_KIND_HEAP || a->kind == CKIMG_KIND_STACK ||
	       a->kind == CKIMG_KIND_FILE;
}

/* Frozen: a userfaultfd of the target's mm, ours; nothing left in the target. *fatal: the
 * target could not be put back as it was (its copy of the fd could not be closed). */
static int make_handle(struct capture *c, int *fatal)
{
	pid_t tid = c->pt.threads[0].tid;
	struct pt_syscall sc = REMOTE_SYSCALL(__NR_userfaultfd, O_CLOEXEC | CK_UFFD_USER_MODE_ONLY);
	int err, fd = -1;

	if (proc_seccomp_mode(c->pid) && geteuid() != 0)
		return -EPERM;              /* a filter might kill it on an unknown syscall */
	err = pt_remote_syscall(tid, c->syscall_ip, &sc);
	if (!err && sc.ret < 0)
		err = (int)sc.ret;
	if (err)
		return err;
	int remote_fd = (int)sc.ret;
	int pidfd = (int)syscall(__NR_pidfd_open, c->pid, 0);
	if (pidfd >= 0) {
		fd = (int)syscall(__NR_pidfd_getfd, pidfd, remote_fd, 0);
		if (fd < 0)
			err = -errno;
		close(pidfd);
	} else {
		err = -errno;
	}
	struct pt_syscall cl = REMOTE_SYSCALL(__NR_close, (uint64_t)remote_fd);
	int e2 = pt_remote_syscall(tid, c->syscall_ip, &cl);
	if (!e2 && cl.ret < 0)
		e2 = (int)cl.ret;
	if (e2) {
		if (fd >= 0)
			close(fd);
		*fatal = 1;
		return cap_fail(e2, "close the userfaultfd made in the target");
	}
	if (err)
		return err;
	struct ck_uffdio_api api = {
		.api = CK_UFFD_API, .features = CK_UFFD_FEATURE_WP_ASYNC | CK_UFFD_FEATURE_WP_UNPOPULATED,
	};
	if (ioctl(fd, CK_UFFDIO_API, &api) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	c->track->uffd = fd;
	c->track->made = 1;
	return 0;
}

static int add_run(struct area *a, size_t *cap, uint64_t s, uint64_t e)
{
	if (a->nwritten && a->written[a->nwritten - 1][1] == s) {
		a->written[a->nwritten - 1][1] = e;
		return 0;
	}
	if (a->nwritten == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		void *q = realloc(a->written, *cap * sizeof(*a->written));
		if (!q)
			return -ENOMEM;
		a->written = q;
	}
	a->written[a->nwritten][0] = s;
	a->written[a->nwritten][1] = e;
	a->nwritten++;
	return 0;
}

/* The pages of area a written since the last scan, write-protected again; -EPERM when the
 * handle does not cover the area. */
static int scan_area(int pm, struct area *a)
{
	struct ck_page_region v[512];
	uint64_t at = a->start;
	size_t cap = 0;
	while (at < a->end) {
		struct ck_pm_scan_arg s = {
			.size = sizeof(s), .flags = CK_PM_SCAN_WP_MATCHING | CK_PM_SCAN_CHECK_WPASYNC,
			.start = at, .end = a->end, .vec = (uint64_t)(uintptr_t)v, .vec_len = 512,
			.category_mask = CK_PAGE_IS_WRITTEN, .return_mask = CK_PAGE_IS_WRITTEN,
		};
		long n = ioctl(pm, CK_PAGEMAP_SCAN, &s);
		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			if (add_run(a, &cap, v[i].start, v[i].end))
				return -ENOMEM;
		if (s.walk_end <= at)
			break;
		at = s.walk_end;
	}
	return 0;
}

static int register_area(int uffd, const struct area *a)
{
	struct ck_uffdio_register r = { .range = { a->start, a->end - a->start }, .mode = CK_UFFDIO_REGISTER_MODE_WP };
	if (ioctl(uffd, CK_UFFDIO_REGISTER, &r) < 0)
		return -errno;
	struct ck_uffdio_writeprotect w = { .range = { a->start, a->end - a->start }, .mode = CK_UFFDIO_WRITEPROTECT_MODE_WP };
	return ioctl(uffd, CK_UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}

/*
 * The tracked freeze's own work (scan, copy of the written pages: a few ms of CPU) runs as a
 * real-time task when we may (CAP_SYS_NICE, cap_boost_self), as cow.c does for the fork: on a
 * loaded machine the capturer otherwise waits for a CPU while the target stays stopped
 * (measured at load 12 on 2 cores: 19 ms of CPU took 187 ms). Back to normal before the pages
 * are compressed.
 */

int track_freeze(struct capture *c)
{
	struct track *t = c->track;
	char path[64];
	int err;

	if (!t)
		return 0;
	if (t->uffd < 0 && c->track_wanted) {
		int fatal = 0;
		err = make_handle(c, &fatal);
		if (err == -ESRCH)
			return cap_fail(err, "process %d is gone", c->pid);
		if (fatal)
			return err;               /* the target could not be put back as it was */
		if (err) {
			cap_warn("no dirty-page tracking (%s%s): later incremental captures compare all memory",
				 strerror(-err), err == -EINVAL ? "; it needs Linux 6.7 or later" : "");
			snprintf(t->note, sizeof(t->note), "no dirty-page tracking: %s", strerror(-err));
			return 0;
		}
	}
	if (t->uffd < 0)
		return 0;
	if (t->direct)
		cap_boost_self(1);                       /* until track_preread is done */
	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	int pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return cap_fail(-errno, "open %s", path);
	t->scanned = 1;                 /* from here the baseline moves to this capture */
	err = 0;
	uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID), wall0 = now_ns(CLOCK_MONOTONIC);
	for (size_t i = 0; !err && i < c->nareas; i++) {
		struct area *a = &c->areas[i];
		if (!trackable(a))
			continue;
		int e = scan_area(pm, a);
		if (e == 0) {
			a->tracked = t->direct;
			t->tracked_areas++;
			for (size_t k = 0; k < a->nwritten; k++)
				t->written_pages += (a->written[k][1] - a->written[k][0]) / PAGE_SIZE_4K;
			continue;
		}
		free(a->written);
		a->written = NULL;
		a->nwritten = 0;
		if (e != -EPERM) {
			err = cap_fail(e, "PAGEMAP_SCAN of %s", path);
			break;
		}
		t->untracked_areas++;   /* new since the handle was made: compared, and registered */
		if (register_area(t->uffd, a) == 0)
			t->registered_areas++;
	}
	close(pm);
	if (getenv("CKIMG_DEBUG_TIMES"))
		fprintf(stderr, "track: %u areas scanned, %u registered, %llu pages written: %.3f ms (cpu %.3f ms)\n",
			t->tracked_areas, t->registered_areas, (unsigned long long)t->written_pages,
			(now_ns(CLOCK_MONOTONIC) - wall0) / 1e6, (now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / 1e6);
	if (err)
		return err;
	if (t->direct && t->untracked_areas)
		snprintf(t->note, sizeof(t->note), "%u areas not tracked yet (new since the last capture): compared",
			 t->untracked_areas);
	return 0;
}

/*
 * Frozen, a tracked process of a tree (no copy-on-write twin, so cow.c never asked): is it a
 * child subreaper? A descendant's twin would be re-parented to it (tree_cow_allowed). Asked
 * with prctl in the target, the answer written below its stack pointer (past the red zone:
 * scratch for the target too) and the 8 bytes put back. Unknown (-1 there) on any failure.
 */
void track_probe_subreaper(struct capture *c)
{
	const struct thread_info *th = NULL;
	for (size_t i = 0; i < c->nthreads; i++)
		if (c->threads[i].tid == c->pid)
			th = &c->threads[i];
	if (!th || c->subreaper_seen)
		return;
	uint64_t at = ((uint64_t)th->regs.rsp - 512) & ~7ull, saved = 0, got = 0;
	if (pt_read_mem(c->pid, at, &saved, 8) != 8)
		return;
	struct pt_syscall sc = REMOTE_SYSCALL(__NR_prctl, PR_GET_CHILD_SUBREAPER, at);
	int err = pt_remote_syscall(c->pid, c->syscall_ip, &sc);
	if (!err && sc.ret == 0 && pt_read_mem(c->pid, at, &got, 8) == 8)
		c->subreaper_seen = (int32_t)got ? 2 : 1;
	pt_write_mem(c->pid, at, &saved, 8);
}

/* Chunk planning of a tracked area (mm.c): candidates = the pages written since the parent
 * (before the freeze: precopy's runs; in it: the area's runs); the rest of what the parent holds
 * there is carried (inherited with its digest, not read). */
static void set_bits(struct chunk *ch, uint64_t s, uint64_t e, uint64_t rs, uint64_t re)
{
	rs = rs < s ? s : rs;
	re = re > e ? e : re;
	for (uint64_t p = (rs - s) / PAGE_SIZE_4K; rs < re && p < (re - s) / PAGE_SIZE_4K; p++)
		ch->bits[p / 64] |= 1ull << (p % 64);
}

int track_plan_cell(const struct capture *c, const struct area *a, size_t *run, struct chunk *ch)
{
	const struct track *t = c->track;
	uint64_t s = ch->first_page, e = s + (uint64_t)ch->span_pages * PAGE_SIZE_4K;
	while (*run < a->nwritten && a->written[*run][1] <= s)
		(*run)++;
	for (size_t r = *run; r < a->nwritten && a->written[r][0] < e; r++)
		set_bits(ch, s, e, a->written[r][0], a->written[r][1]);
	for (size_t r = t ? pre_index(t, t->npre, s) : 0; t && r < t->npre && t->pre[r].start < e; r++)
		set_bits(ch, s, e, t->pre[r].start, t->pre[r].end);
	return 0;
}

/*
 * Frozen, an incremental capture on the tracked baseline: the few planned pages are copied
 * now and compressed and written after the release (the freeze does not wait for the writer).
 * process_vm_readv with many runs per call (a /proc/PID/mem pread per run cost ~28 us a page
 * here); a chunk the batch could not read whole is read again page by page (unreadable ones
 * marked), as pages.c does.
 */
#define BATCH 1024                      /* IOV_MAX */
struct pair {
	uint8_t *dst;
	uint64_t addr, len;
	size_t chunk;
	uint32_t page;                  /* the chunk's page index of addr */
};

static int flush(struct capture *c, struct pair *pr, size_t n, struct iovec *loc, struct iovec *rem, int *fd)
{
	uint64_t want = 0;
	for (size_t k = 0; k < n; k++) {
		loc[k] = (struct iovec){ pr[k].dst, pr[k].len };
		rem[k] = (struct iovec){ (void *)(uintptr_t)pr[k].addr, pr[k].len };
		want += pr[k].len;
	}
	if (!n || process_vm_readv(c->pid, loc, n, rem, n, 0) == (ssize_t)want)
		return 0;
	if (*fd < 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
		if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return cap_fail(-errno, "open %s", path);
	}
	for (size_t k = 0; k < n; k++)          /* page by page; the unreadable ones marked */
		for (uint64_t o = 0; o < pr[k].len; o += PAGE_SIZE_4K)
			if (pread(*fd, pr[k].dst + o, PAGE_SIZE_4K, (off_t)(pr[k].addr + o)) != PAGE_SIZE_4K) {
				uint32_t p = pr[k].page + (uint32_t)(o / PAGE_SIZE_4K);
				c->preread_bad[pr[k].chunk][p / 64] |= 1ull << (p % 64);
			}
	return 0;
}

/*
 * Frozen, an incremental capture on the tracked baseline: the planned pages into memory —
 * those precopy copied and not written since from its copy, the others from the target
 * (process_vm_readv, many runs per call) — compressed and written after the release.
 */
int track_preread(struct capture *c)
{
	struct track *t = c->track;
	size_t n = c->nchunks ? c->nchunks : 1, np = 0;
	struct iovec *loc = malloc(BATCH * sizeof(*loc)), *rem = malloc(BATCH * sizeof(*rem));
	struct pair *pr = malloc(BATCH * sizeof(*pr));
	c->preread = calloc(n, sizeof(*c->preread));
	c->preread_bad = calloc(n, sizeof(*c->preread_bad));
	int err = 0, fd = -1;
	uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID), pages = 0, fresh = 0, in_place = 0;
	if (!c->preread || !c->preread_bad || !loc || !rem || !pr)
		err = cap_fail(-ENOMEM, "page copies");
	for (size_t i = 0; !err && i < c->nchunks; i++) {
		const struct chunk *ch = &c->chunks[i];
		const struct area *a = &c->areas[ch->area];
		if (!ch->cand_pages)
			continue;
		size_t len = (size_t)ch->cand_pages * PAGE_SIZE_4K;
		if (a->tracked && (c->preread[i] = pre_in_place(t, ch))) {
			in_place++;             /* the copy itself; pages written since re-read into it */
		} else if (c->preread_pool && c->preread_pool_used + len <= c->preread_pool_len) {
			c->preread[i] = c->preread_pool + c->preread_pool_used;
			c->preread_pool_used += len;
		} else if (!(c->preread[i] = malloc(len))) {
			err = cap_fail(-ENOMEM, "page copies");
			break;
		}
		uint32_t k = 0;
		for (uint32_t p = 0, q; !err && next_run(ch, &p, &q); p = q)
			for (uint32_t r = p; r < q; r++, k++) {
				uint64_t addr = ch->first_page + (uint64_t)r * PAGE_SIZE_4K;
				uint8_t *dst = c->preread[i] + (size_t)k * PAGE_SIZE_4K;
				/* copied before the freeze and not written since: that copy */
				const uint8_t *src = a->tracked && !written_at(a, addr) ? pre_copy_of(t, addr) : NULL;
				pages++;
				if (src) {
					if (src != dst)
						memcpy(dst, src, PAGE_SIZE_4K);
					continue;
				}
				fresh++;
				if (np && pr[np - 1].chunk == i && pr[np - 1].dst + pr[np - 1].len == dst &&
				    pr[np - 1].addr + pr[np - 1].len == addr) {
					pr[np - 1].len += PAGE_SIZE_4K;
					continue;
				}
				if (np == BATCH) {
					err = flush(c, pr, np, loc, rem, &fd);
					np = 0;
					if (err)
						break;
				}
				pr[np++] = (struct pair){ dst, addr, PAGE_SIZE_4K, i, r };
			}
	}
	if (!err)
		err = flush(c, pr, np, loc, rem, &fd);
	if (fd >= 0)
		close(fd);
	cap_boost_self(0);
	free(loc);
	free(rem);
	free(pr);
	if (getenv("CKIMG_DEBUG_TIMES"))
		fprintf(stderr, "track: %llu pages (%llu copied before the freeze; %llu copied now), cpu %.3f ms\n",
			(unsigned long long)pages, (unsigned long long)(pages - fresh), (unsigned long long)fresh,
			(now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / 1e6);
	return err;
}

void track_free_chunk(struct capture *c, size_t i)
{
	const struct track *t = c->track;
	uint8_t *p = c->preread[i];
	if (p && !(p >= c->preread_pool && p < c->preread_pool + c->preread_pool_len) &&
	    !(t && p >= t->pre_pool && p < t->pre_pool + t->pre_pool_len))
		free(p);
	c->preread[i] = NULL;
}

void track_free_preread(struct capture *c)
{
	struct track *t = c->track;
	for (size_t i = 0; c->preread && i < c->nchunks; i++)
		track_free_chunk(c, i);
	cap_free_buf(c->preread_pool, c->preread_pool_len);
	c->preread_pool = NULL;
	if (t) {                        /* (track_close left it to us: chunks pointed into it) */
		cap_free_buf(t->pre_pool, t->pre_pool_len);
		t->pre_pool = NULL;
	}
	free(c->preread);
	free(c->preread_bad);
	c->preread = NULL;
	c->preread_bad = NULL;
}

/* A detached keeper holding the handle, its baseline the image just published. */
static int spawn_keeper(struct capture *c, const uint8_t id[16])
{
	struct track *t = c->track;
	char pid_s[16], st_s[24], id_s[33];
	int ready[2];
	uint64_t st = start_time_of(c->pid);
	snprintf(pid_s, sizeof(pid_s), "%d", (int)c->pid);
	snprintf(st_s, sizeof(st_s), "%llu", (unsigned long long)st);
	for (int i = 0; i < 16; i++)
		snprintf(id_s + 2 * i, 3, "%02x", id[i]);
	if (!st || pipe2(ready, O_CLOEXEC) < 0)
		return -errno;
	pid_t mid = fork();
	if (mid < 0) {
		close(ready[0]);
		close(ready[1]);
		return -errno;
	}
	if (mid == 0) {
		setsid();
		if (fork() != 0)
			_exit(0);
		int dn = open("/dev/null", O_RDWR);
		int u = fcntl(t->uffd, F_DUPFD, 10), w = fcntl(ready[1], F_DUPFD, 10);
		if (u < 0 || w < 0 || dup2(u, 3) < 0 || dup2(w, 4) < 0)   /* (either may be 3 or 4 now) */
			_exit(127);
		if (dn >= 0) {
			dup2(dn, 0);
			dup2(dn, 1);
			dup2(dn, 2);
		}
		syscall(__NR_close_range, 5, ~0u, 0);
		char *argv[] = { "ckimg-capture", "--keeper", pid_s, st_s, id_s, NULL };
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(ready[1]);
	waitpid(mid, NULL, 0);
	int32_t kp = 0;
	struct pollfd p = { ready[0], POLLIN, 0 };
	int ok = poll(&p, 1, 5000) == 1 && read(ready[0], &kp, sizeof(kp)) == (ssize_t)sizeof(kp);
	close(ready[0]);
	if (!ok)
		return -EIO;
	t->keeper = kp;
	return 0;
}

int track_commit(struct capture *c, const uint8_t id[16])
{
	struct track *t = c->track;
	if (!t || t->uffd < 0)
		return 0;
	if (t->sess >= 0) {
		struct trk_msg m = { .op = 'C' };
		char ack = 0;
		memcpy(m.id, id, 16);
		if (send(t->sess, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m) || recv(t->sess, &ack, 1, 0) != 1)
			cap_warn("the tracking keeper did not take the new baseline; the next incremental capture compares all memory");
		close(t->sess);
		t->sess = -1;
	} else if (t->made) {
		int err = spawn_keeper(c, id);
		if (err)
			cap_warn("no tracking keeper could be started (%s)", strerror(-err));
	}
	close(t->uffd);
	t->uffd = -1;
	return 0;
}

void track_close(struct capture *c)
{
	struct track *t = c->track;
	if (!t)
		return;
	cap_boost_self(0);                       /* (a failure between the scan and the copy) */
	if (t->sess >= 0 && !t->scanned) {
		struct trk_msg m = { .op = 'A' };
		send(t->sess, &m, sizeof(m), MSG_NOSIGNAL);
	}
	if (t->sess >= 0)
		close(t->sess);     /* after a scan without commit: the keeper gives up (baseline lost) */
	if (t->uffd >= 0)
		close(t->uffd);
	t->sess = t->uffd = -1;         /* (the summary still reads the rest) */
	if (!c->preread) {              /* else chunk buffers point into it: track_free_preread */
		cap_free_buf(t->pre_pool, t->pre_pool_len);
		t->pre_pool = NULL;
	}
	free(t->pre);
	t->pre = NULL;
	t->npre = 0;
}

const char *track_state(const struct capture *c, pid_t *keeper, uint64_t *written)
{
	const struct track *t = c->track;
	*keeper = t ? t->keeper : 0;
	*written = t ? t->written_pages : 0;
	if (!t || !t->scanned)
		return "off";
	if (t->made)
		return "started";
	return t->direct ? "tracked" : "rebased";
}

const char *track_note(const struct capture *c)
{
	return c->track ? c->track->note : "";
}

/*
 * The keeper: ckimg-capture --keeper PID START_TIME BASELINE_HEX, fd 3 the handle, fd 4 a pipe
 * told our pid once the socket is bound. One capture at a time gets the handle.
 */
int track_keeper_main(int argc, char **argv)
{
	if (argc != 5)
		return 1;
	pid_t pid = (pid_t)atoi(argv[2]);
	uint64_t st = strtoull(argv[3], NULL, 10);
	uint8_t baseline[16];
	int valid = 1;
	for (int i = 0; i < 16; i++) {
		unsigned v;
		if (sscanf(argv[4] + 2 * i, "%2x", &v) != 1)
			return 1;
		baseline[i] = (uint8_t)v;
	}
	sigset_t none;                  /* (ckimg run's shield blocked the job-wide ones) */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	prctl(PR_SET_NAME, "ckimg-keeper");
	if (chdir("/") < 0)
		return 1;
	int pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
	if (pidfd < 0 || start_time_of(pid) != st)
		return 0;                   /* the target is gone already */
	struct sockaddr_un a;
	socklen_t len;
	socket_name(pid, st, &a, &len);
	int ls = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int bound = -1;
	for (int i = 0; ls >= 0 && i < 50 && (bound = bind(ls, (struct sockaddr *)&a, len)) < 0 && errno == EADDRINUSE; i++)
		usleep(20000);              /* a keeper that is giving up still holds the name */
	if (bound < 0 || listen(ls, 4) < 0)
		return 1;
	int32_t me = getpid();
	if (write(4, &me, sizeof(me)) != (ssize_t)sizeof(me))
		return 1;
	close(4);
	int sess = -1;
	for (;;) {
		struct pollfd p[3] = { { pidfd, POLLIN, 0 }, { ls, POLLIN, 0 }, { sess, POLLIN, 0 } };
		if (poll(p, sess >= 0 ? 3 : 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents)
			return 0;               /* the target exited: the handle goes with us */
		if (sess >= 0 && p[2].revents) {
			struct trk_msg m;
			ssize_t n = recv(sess, &m, sizeof(m), 0);
			if (n == 1 && m.op == 'Q')
				continue;
			if (n != (ssize_t)sizeof(m) || (m.op != 'C' && m.op != 'A'))
				return 0;       /* gone without a word after a scan: baseline lost */
			if (m.op == 'C') {
				memcpy(baseline, m.id, 16);
				valid = 1;
				send(sess, "k", 1, MSG_NOSIGNAL);
			}
			close(sess);
			sess = -1;
		}
		if (p[1].revents) {
			int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
			if (s < 0)
				continue;
			struct ucred cr;
			socklen_t crl = sizeof(cr);
			if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 || (cr.uid != 0 && cr.uid != getuid())) {
				close(s);
				continue;
			}
			struct trk_reply r = { .status = sess >= 0 ? TRK_BUSY : valid ? TRK_BASELINE : 0, .keeper_pid = me };
			memcpy(r.magic, TRK_MAGIC, 4);
			memcpy(r.baseline, baseline, 16);
			char q;
			struct pollfd qp = { s, POLLIN, 0 };
			if (poll(&qp, 1, 2000) != 1 || recv(s, &q, 1, 0) != 1 || q != 'Q') {
				close(s);
				continue;
			}
			char ctl[CMSG_SPACE(sizeof(int))];
			memset(ctl, 0, sizeof(ctl));
			struct iovec iov = { &r, sizeof(r) };
			struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
			if (r.status != TRK_BUSY) {
				m.msg_control = ctl;
				m.msg_controllen = sizeof(ctl);
				struct cmsghdr *h = CMSG_FIRSTHDR(&m);
				h->cmsg_level = SOL_SOCKET;
				h->cmsg_type = SCM_RIGHTS;
				h->cmsg_len = CMSG_LEN(sizeof(int));
				int fd = 3;
				memcpy(CMSG_DATA(h), &fd, sizeof(int));
			}
			if (sendmsg(s, &m, MSG_NOSIGNAL) != (ssize_t)sizeof(r) || r.status == TRK_BUSY) {
				close(s);
				continue;
			}
			sess = s;
		}
	}
}
