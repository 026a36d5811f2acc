/*
 * ckimg-capture PID -o IMAGE [--compress none|lz4|lzf|deflate] [--buffer-mb N|all] [--kill]
 *                            [--progress] [--no-hash-cache] [--no-children] [--parent IMAGE (trees too)]
 *                            [--no-cow] [--track|--no-track]
 * ckimg-capture --keeper ...     (internal: the dirty-page tracking keeper, track.c)
 *
 * PID and all its descendants are captured (a tree image, FORMAT.md "Process trees") unless
 * --no-children; a process without children gives a single-process image either way.
 *
 * Freezes every thread of PID, collects what the freeze must see (threads, signal state, fds,
 * memory map), takes a copy-on-write snapshot of the memory (cow.c, one twin per process of a
 * tree; --no-cow and --kill: the memory itself), lets the target go, then reads the memory from the
 * snapshot, finishes the image (compression, file identities, index) and publishes it atomically.
 * --track keeps dirty-page tracking between captures (track.c): an incremental capture on the
 * tracked baseline then reads only the pages written since, stop-and-copy, without a twin.
 *
 * Output: stderr carries one line "ckimg-capture: <reason>" on failure (exit 2; usage errors
 * exit 1) and, when it is a terminal, a progress line. stdout carries, with --progress,
 * "progress DONE TOTAL" lines (bytes), and on success one JSON summary line.
 * The target is never left stopped, traced or changed: every failure path and SIGINT/SIGTERM/
 * SIGHUP detach it first.
 */
#include "capture.h"
#include "tree.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static struct capture cap;
static uint64_t t_start, t_progress, t_tty;
static uint64_t t_seize, t_freeze_at;  /* CLOCK_MONOTONIC: seize began, all seized (+ freeze_ns: released) */

static void on_signal(int sig)
{
	(void)sig;
	cap_abort = 1;
}

static int usage(const char *why)
{
	fprintf(stderr, "ckimg-capture: %s\nusage: ckimg-capture PID -o IMAGE "
		"[--compress none|lz4|lzf|deflate] [--buffer-mb N|all] [--kill] [--progress] [--no-hash-cache] [--no-children] "
		"[--parent IMAGE (trees too)] [--no-cow] [--track|--no-track]\n", why);
	return 1;
}

static int parse_args(int argc, char **argv)
{
	cap.codec = CKIMG_CODEC_LZ4;
	cap.use_hash_cache = 1;
	cap.buffer_bytes = 16ull << 20;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			if (++i >= argc)
				return usage("-o needs a path");
			cap.out_path = argv[i];
		} else if (!strcmp(a, "--compress") || !strncmp(a, "--compress=", 11)) {
			const char *v = a[10] == '=' ? a + 11 : (++i < argc ? argv[i] : NULL);
			if (!v)
				return usage("--compress needs a codec");
			if (!strcmp(v, "none"))
				cap.codec = CKIMG_CODEC_NONE;
			else if (!strcmp(v, "lz4"))
				cap.codec = CKIMG_CODEC_LZ4;
			else if (!strcmp(v, "lzf"))
				cap.codec = CKIMG_CODEC_LZF;
			else if (!strcmp(v, "deflate") || !strcmp(v, "gzip"))   /* gzip: old alias */
				cap.codec = CKIMG_CODEC_DEFLATE;
			else
				return usage("unknown codec (none, lz4, lzf, deflate)");
		} else if (!strcmp(a, "--buffer-mb")) {
			if (++i >= argc)
				return usage("--buffer-mb needs a size in MiB or 'all'");
			if (!strcmp(argv[i], "all")) {
				cap.buffer_bytes = 0;
			} else {
				char *end;
				unsigned long long mb = strtoull(argv[i], &end, 10);
				if (*end || mb < 1 || mb > (1ull << 30))
					return usage("--buffer-mb needs a size in MiB or 'all'");
				cap.buffer_bytes = mb << 20;
			}
		} else if (!strcmp(a, "--kill")) {
			cap.kill_after = 1;
		} else if (!strcmp(a, "--progress")) {
			cap.progress_stdout = 1;
		} else if (!strcmp(a, "--parent")) {
			if (++i >= argc)
				return usage("--parent needs an image");
			cap.parent_path = argv[i];      /* a tree too: each process against its own */
		} else if (!strcmp(a, "--no-hash-cache")) {
			cap.use_hash_cache = 0;
		} else if (!strcmp(a, "--track")) {
			cap.track_wanted = 1;
		} else if (!strcmp(a, "--no-track")) {
			cap.track_off = 1;
		} else if (!strcmp(a, "--no-cow")) {
			cap.no_cow = 1;
		} else if (!strcmp(a, "--no-children")) {
			cap.no_children = 1;
		} else if (a[0] >= '1' && a[0] <= '9' && !cap.pid) {
			char *end;
			long v = strtol(a, &end, 10);
			if (*end || v <= 0 || v > 0x3fffffff)
				return usage("bad PID");
			cap.pid = (pid_t)v;
		} else {
			return usage("unexpected argument");
		}
	}
	if (!cap.pid)
		return usage("missing PID");
	if (!cap.out_path)
		return usage("missing -o IMAGE");
	return 0;
}

static void tick(struct pipeline *pl)
{
	uint64_t done, total, now = now_ns(CLOCK_MONOTONIC);
	pages_progress(pl, &done, &total);
	if (cap.progress_stdout && now - t_progress >= 200000000ull) {
		t_progress = now;
		printf("progress %llu %llu\n", (unsigned long long)done, (unsigned long long)total);
		fflush(stdout);
	}
	if (cap.progress_tty && now - t_tty >= 200000000ull) {
		t_tty = now;
		double s = (double)(now - t_start) / 1e9;
		fprintf(stderr, "\rckimg-capture: %llu/%llu MiB  %.0f MB/s   ",
			(unsigned long long)(done >> 20), (unsigned long long)(total >> 20),
			s > 0 ? (double)done / 1e6 / s : 0.0);
	}
}

static int put_thread(struct image *im, const struct thread_info *t)
{
	struct ckimg_thread_fixed f = {
		.fixed_size = sizeof(f), .tid = (uint32_t)t->tid, .flags = t->flags, .state = t->state,
		.sigmask = t->sigmask, .pending = t->pending, .clear_child_tid = t->clear_child_tid,
		.robust_list = t->robust_list, .robust_list_len = t->robust_len,
		.altstack_sp = t->ss_sp, .altstack_size = t->ss_size, .altstack_flags = t->ss_flags,
		.regs_size = sizeof(t->regs), .xstate_size = t->xstate_size,
	};
	struct buf b = { 0 };
	int err = buf_put(&b, &f, sizeof(f));
	if (!err)
		err = buf_put(&b, &t->regs, sizeof(t->regs));
	if (!err)
		err = buf_put(&b, t->xstate, t->xstate_size);
	if (!err)
		err = image_record(im, CKIMG_REC_THREAD, &b, (uint32_t)t->tid, 0);
	buf_free(&b);
	return err;
}

static int put_process(struct image *im)
{
	struct buf b = { 0 };
	int err = buf_put(&b, &cap.proc, sizeof(cap.proc));
	const char *s[5] = { cap.comm, cap.exe, cap.cwd, cap.root, cap.kernel };
	for (int i = 0; !err && i < 5; i++)
		err = buf_put_cstr(&b, s[i]);
	if (!err)
		err = image_record(im, CKIMG_REC_PROCESS, &b, 0, 0);
	buf_free(&b);
	return err;
}

/* Records that need only what the freeze collected: before the page data. */
static int put_metadata(struct image *im)
{
	int err = put_process(im);
	if (!err)
		err = incr_put_parent(&cap, im);
	if (!err)
		err = image_record(im, CKIMG_REC_ARGV, &cap.argv, 0, 0);
	if (!err)
		err = image_record(im, CKIMG_REC_ENVIRON, &cap.environ, 0, 0);
	if (!err)
		err = image_record(im, CKIMG_REC_AUXV, &cap.auxv, 0, 0);
	if (!err)
		err = image_record(im, CKIMG_REC_RLIMITS, &cap.rlimits, 0, 0);
	if (!err && !cap.defer_sigactions)   /* else written once read from the twin */
		err = image_record(im, CKIMG_REC_SIGACTIONS, &cap.sigactions, 0, 0);
	for (size_t i = 0; !err && i < cap.nthreads; i++)
		err = put_thread(im, &cap.threads[i]);
	if (!err)
		err = put_state_records(&cap, im);
	if (!err)
		err = put_sigqueue(&cap, im);
	if (!err)
		err = fds_write(&cap, im);
	if (!err)
		err = sysv_put_records(&cap, im);
	return err;
}

/* Records known only after the pages are read (UNREADABLE) and files hashed. */
static int put_files_and_areas(struct image *im)
{
	int err = 0;
	for (size_t i = 0; !err && i < cap.nfiles; i++) {
		const struct mapped_file *f = &cap.files[i];
		struct ckimg_mapped_file_fixed x = {
			.fixed_size = sizeof(x), .file_id = f->id, .dev_major = f->dev_major,
			.dev_minor = f->dev_minor, .inode = f->inode, .size = f->size,
			.mtime_ns = f->mtime_ns, .mode = f->mode, .flags = f->flags,
		};
		memcpy(x.sha256, f->sha256, 32);
		struct buf b = { 0 };
		err = buf_put(&b, &x, sizeof(x));
		if (!err)
			err = buf_put_cstr(&b, f->path);
		if (!err)
			err = buf_put_str(&b, f->build_id, f->build_id_len);
		if (!err)
			err = image_record(im, CKIMG_REC_MAPPED_FILE, &b, f->id, 0);
		buf_free(&b);
	}
	for (size_t i = 0; !err && i < cap.nareas; i++) {
		const struct area *a = &cap.areas[i];
		struct ckimg_area_fixed x = {
			.fixed_size = sizeof(x), .area_id = a->id, .start = a->start, .end = a->end,
			.file_offset = a->file_offset, .dev_major = a->dev_major, .dev_minor = a->dev_minor,
			.inode = a->inode, .prot = a->prot, .flags = a->flags, .kind = a->kind,
			.file_id = a->file_id,
		};
		struct buf b = { 0 };
		err = buf_put(&b, &x, sizeof(x));
		if (!err)
			err = buf_put_cstr(&b, a->path);
		if (!err)
			err = buf_put_cstr(&b, a->vmflags);
		if (!err)
			err = image_record(im, CKIMG_REC_AREA, &b, a->id, a->start);
		buf_free(&b);
	}
	return err;
}

/* Why PTRACE_SEIZE failed, in words: a tracer (debugger, another capture) is the usual case. */
static void freeze_failed(int err)
{
	char path[64], *status = NULL;
	unsigned long long tracer = 0, kthread = 0;

	if (err == -ESRCH) {
		cap_fail(err, "process %d is gone", cap.pid);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/status", cap.pid);
	if (err == -EPERM && read_file(path, &status, NULL) == 0) {
		proc_status_value(status, "TracerPid", 10, &tracer);
		proc_status_value(status, "Kthread", 10, &kthread);
		free(status);
	}
	if (kthread)
		cap_fail(0, "cannot freeze process %d: it is a kernel thread (no user memory to capture)", cap.pid);
	else if (err == -ETIMEDOUT && pt_stuck_reason()[0])
		cap_fail(0, "cannot freeze process %d: %s", cap.pid, pt_stuck_reason());
	else if (tracer)
		cap_fail(0, "cannot freeze process %d: it is already traced by process %llu", cap.pid, tracer);
	else
		cap_fail(err, "cannot freeze process %d", cap.pid);
}

static int check_abort(void)
{
	return cap_abort ? (cap_fail(0, "interrupted by a signal; the target was released"), -EINTR) : 0;
}

/* Everything that needs the target stopped, in order; memory last. */
static uint64_t t_phase;
static int debug_times;

/* The last step done, for an error that comes without a message of its own. */
static const char *last_phase = "start";

/*
 * Where the wall time goes: each step's time (since the previous step ended) under its name,
 * summed over the processes of a tree; the JSON summary carries them in order ("phases_ms",
 * they add up to total_ms), CKIMG_DEBUG_TIMES prints each as it ends (with the page faults
 * taken: a first touch of fresh memory is the slowest thing on some VMs).
 */
#define MAX_PHASES 40
static struct {
	const char *name;
	uint64_t ns;
} phases[MAX_PHASES];
static size_t nphases;

static void phase(const char *name)
{
	uint64_t t = now_ns(CLOCK_MONOTONIC);
	size_t i = 0;
	while (i < nphases && strcmp(phases[i].name, name))
		i++;
	if (i == nphases && nphases < MAX_PHASES)
		phases[nphases++].name = name;
	if (i < nphases)
		phases[i].ns += t - t_phase;
	last_phase = name;
	if (debug_times) {
		static long flt0;
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		fprintf(stderr, "ckimg-capture: %-12s %8.3f ms %6ld faults\n", name, (double)(t - t_phase) / 1e6,
			ru.ru_minflt - flt0);
		flt0 = ru.ru_minflt;
	}
	t_phase = t;
}

/* The last step: total_ms is then the sum of the steps. */
static void phases_end(void)
{
	phase("finish");
	cap.total_ns = t_phase - t_start;
}

/* The one error line: the failing step's own message, else at least which process and where. */
static void report_failure(int err)
{
	const char *why = cap_fail_reason();

	if (why[0])
		fprintf(stderr, "ckimg-capture: %s\n", why);
	else
		fprintf(stderr, "ckimg-capture: process %d: %s (in the step after '%s')\n", cap.pid, strerror(-err), last_phase);
}

static int frozen_steps(struct image *im, struct pipeline **pl)
{
	phase("freeze");
	int cow = cow_wanted(&cap) && !track_direct(&cap);   /* tracked: a few pages, read now */
	cap.defer_sigactions = cow;
	int err = collect_process(&cap);
	phase("process");
	if (!err)
		err = incr_check_process(&cap);
	if (!err)
		err = collect_threads(&cap);
	if (!err)
		err = collect_sigqueue(&cap);
	phase("threads");
	if (!err)
		err = collect_sigactions_and_tls(&cap);
	phase("sigactions");
	if (!err)
		err = collect_state(&cap);
	phase("state");
	if (!err)
		err = collect_fds(&cap);
	phase("fds");
	if (!err)
		err = cow || track_direct(&cap) ? cow_collect_areas(&cap) : collect_areas(&cap);
	phase("areas");
	if (!err)
		err = track_freeze(&cap);
	phase("track");
	if (!err)
		err = collect_mapped_files(&cap);
	if (!err)
		err = collect_file_contents(&cap);
	phase("fds+areas");
	if (!err && !cow)       /* copy-on-write: planned in cow_begin and after the release */
		err = plan_chunks(&cap);
	if (!err && !cow)
		err = incr_alloc_cells(&cap);
	phase("pagemap");
	if (!err)
		err = check_abort();
	if (!err)
		err = put_metadata(im);
	if (!err)
		err = put_file_contents(&cap, im);    /* file bytes as the frozen process left them */
	phase("files");
	if (!err && cow) {
		err = cow_begin(&cap);         /* the memory is then read after the release */
		if (!err && !cap.twin)         /* no twin after all: stop-and-copy */
			err = cow_fallback_plan(&cap);
		if (!err && !cap.twin)
			err = incr_alloc_cells(&cap);
		if (!err && !cap.twin) {
			cap.defer_sigactions = 0;
			err = cow_collect_sigactions(&cap);
			if (!err)
				err = image_record(im, CKIMG_REC_SIGACTIONS, &cap.sigactions, 0, 0);
		}
	}
	phase("cow");
	if (!err && track_direct(&cap))
		err = track_preread(&cap);     /* the written pages; written out after the release */
	phase("preread");
	if (cap.twin || cap.preread)
		return err;
	if (!err)
		err = pages_start(&cap, im, pl);
	phase("start");
	if (!err)
		err = pages_read_all(*pl);
	phase("read");
	return err;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* Totals over the processes of a tree capture (the root alone otherwise). */
static struct {
	size_t processes, zombies, threads, areas, files, cow_processes;
	uint64_t cand_bytes, stored_pages, stored_bytes, held_pages, inherited_pages, written_pages;
	uint32_t fds;
	size_t tracked;                 /* processes whose tracking was used or started */
	char keepers[1024];             /* JSON list of the tracking keepers' pids (a tree: several) */
} total;

static void add_totals(const struct capture *c)
{
	total.processes++;
	total.threads += c->nthreads;
	total.areas += c->nareas;
	total.files += c->nfiles;
	total.fds += c->nfds;
	total.cand_bytes += c->cand_bytes;
	total.stored_pages += c->stored_pages;
	total.stored_bytes += c->stored_bytes;
	total.cow_processes += c->cow_twin_pid != 0;
	total.held_pages += c->held_pages;
	total.inherited_pages += c->inherited_pages;
}

/* After the commit: one process's tracking in the totals. */
static void add_tracking(const struct capture *c)
{
	pid_t keeper;
	uint64_t written;
	const char *state = track_state(c, &keeper, &written);
	size_t n = strlen(total.keepers);
	total.written_pages += written;
	if (strcmp(state, "off"))
		total.tracked++;
	if (keeper && n + 16 < sizeof(total.keepers))
		snprintf(total.keepers + n, sizeof(total.keepers) - n, "%s%d", n ? "," : "", (int)keeper);
}

static void print_summary(void)
{
	static const char *codecs[] = { "none", "lz4", "lzf", "deflate" };
	if (!total.processes) {
		add_totals(&cap);
		add_tracking(&cap);
	}
	printf("{\"pid\":%d,\"image\":", cap.pid);
	json_str(cap.out_path);
	printf(",\"codec\":\"%s\",\"image_bytes\":%llu,\"memory_bytes\":%llu,\"stored_pages\":%llu,"
	       "\"stored_bytes\":%llu,\"threads\":%zu,\"areas\":%zu,\"files\":%zu,\"fds\":%u,"
	       "\"processes\":%zu,\"zombies\":%zu,\"cow_processes\":%zu,"
	       "\"freeze_ms\":%.3f,\"total_ms\":%.3f,\"killed\":%s,\"direct_io\":%s,"
	       "\"held_pages\":%llu,\"inherited_pages\":%llu,\"cow\":%s,\"twin_pid\":%d,"
	       "\"cow_written_bytes\":%llu,\"freeze_window_ns\":[%llu,%llu],",
	       codecs[cap.codec], (unsigned long long)cap.image_bytes,
	       (unsigned long long)total.cand_bytes, (unsigned long long)total.stored_pages,
	       (unsigned long long)total.stored_bytes, total.threads, total.areas, total.files, total.fds,
	       total.processes, total.zombies, total.cow_processes,
	       (double)cap.freeze_ns / 1e6, (double)cap.total_ns / 1e6, cap.kill_after ? "true" : "false",
	       cap.direct_io ? "true" : "false", (unsigned long long)total.held_pages,
	       (unsigned long long)total.inherited_pages, cap.cow_twin_pid ? "true" : "false",
	       (int)cap.cow_twin_pid, (unsigned long long)cap.cow_written_pages * PAGE_SIZE_4K,
	       (unsigned long long)t_seize, (unsigned long long)(t_freeze_at + cap.freeze_ns));
	pid_t keeper;
	uint64_t written;
	const char *tracking = track_state(&cap, &keeper, &written);
	(void)written;
	printf("\"tracking\":\"%s\",\"keeper_pid\":%d,\"written_pages\":%llu,\"tracked_processes\":%zu,"
	       "\"keeper_pids\":[%s],\"tracking_note\":", tracking, (int)keeper, (unsigned long long)total.written_pages,
	       total.tracked, total.keepers);
	json_str(track_note(&cap));
	printf(",\"parent\":");
	if (cap.parent_path)
		json_str(cap.parent_path);
	else
		printf("null");
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf(",\"cpu_ms\":%.3f,\"phases_ms\":{", (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3);
	for (size_t i = 0; i < nphases; i++)
		printf("%s\"%s\":%.3f", i ? "," : "", phases[i].name, (double)phases[i].ns / 1e6);
	printf("}");
	printf("}\n");
	fflush(stdout);
}

/* After the pages are read (and, copy-on-write, after the release): the process's last records. */
static int tree_proc_tail(struct image *im)
{
	int err = tree_put_shared_pages(&cap, im);   /* pages stored once, in the parent */
	if (!err)
		err = incr_put_digests(&cap, im);        /* held pages: a later capture's parent */
	if (!err)
		err = hash_mapped_files(&cap);
	if (!err)
		err = put_files_and_areas(im);
	if (!err)
		err = pages_put_unreadable(&cap, im);
	if (!err)
		err = check_abort();
	return err;
}

/* Process i of the tree in `cap` (its state swapped in), or back into its place. */
static void tree_swap_in(struct cap_tree *t, size_t i, struct capture *root, struct image *im)
{
	cap = i == 0 ? *root : *t->procs[i].c;
	im->owner = (uint32_t)cap.pid;
}

static void tree_swap_out(struct cap_tree *t, size_t i, struct capture *root)
{
	if (i == 0)
		*root = cap;
	else
		*t->procs[i].c = cap;
}

/* The page writers of one process: told to stop on an error, their own result otherwise. */
static int pages_done(struct pipeline *pl, int err)
{
	if (!pl)
		return err;
	if (err)
		cap_abort = 1;
	int e = pages_finish(pl, tick);
	return err ? err : e;
}

/*
 * A tree, every process frozen: each is captured with the steps above, one after the other,
 * into the one image under its own owner pid (the steps keep their state in `cap`, so each
 * process's state is swapped in while its turn lasts). Copy-on-write (one twin per process,
 * parents first; not below a child subreaper of the tree, whom a twin would be re-parented
 * to): the tree is released once every process has its twin and its frozen state, then each
 * process's memory is planned (parents first: a child's pages still shared with its parent
 * are found against the parent's twin) and read from its twin. Otherwise memory is read and
 * written while the tree stays frozen: no process runs on before every one is in the image.
 */
static int capture_tree(struct image *im, struct cap_tree *t, uint64_t t_freeze)
{
	struct capture root = cap;
	size_t twins = 0;
	int err;

	im->tree = 1;
	err = tree_put_record(t, im);
	for (size_t i = 0; !err && i < t->n; i++) {
		struct pipeline *pl = NULL;
		if (!t->procs[i].c) {
			total.zombies++;
			continue;
		}
		tree_swap_in(t, i, &root, im);
		cap.proc.capture_ns = root.proc.capture_ns;
		cap.cow_blocked = !tree_cow_allowed(t, i);
		err = frozen_steps(im, &pl);
		if (!err && cap.preread)
			track_probe_subreaper(&cap);    /* (no twin asked it) */
		t->procs[i].subreaper = cap.subreaper_seen ? cap.subreaper_seen == 2 : -1;
		t->procs[i].twin = cow_twin_of(&cap);
		t->procs[i].preread = cap.preread != NULL;
		if (t->procs[i].twin || t->procs[i].preread) {
			twins++;        /* its pages written after the release */
		} else {
			err = pages_done(pl, err);
			if (!err)       /* (after the page writers: they reserve image space in order) */
				err = tree_proc_tail(im);
			add_totals(&cap);
		}
		tree_swap_out(t, i, &root);
	}
	cap = root;
	if (twins && !err) {
		tree_release(t, 0);             /* the tree runs on; its memory is in the twins */
		cap.freeze_ns = now_ns(CLOCK_MONOTONIC) - t_freeze;
		phase("release");
		root = cap;
	}
	for (int pass = 0; pass < 2 && twins && !err; pass++)
		for (size_t i = 0; !err && i < t->n; i++) {
			if (!t->procs[i].twin && !(t->procs[i].preread && pass == 1))
				continue;
			tree_swap_in(t, i, &root, im);
			if (t->procs[i].preread) {
				/* tracked: its written pages copied while frozen, written out now */
				struct pipeline *pl = NULL;
				if (!cap.vmflags_known) {   /* out of the freeze, best effort */
					areas_apply_smaps(&cap, cap.pid, 1);
					areas_apply_smaps(&cap, cap.pid, 2);
					cap.vmflags_known = 1;
				}
				err = pages_start(&cap, im, &pl);
				if (!err)
					err = pages_read_all(pl);
				err = pages_done(pl, err);
				track_free_preread(&cap);
				if (!err)
					err = tree_proc_tail(im);
				add_totals(&cap);
			} else if (pass == 0) {        /* plans, parents first, every twin alive */
				err = cow_collect_sigactions(&cap);
				if (!err)
					err = image_record(im, CKIMG_REC_SIGACTIONS, &cap.sigactions, 0, 0);
				if (!err)
					err = cow_plan_rest(&cap);
			} else {
				struct pipeline *pl = NULL;
				err = pages_start(&cap, im, &pl);
				if (!err)
					err = pages_read_all(pl);
				cow_end(&cap);
				err = pages_done(pl, err);
				if (!err)
					err = tree_proc_tail(im);
				add_totals(&cap);
			}
			tree_swap_out(t, i, &root);
		}
	cap = root;
	for (size_t i = 0; i < t->n; i++)      /* every twin gone, on every path */
		if (t->procs[i].twin) {
			if (i == 0) {
				cow_end(&cap);
			} else {
				cow_end(t->procs[i].c);
			}
			t->procs[i].twin = 0;
		}
	if (twins)
		phase("twin read");
	im->owner = 0;
	return err;
}

int main(int argc, char **argv)
{
	struct cap_tree *tree = NULL;
	struct image im;
	struct pipeline *pl = NULL;
	struct sigaction sa;
	uint64_t t_freeze = 0;
	int err;

	if (argc > 1 && !strcmp(argv[1], "--keeper"))
		return track_keeper_main(argc, argv);
	if (parse_args(argc, argv))
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;           /* no SA_RESTART: blocking calls return EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	cap.progress_tty = isatty(2);
	debug_times = getenv("CKIMG_DEBUG_TIMES") != NULL;
	t_start = t_phase = now_ns(CLOCK_MONOTONIC);

	memset(&im, 0, sizeof(im));
	im.fd = im.dirfd = -1;             /* image_abort is safe before image_open */
	err = incr_load_parent(&cap);
	phase("parent");
	if (!err)
		err = track_open(&cap);
	phase("keeper");
	if (!err)
		err = image_open(&im, cap.out_path);
	phase("open");
	if (!err)
		pages_prealloc(&cap, &im);
	phase("prealloc");
	if (!err)
		err = collect_prefreeze_states(&cap);
	if (!err) {
		t_seize = now_ns(CLOCK_MONOTONIC);
		err = cap.no_children ? pt_freeze(&cap.pt, cap.pid) : tree_freeze(&cap, &tree);
		if (err)
			freeze_failed(err);
	}
	if (!err && tree && tree->n == 1) {
		cap.tree = NULL;        /* no descendants: a single-process image, readable by 1.1 */
		tree_free(tree);
		tree = NULL;
	}
	if (!err) {
		cap.frozen = 1;
		t_freeze = t_freeze_at = now_ns(CLOCK_MONOTONIC);
		cap.proc.capture_ns = now_ns(CLOCK_REALTIME);
		err = tree ? capture_tree(&im, tree, t_freeze) : frozen_steps(&im, &pl);
	}
	if (tree) {
		if (cap.frozen && (err || !cap.kill_after)) {
			tree_release(tree, 0);      /* the whole tree runs on, at once */
			cap.frozen = 0;
			cap.freeze_ns = now_ns(CLOCK_MONOTONIC) - t_freeze;
		}
		phase("release");
		if (!err)
			err = image_finish(&im);
		phase("fsync");
		if (!err)
			cap.image_bytes = im.off;
		for (size_t i = 0; i < tree->n; i++)    /* published: each process's new baseline */
			if (tree->procs[i].c) {
				if (!err)
					track_commit(tree->procs[i].c, im.image_id);
				add_tracking(tree->procs[i].c);
				track_close(tree->procs[i].c);  /* (without a commit: the keeper gives up) */
			}
		if (cap.frozen) {       /* --kill: none of them ran past the capture point */
			tree_release(tree, !err);
			cap.frozen = 0;
			cap.freeze_ns = now_ns(CLOCK_MONOTONIC) - t_freeze;
		}
		image_abort(&im);
		track_close(&cap);
		track_free_preread(&cap);
		incr_free(&cap);
		fds_free(&cap);
		tree_free(tree);
		phases_end();
		if (err) {
			report_failure(err);
			return 2;
		}
		print_summary();
		return 0;
	}
	if (cap.frozen && (err || !cap.kill_after)) {
		fds_release(&cap, 0);
		pt_release(&cap.pt);       /* the target runs on */
		cap.frozen = 0;
		cap.freeze_ns = now_ns(CLOCK_MONOTONIC) - t_freeze;
	}
	phase("release");
	if (!err && cap.twin)
		err = cow_collect_sigactions(&cap);
	if (!err && cap.twin)
		err = image_record(&im, CKIMG_REC_SIGACTIONS, &cap.sigactions, 0, 0);
	if (!err && cap.twin)
		err = cow_plan_rest(&cap);
	if (!err && cap.twin)
		err = pages_start(&cap, &im, &pl);
	if (!err && cap.twin)
		err = pages_read_all(pl);       /* from the copy-on-write twin, the target running */
	if (!err && cap.preread && !cap.vmflags_known)
		areas_smaps_begin(&cap);       /* tracked: VmFlags out of the freeze, best effort */
	if (!err && cap.preread && !pl)
		err = pages_start(&cap, &im, &pl);
	if (!err && cap.preread)
		err = pages_read_all(pl);       /* from the copies made while frozen */
	cow_end(&cap);                      /* every page is read: the twin goes (on every path) */
	phase("twin read");
	if (!err)
		err = hash_mapped_files(&cap);
	phase("hash");
	err = pages_done(pl, err);
	areas_smaps_end(&cap);
	phase("pages");
	if (!err)
		err = incr_put_digests(&cap, &im);
	phase("digests");
	if (!err)
		err = put_files_and_areas(&im);
	if (!err)
		err = pages_put_unreadable(&cap, &im);
	if (!err)
		err = check_abort();
	phase("write");
	if (!err)
		err = image_finish(&im);
	phase("fsync");
	if (!err)
		cap.image_bytes = im.off;
	if (!err)
		track_commit(&cap, im.image_id);   /* published: the new tracking baseline */
	if (cap.frozen) {
		/* --kill: the target never ran past the capture point */
		if (!err)
			kill(cap.pid, SIGKILL);
		fds_release(&cap, !err);
		pt_release(&cap.pt);
		cap.frozen = 0;
		cap.freeze_ns = now_ns(CLOCK_MONOTONIC) - t_freeze;
	}
	image_abort(&im);
	track_close(&cap);
	track_free_preread(&cap);
	fds_free(&cap);
	incr_free(&cap);
	phases_end();
	if (cap.progress_tty && cap.cand_bytes >= (64u << 20))
		fprintf(stderr, "\r\033[K");
	if (err) {
		report_failure(err);
		return 2;
	}
	if (cap.progress_stdout)
		printf("progress %llu %llu\n", (unsigned long long)cap.cand_bytes, (unsigned long long)cap.cand_bytes);
	print_summary();
	return 0;
}
