/*
 * Copy-on-write capture: the freeze lasts as long as the small state takes, not the memory.
 *
 * While the target is frozen (after the memory map and page plan are taken), a fork is
 * injected into it with the remote-syscall primitive; the forked copy ("twin") holds the
 * target's private memory as it was at that instant, copy-on-write. The target is released
 * and the pages are read from the twin, which never runs a single instruction of its own,
 * through /proc/TWIN/mem (process_vm_readv would pin the pages, and pinning a page still
 * shared copy-on-write unshares it: the twin would copy every page read).
 *
 * How the twin is made so that the target cannot tell (no child it can wait for, no SIGCHLD,
 * no extra file reference), in one freeze:
 *   1. a scratch mapping in the target: a code page "syscall; exit(0)" (anything born on it
 *      that ever runs untraced exits at once) and a data page;
 *   2. the target's thread (ptrace option TRACECLONE) runs clone(CLONE_VM|CLONE_FILES,
 *      exit_signal 0) there: a "helper" sharing the target's memory and fd table, traced by
 *      us from birth (no page-table copy, cheap);
 *   3. the helper (options TRACECLONE|EXITKILL) runs clone(CLONE_FILES, exit_signal 0): the
 *      twin, a copy-on-write copy of the memory sharing the fd table (no file reference of its
 *      own), traced from birth with EXITKILL: if ckimg dies, however, the kernel kills it;
 *   4. the helper is killed and reaped (by us as tracer, then by the target with a remote
 *      wait4(__WCLONE): a clone child with exit_signal 0 sends no SIGCHLD and is invisible
 *      to wait(-1)); the twin, orphaned, is re-parented to the nearest child subreaper
 *      above the target or init, never the target (a target that is itself a subreaper is
 *      captured stop-and-copy);
 *   5. the scratch mapping is unmapped and the target's ptrace options restored.
 * Areas the twin cannot hold faithfully are read during the freeze, from the target: shared
 * mappings (the twin sees later writes), MADV_DONTFORK (absent in the twin), MADV_WIPEONFORK
 * (zero in the twin), and file-backed areas whose file may change under the twin (deleted, or
 * of unknown identity: every page of those is stored). Private anonymous memory (heap, stacks,
 * anonymous mappings) and the written pages of private file mappings are read from the twin.
 * Three more things are taken from the twin after the release, out of the freeze: the page
 * tables of that memory (pagemap: the fork copied every entry), the areas' VmFlags and
 * Rss (smaps walks every page table entry: ~10 ms per GiB), and the signal handlers (a fork
 * copies them; 62 remote rt_sigaction calls).
 *
 * Without smaps in the freeze (only /proc/PID/maps, which walks no page), the two kinds of
 * area a fork does not copy are found by comparing target and twin right after the fork:
 * an area missing from the twin's maps is MADV_DONTFORK; a private anonymous area where the
 * target has a page and the twin none (PAGEMAP_SCAN, stopped at the first page) is
 * MADV_WIPEONFORK (one where the target has no page is zero in both: nothing to take).
 * smaps is still read while frozen when this is not enough: the kernel has no PAGEMAP_SCAN
 * (< 6.7), the target has locked memory (a fork drops VM_LOCKED), or maps a device or
 * special file (VM_IO/VM_PFNMAP areas must not be read; only smaps tells).
 *
 * When a step is not possible (seccomp without CAP_SYS_ADMIN, another PID namespace, a
 * subreaper target, clone refused by a pids limit...) everything done so far is undone and
 * the capture goes on stop-and-copy, still frozen.
 */
#include "capture.h"
#include "uffd_wp.h"   /* PAGEMAP_SCAN: Debian 12's headers lack it */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_O_SUSPEND_SECCOMP
#define PTRACE_O_SUSPEND_SECCOMP (1 << 21)
#endif

struct cow_twin {
	pid_t twin;
	uint64_t scratch_data;         /* the scratch data page, still mapped in the twin */
	int mem_fd;                    /* /proc/TWIN/mem */
	uint8_t **pre;                 /* per chunk: its pages read during the freeze, or NULL */
	uint64_t (*pre_bad)[CKIMG_SPAN_GRID_PAGES / 64];
};

/* State of one attempt while the target is frozen. */
struct cow_setup {
	struct capture *c;
	pid_t tid, helper, twin;
	long base_opts;                /* the target thread's ptrace options as seized */
	int opts_changed;
	uint64_t scr;                  /* scratch: code page, then data page */
};

#define SCR_LEN 8192u

/* syscall; mov eax, 60 (exit); xor edi, edi; syscall; jmp . */
static const uint8_t scratch_code[] = { 0x0f, 0x05, 0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff,
					0x0f, 0x05, 0xeb, 0xfe };

int cow_wanted(const struct capture *c)
{
	return !c->no_cow && !c->kill_after && !c->cow_blocked;
}

static int remote(struct cow_setup *s, pid_t tid, uint64_t ip, struct pt_syscall sc, int64_t *ret)
{
	int err = pt_remote_syscall(tid, ip, &sc);
	if (!err)
		*ret = sc.ret;
	return err;
}

static long set_opts(pid_t tid, long opts)
{
	return ptrace(PTRACE_SETOPTIONS, tid, 0, (void *)opts) < 0 ? -errno : 0;
}

/* Wait for a tracee to exit (we are its tracer); other stops are passed over. */
static void reap_traced(pid_t pid)
{
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, __WALL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != pid || WIFEXITED(status) || WIFSIGNALED(status))
			return;
		ptrace(PTRACE_CONT, pid, 0, 0);   /* a stop before SIGKILL takes effect */
	}
}

/* A new tracee's first stop (PTRACE_EVENT_STOP of an auto-attached child). */
static int wait_born(pid_t pid)
{
	int status;
	return pt_wait_stop(pid, &status);
}

static int same_pid_ns(pid_t pid)
{
	char a[64], b[64], path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	ssize_t n = readlink("/proc/self/ns/pid", a, sizeof(a) - 1), m = readlink(path, b, sizeof(b) - 1);
	return n > 0 && n == m && !memcmp(a, b, (size_t)n);
}

/*
 * Undo a partial setup (or finish a good one, keep_twin): the helper dies and the target
 * reaps it, the scratch mapping goes, the options come back. Returns 0 or -errno when the
 * target cannot be put back as it was.
 */
static int setup_cleanup(struct cow_setup *s, int keep_twin)
{
	int64_t ret = 0;
	int err = 0;

	if (s->twin > 0 && !keep_twin) {
		kill(s->twin, SIGKILL);
		reap_traced(s->twin);
		s->twin = 0;
	}
	if (s->helper > 0) {
		kill(s->helper, SIGKILL);
		reap_traced(s->helper);     /* now a zombie child of the target */
		for (int i = 0; i < 1000; i++) {
			err = remote(s, s->tid, s->c->syscall_ip,
				     REMOTE_SYSCALL(__NR_wait4, (uint64_t)s->helper, 0, WNOHANG | __WCLONE, 0), &ret);
			if (err || ret != 0)
				break;
			usleep(100);
		}
		if (!err && ret != s->helper)
			err = ret < 0 ? (int)ret : -ECHILD;
		if (err)
			cap_warn("copy-on-write helper %d could not be reaped by the target (%s)",
				 s->helper, strerror(-err));
		s->helper = 0;
	}
	if (s->scr) {
		int e = pt_remote_munmap(s->tid, s->c->syscall_ip, s->scr, SCR_LEN);
		if (!err)
			err = e;
		s->scr = 0;
	}
	if (s->opts_changed) {
		int e = (int)set_opts(s->tid, s->base_opts);
		if (!err)
			err = e;
		s->opts_changed = 0;
	}
	return err;
}

/*
 * The fork copies every page table entry of the memory (~10-25 ms per GiB of 4 KiB pages on
 * an idle machine) in the helper's context; on a busy machine the helper is preempted
 * meanwhile and the copy takes several times that, all of it inside the freeze. The helper is
 * ours (a process of its own, not one of the target's threads, gone before the release): it
 * runs the fork as a real-time task (SCHED_RESET_ON_FORK: the twin gets the normal policy),
 * when we may (CAP_SYS_NICE); else as it is.
 */
static void boost(pid_t helper)
{
	struct sched_param sp = { .sched_priority = 1 };
	if (getenv("CKIMG_COW_NO_BOOST"))
		return;
	sched_setscheduler(helper, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp);
}

static void unboost(pid_t helper)
{
	struct sched_param sp = { .sched_priority = 0 };
	sched_setscheduler(helper, SCHED_OTHER, &sp);
}

/* Steps 1-3 above; on failure the caller runs setup_cleanup(). */
static int make_twin(struct cow_setup *s)
{
	struct capture *c = s->c;
	int64_t ret = 0;
	int32_t subreaper = 0;
	int err;

	if (!same_pid_ns(c->pid))
		return -EXDEV;            /* the pid clone returns would be in the target's namespace */
	/* The seize asked for SUSPEND_SECCOMP when allowed; ask the same way. */
	s->base_opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP;
	if (set_opts(s->tid, s->base_opts | PTRACE_O_TRACECLONE)) {
		s->base_opts = PTRACE_O_TRACESYSGOOD;
		if (proc_seccomp_mode(c->pid))
			return -EPERM;    /* a filter might kill the target on clone */
		err = (int)set_opts(s->tid, s->base_opts | PTRACE_O_TRACECLONE);
		if (err)
			return err;
	}
	s->opts_changed = 1;

	err = pt_remote_mmap(s->tid, c->syscall_ip, SCR_LEN, &s->scr);
	if (err)
		return err;
	if (pt_write_mem(c->pid, s->scr, scratch_code, sizeof(scratch_code)) != (long)sizeof(scratch_code))
		return -EIO;
	err = remote(s, s->tid, c->syscall_ip, REMOTE_SYSCALL(__NR_mprotect, s->scr, 4096, PROT_READ | PROT_EXEC), &ret);
	if (!err && ret)
		err = (int)ret;
	if (err)
		return err;
	err = remote(s, s->tid, c->syscall_ip, REMOTE_SYSCALL(__NR_prctl, PR_GET_CHILD_SUBREAPER, s->scr + 4096), &ret);
	if (!err && ret)
		err = (int)ret;
	if (!err && pt_read_mem(c->pid, s->scr + 4096, &subreaper, sizeof(subreaper)) != sizeof(subreaper))
		err = -EIO;
	if (err)
		return err;
	c->subreaper_seen = subreaper ? 2 : 1;
	if (subreaper)
		return -EBUSY;            /* the twin would be re-parented to the target */

	/* The helper: shares memory and fds with the target, so it costs nothing to make. */
	err = remote(s, s->tid, s->scr, REMOTE_SYSCALL(__NR_clone, CLONE_VM | CLONE_FILES, 0, 0, 0, 0), &ret);
	if (!err && ret <= 0)
		err = ret < 0 ? (int)ret : -ECHILD;
	if (err)
		return err;
	s->helper = (pid_t)ret;
	err = wait_born(s->helper);
	if (!err)
		err = (int)set_opts(s->helper, PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL);
	if (err)
		return err;
	boost(s->helper);

	/* The twin: the copy-on-write copy, killed by the kernel if we die. */
	err = remote(s, s->helper, s->scr, REMOTE_SYSCALL(__NR_clone, CLONE_FILES, 0, 0, 0, 0), &ret);
	if (!err && ret <= 0)
		err = ret < 0 ? (int)ret : -ECHILD;
	if (err)
		return err;
	s->twin = (pid_t)ret;
	unboost(s->helper);
	err = wait_born(s->twin);
	if (!err)
		err = (int)set_opts(s->twin, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
	return err;
}

/* Areas whose pages are read while frozen, from the target (see the top of the file). */
int cow_read_while_frozen(const struct capture *c, const struct area *a)
{
	if (a->shared || (a->flags & (CKIMG_AREA_DONTFORK | CKIMG_AREA_WIPEONFORK)))
		return 1;
	if (a->kind == CKIMG_KIND_ANON || a->kind == CKIMG_KIND_HEAP || a->kind == CKIMG_KIND_STACK)
		return 0;
	/* A private mapping of a file we know: the pages stored are the ones the process wrote,
	 * anonymous now and shared copy-on-write with the twin like any other (a JVM's CDS
	 * archive: 12 MiB); the rest are the file's and not stored. A deleted file or one of
	 * unknown identity has every page stored, file pages too, which can change under the twin. */
	if (a->kind == CKIMG_KIND_FILE && !(a->flags & CKIMG_AREA_DELETED) && a->file_id != CKIMG_NO_FILE &&
	    !(c->files[a->file_id - 1].flags & CKIMG_FILE_UNREADABLE))
		return 0;
	return 1;
}

static int pre_read(struct capture *c, struct cow_twin *t)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	t->pre = calloc(c->nchunks ? c->nchunks : 1, sizeof(*t->pre));
	t->pre_bad = calloc(c->nchunks ? c->nchunks : 1, sizeof(*t->pre_bad));
	int err = t->pre && t->pre_bad ? 0 : -ENOMEM;
	for (size_t i = 0; !err && i < c->nchunks; i++) {
		const struct chunk *ch = &c->chunks[i];
		if (!ch->cand_pages || !cow_read_while_frozen(c, &c->areas[ch->area]))
			continue;
		t->pre[i] = malloc((size_t)ch->cand_pages * PAGE_SIZE_4K);
		if (!t->pre[i]) {
			err = -ENOMEM;
			break;
		}
		pages_read_packed(fd, ch, t->pre[i], t->pre_bad[i]);
	}
	close(fd);
	return err;
}

/*
 * Whether the area [start, end) of the process behind pagemap fd pm has any page (present,
 * the zero page included, or swapped): 1, 0, or -errno (no PAGEMAP_SCAN). A present one is
 * found by the scan itself, which stops at the first; a swapped one is checked in pagemap:
 * the uffd-wp markers a tracked area has on its holes scan as swapped too, and a fork drops
 * them, so an untouched tracked area would pass for MADV_WIPEONFORK.
 */
static int any_page(int pm, uint64_t start, uint64_t end)
{
	struct ck_page_region r[16];
	struct ck_pm_scan_arg a = {
		.size = sizeof(a), .start = start, .end = end, .vec = (uint64_t)(uintptr_t)r, .vec_len = 1,
		.max_pages = 1, .category_anyof_mask = CK_PAGE_IS_PRESENT, .return_mask = CK_PAGE_IS_PRESENT,
	};
	long n = ioctl(pm, CK_PAGEMAP_SCAN, &a);
	if (n != 0)
		return n < 0 ? -errno : 1;
	for (uint64_t at = start; at < end;) {
		a = (struct ck_pm_scan_arg){
			.size = sizeof(a), .start = at, .end = end, .vec = (uint64_t)(uintptr_t)r, .vec_len = 16,
			.category_anyof_mask = CK_PAGE_IS_SWAPPED, .return_mask = CK_PAGE_IS_SWAPPED,
		};
		n = ioctl(pm, CK_PAGEMAP_SCAN, &a);
		if (n < 0)
			return -errno;
		for (long k = 0; k < n; k++)
			for (uint64_t p = r[k].start; p < r[k].end; p += 512 * PAGE_SIZE_4K) {
				uint64_t e[512];
				size_t cnt = (r[k].end - p) / PAGE_SIZE_4K > 512 ? 512 : (r[k].end - p) / PAGE_SIZE_4K;
				if (pread(pm, e, cnt * 8, (off_t)(p / PAGE_SIZE_4K * 8)) != (ssize_t)(cnt * 8))
					return -EIO;
				for (size_t q = 0; q < cnt; q++)
					if (pm_swapped_page(e[q]))
						return 1;
			}
		if (n < 16 || a.walk_end <= at)
			break;
		at = a.walk_end;
	}
	return 0;
}

/*
 * Before the fork, frozen: can the areas' VmFlags wait for the twin's smaps (1), or must the
 * target's smaps be read now (0)? See the top of the file.
 */
static int flags_can_wait(const struct capture *c)
{
	char path[64], *status = NULL;
	unsigned long long locked = 1;
	snprintf(path, sizeof(path), "/proc/%d/status", c->pid);
	if (read_file(path, &status, NULL) == 0) {
		if (proc_status_value(status, "VmLck", 10, &locked))
			locked = 1;
		free(status);
	}
	if (locked)
		return 0;
	for (size_t i = 0; i < c->nareas; i++) {
		const char *p = c->areas[i].path;
		if (p[0] == '[' || !p[0])
			continue;
		if (p[0] != '/' || !strncmp(p, "/sys/", 5) || !strncmp(p, "/proc/", 6) ||
		    (!strncmp(p, "/dev/", 5) && strcmp(p, "/dev/zero") && strncmp(p, "/dev/shm/", 9)))
			return 0;       /* anon_inode:..., devices: maybe VM_IO/VM_PFNMAP */
	}
	return 1;
}

/* Frozen, right after the fork: mark the areas the twin lacks (see the top of the file). */
static int find_unforked(struct capture *c, pid_t twin)
{
	char path[64], *maps = NULL;
	uint64_t (*tw)[2] = NULL;
	size_t n = 0, cap = 0;
	int pm = -1, tpm = -1, err;

	snprintf(path, sizeof(path), "/proc/%d/maps", twin);
	err = read_file(path, &maps, NULL);
	for (char *line = maps, *next; !err && line && *line; line = next) {
		unsigned long long s, e;
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (sscanf(line, "%llx-%llx", &s, &e) != 2)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			void *q = realloc(tw, cap * sizeof(*tw));
			if (!q) {
				err = -ENOMEM;
				break;
			}
			tw = q;
		}
		tw[n][0] = s;
		tw[n][1] = e;
		n++;
	}
	free(maps);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	if (!err && (pm = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		err = -errno;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", twin);
	if (!err && (tpm = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		err = -errno;
	size_t j = 0;
	for (size_t i = 0; !err && i < c->nareas; i++) {
		struct area *a = &c->areas[i];
		/* (contained, not equal: the scratch mapping was made in the target before the fork
		 * and may have merged with an adjacent area of the same protection — in the twin the
		 * area can be part of a larger one; the scratch goes from the target afterwards) */
		while (j < n && tw[j][1] <= a->start)
			j++;
		if (j == n || tw[j][0] > a->start || tw[j][1] < a->end) {
			a->flags |= CKIMG_AREA_DONTFORK;
			continue;
		}
		if (a->shared || (a->kind != CKIMG_KIND_ANON && a->kind != CKIMG_KIND_HEAP && a->kind != CKIMG_KIND_STACK))
			continue;
		int mine = any_page(pm, a->start, a->end), its = mine > 0 ? any_page(tpm, a->start, a->end) : 0;
		if (mine < 0 || its < 0)
			err = mine < 0 ? mine : its;
		else if (mine && !its)
			a->flags |= CKIMG_AREA_WIPEONFORK;
	}
	if (pm >= 0)
		close(pm);
	if (tpm >= 0)
		close(tpm);
	free(tw);
	return err;
}

/*
 * Frozen, the twin made: which areas are read now (find_unforked, or the target's smaps),
 * their pages planned and read.
 */
static int frozen_part(struct capture *c, pid_t twin)
{
	int err = 0;
	if (!c->vmflags_known && (err = find_unforked(c, twin)) != 0) {
		if (getenv("CKIMG_DEBUG_TIMES"))
			fprintf(stderr, "cow: no PAGEMAP_SCAN (%s): smaps while frozen\n", strerror(-err));
		err = areas_apply_smaps(c, c->pid, 0);
		c->vmflags_known = !err;
	}
	if (!err)
		err = plan_chunks_part(c, c->pid, 1);
	if (!err)
		err = pre_read(c, c->twin);
	return err;
}

/*
 * Freeze phase "areas" of a copy-on-write capture: the areas from maps, VmFlags deferred to
 * the twin when they can be (flags_can_wait), else from the target's smaps now.
 */
int cow_collect_areas(struct capture *c)
{
	int err = collect_areas_maps(c);
	c->vmflags_known = 0;
	if (!err && !flags_can_wait(c)) {
		err = areas_apply_smaps(c, c->pid, 0);
		c->vmflags_known = 1;
	}
	return err;
}

/* Stop-and-copy after all (no twin), still frozen: the VmFlags from the target, every area planned. */
int cow_fallback_plan(struct capture *c)
{
	int err = 0;
	if (!c->vmflags_known)
		err = areas_apply_smaps(c, c->pid, 0);
	c->vmflags_known = 1;
	if (!err)
		err = plan_chunks(c);
	return err;
}

static void free_twin(struct capture *c)
{
	struct cow_twin *t = c->twin;
	if (!t)
		return;
	if (t->mem_fd >= 0)
		close(t->mem_fd);
	for (size_t i = 0; t->pre && i < c->nchunks; i++)
		free(t->pre[i]);
	free(t->pre);
	free(t->pre_bad);
	free(t);
	c->twin = NULL;
}

int cow_begin(struct capture *c)
{
	struct cow_setup s = { .c = c, .tid = c->pt.threads[0].tid };
	char path[64];
	int err, undo;

	struct cow_twin *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->mem_fd = -1;
	c->twin = t;
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	cap_boost_self(1);       /* each remote syscall is a round trip with the target's thread */
	err = make_twin(&s);
	uint64_t scratch_data = s.scr + 4096;
	uint64_t t1 = now_ns(CLOCK_MONOTONIC);
	if (!err) {
		snprintf(path, sizeof(path), "/proc/%d/mem", s.twin);
		t->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (t->mem_fd < 0)
			err = -errno;
	}
	undo = setup_cleanup(&s, !err);
	cap_boost_self(0);       /* before any page is read: a real-time copy would starve the machine */
	uint64_t t2 = now_ns(CLOCK_MONOTONIC);
	if (!err && undo) {
		err = undo;
		kill(s.twin, SIGKILL);
		reap_traced(s.twin);
	}
	if (!err) {
		err = frozen_part(c, s.twin);
		if (getenv("CKIMG_DEBUG_TIMES"))
			fprintf(stderr, "cow: twin %.3f ms, cleanup %.3f ms, frozen areas %.3f ms\n", (t1 - t0) / 1e6,
				(t2 - t1) / 1e6, (now_ns(CLOCK_MONOTONIC) - t2) / 1e6);
		if (err) {          /* (memory only) */
			kill(s.twin, SIGKILL);
			reap_traced(s.twin);
			free_twin(c);
			return cap_fail(err, "copy-on-write: read the areas a fork does not hold");
		}
		t->twin = s.twin;
		t->scratch_data = scratch_data;
		return 0;
	}
	free_twin(c);
	if (kill(c->pid, 0) && errno == ESRCH)
		return cap_fail(-ESRCH, "process %d is gone", c->pid);
	if (err != -EXDEV && err != -EBUSY && err != -EPERM)
		cap_warn("no copy-on-write snapshot (%s); the process stays stopped while its memory is copied",
			 strerror(-err));
	if (undo)
		return cap_fail(undo, "cannot undo the copy-on-write setup in the target");
	return 0;
}

/*
 * After the release: plan the twin's areas from its own pagemap (the fork copied every page
 * table entry of private anonymous memory, so it is the target's at the freeze instant);
 * this walk of the page tables is then out of the freeze. The chunks read while frozen keep
 * their data, wherever the address order puts them now.
 */
int cow_plan_rest(struct capture *c)
{
	struct cow_twin *t = c->twin;
	size_t n0 = c->nchunks;
	int err = 0;
	if (!c->vmflags_known) {
		/* the twin's smaps: its areas are the target's at the fork (VM_LOCKED, which a
		 * fork drops, was ruled out); the areas it lacks (MADV_DONTFORK) from the target's
		 * own smaps if it still has them as they were */
		err = areas_apply_smaps(c, t->twin, 0);
		if (err)
			return err;
		int missing = 0;
		for (size_t i = 0; i < c->nareas; i++)
			missing |= !c->areas[i].vmflags;
		if (missing)    /* best effort: it runs on, may have changed them or exited */
			areas_apply_smaps(c, c->pid, 1);
		c->vmflags_known = 1;
	}
	uint64_t *first = malloc((n0 ? n0 : 1) * sizeof(*first));
	if (!first)
		return -ENOMEM;
	for (size_t i = 0; i < n0; i++)
		first[i] = c->chunks[i].first_page;
	err = plan_chunks_part(c, t->twin, 0);
	uint8_t **pre = calloc(c->nchunks ? c->nchunks : 1, sizeof(*pre));
	uint64_t (*pre_bad)[CKIMG_SPAN_GRID_PAGES / 64] = calloc(c->nchunks ? c->nchunks : 1, sizeof(*pre_bad));
	if (!err && (!pre || !pre_bad))
		err = -ENOMEM;
	if (err) {
		free(first);
		free(pre);
		free(pre_bad);
		c->nchunks = n0;        /* free_twin frees what pass 1 read */
		return err;
	}
	for (size_t i = 0, j = 0; i < c->nchunks && j < n0; i++)
		if (c->chunks[i].first_page == first[j]) {
			pre[i] = t->pre[j];
			memcpy(pre_bad[i], t->pre_bad[j], sizeof(pre_bad[i]));
			j++;
		}
	free(first);
	free(t->pre);
	free(t->pre_bad);
	t->pre = pre;
	t->pre_bad = pre_bad;
	return incr_alloc_cells(c);
}

int cow_read_chunk(struct capture *c, size_t i, uint8_t *dst, uint64_t *bad)
{
	struct cow_twin *t = c->twin;
	const struct chunk *ch = &c->chunks[i];
	if (t->pre[i]) {
		memcpy(dst, t->pre[i], (size_t)ch->cand_pages * PAGE_SIZE_4K);
		memcpy(bad, t->pre_bad[i], sizeof(t->pre_bad[i]));
		free(t->pre[i]);
		t->pre[i] = NULL;
	} else {
		pages_read_packed(t->mem_fd, ch, dst, bad);
	}
	return 0;
}

/*
 * The signal handlers: a fork copies them, so the twin's are the target's at the freeze and
 * the 62 remote calls run after the release. Without a twin (still frozen): the target's.
 */
int cow_collect_sigactions(struct capture *c)
{
	struct cow_twin *t = c->twin;
	uint64_t scr = 0;

	if (t)              /* (after the release: the target's threads are no longer held) */
		return collect_sigactions_in(c, t->twin, t->twin, t->scratch_data);
	pid_t tid = c->pt.threads[0].tid;
	int err = pt_remote_mmap(tid, c->syscall_ip, 4096, &scr);
	if (err)
		return cap_fail(err, "remote mmap of a scratch page");
	err = collect_sigactions_in(c, c->pid, tid, scr);
	int e2 = pt_remote_munmap(tid, c->syscall_ip, scr, 4096);
	return err ? err : e2 ? cap_fail(e2, "remote munmap of the scratch page") : 0;
}

/* Pages only the twin still maps: the ones the target wrote (or dropped) since the fork. */
static uint64_t twin_private_pages(pid_t twin)
{
	char path[64], *r = NULL;
	unsigned long long clean = 0, dirty = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", twin);
	if (read_file(path, &r, NULL) == 0) {
		proc_status_value(r, "Private_Clean", 10, &clean);
		proc_status_value(r, "Private_Dirty", 10, &dirty);
		free(r);
	}
	/* less the scratch pages: the twin alone maps them once the target has unmapped them */
	uint64_t pages = (clean + dirty) / 4, scratch = SCR_LEN / PAGE_SIZE_4K;
	return pages > scratch ? pages - scratch : 0;
}

pid_t cow_twin_of(const struct capture *c)
{
	return c->twin ? c->twin->twin : 0;
}

void cow_end(struct capture *c)
{
	struct cow_twin *t = c->twin;
	if (!t)
		return;
	c->cow_written_pages = twin_private_pages(t->twin);
	/* Not waited for: tearing down the twin's page tables takes a while and runs on its own;
	 * the twin is reaped here if it is done, else its parent (the nearest subreaper or init)
	 * reaps it once we exit and the kernel detaches it. */
	kill(t->twin, SIGKILL);
	waitpid(t->twin, NULL, __WALL | WNOHANG);
	c->cow_twin_pid = t->twin;
	free_twin(c);
}
