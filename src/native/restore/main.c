/*
 * ckimg-restore IMG [--detach] [--force] [--new-pid] [--lazy] [--no-verify] [--check]
 *               [--pid-fd N] [--msg-fd N] [-v]
 *
 * Rebuilds the process recorded in IMG and lets it run on (see restore.h for the steps).
 *   default      wait for the restored process (it is our child) and exit with its status
 *                (128 + signal when it was killed); SIGINT/SIGTERM/SIGHUP are forwarded.
 *   --detach     print the PID and exit 0 as soon as it runs.
 *   --check      only verify: structure, every chunk's CRCs, mapped files; no process.
 *   --lazy       map page-aligned uncompressed chunks straight from the image (copy-on-write)
 *   --thp        fill large private anonymous areas with transparent huge pages (faster
 *                first touch; the areas keep MADV_HUGEPAGE)
 *   --no-verify  do not read chunks that need no copying (--lazy) just to check their CRCs
 *   --strict     refuse when a file an fd had open changed since the capture (else: a warning)
 *   --deleted-dir DIR  re-create deleted files in DIR and keep them there (else: where they
 *                were, unlinked again)
 *   --inherit-stdio  fds 0-2 are taken over from ours, whatever they were (`ckimg run`: the job
 *                writes where the restarted run's output goes)
 *   --pid-fd N   write "PID\n" to fd N (instead of stdout) once the process runs.
 *   --hand-over  (with --detach) let the process go stopped (SIGSTOP) with every signal blocked,
 *                for a tracer to take over: after the PID, one line "mask PID TID HEX" per thread
 *                (its recorded signal mask), "stopped PID" for a process recorded stopped, then
 *                "end". The tracer sets the masks and continues it (ckimg-guard does): a signal
 *                sent during the restore or before the tracer has seized it stays pending.
 *   --msg-fd N   errors and warnings go to fd N instead of stderr (the restored process keeps
 *                our stderr).
 * Failure: exit 2 and one line on stderr, "ckimg: IMG: what", naming the record; the
 * half-built child is killed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fds.h"

static struct restore_args args;
static volatile sig_atomic_t fwd_pid;

static void forward(int sig)
{
	if (fwd_pid > 0)
		kill(fwd_pid, sig);
}

/* --check: everything restore verifies, without building a process: structure, every chunk's
 * CRCs and decompression, the mapped files' identity. */
static int check_image(struct restore_args *a)
{
	struct img *img = a->img;
	size_t maxp = 0, maxr = 0;
	uint64_t pages = 0;
	uint8_t *p, *r;
	char eb[512];
	int err;

	for (size_t i = 0; i < img->nchunks; i++) {
		if (img->chunks[i].payload_length > maxp)
			maxp = img->chunks[i].payload_length;
		if ((size_t)img->chunks[i].stored_pages * img->page_size > maxr)
			maxr = (size_t)img->chunks[i].stored_pages * img->page_size;
	}
	p = malloc(maxp + 1);
	r = malloc(maxr + 1);
	if (!p || !r)
		return 2;
	for (size_t i = 0; i < img->nchunks; i++) {
		const uint8_t *data;
		const struct img_chunk *c = &img->chunks[i];
		if (img_read_chunk(c->src ? c->src : img, c, p, r, &data, eb, sizeof(eb))) {
			rst_log_error("%s", eb);
			return 2;
		}
		pages += img->chunks[i].src ? img->chunks[i].take_pages : img->chunks[i].stored_pages;
	}
	for (size_t i = 0; i < img->nruns; i++) {
		uint8_t *buf = malloc(img->runs[i].f.length);
		err = buf ? img_read_run(img, &img->runs[i], buf, eb, sizeof(eb)) : -ENOMEM;
		free(buf);
		if (err) {
			rst_log_error("%s", eb);
			return 2;
		}
	}
	if ((err = restore_check_files(a)) || (err = restore_fds_check(a)) || (err = restore_check_fd_files(a))) {
		rst_log_error("%s", a->err);
		return 2;
	}
	restore_fd_files_report(a);
	printf("ok: pid %u, %zu threads, %zu areas, %zu files, %zu fds, %zu chunks, %llu pages\n",
	       img->proc.f.pid, img->nthreads, img->nareas, img->nfiles, img->nfds, img->nchunks,
	       (unsigned long long)pages);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: ckimg-restore IMG [--detach] [--force] [--new-pid] [--lazy] [--thp] [--no-verify] "
		"[--strict] [--deleted-dir DIR] [--pid-fd N] [--hand-over] [-v]\n");
	return 2;
}

static int wait_restored(pid_t pid)
{
	struct sigaction sa;
	int st;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	fwd_pid = pid;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	for (;;) {
		/* __WALL and any child: a thread that exits while its PTRACE_DETACH races its process's
		 * exit stays traced by us as a zombie, and its leader is not reported until we reap it */
		pid_t w = waitpid(-1, &st, __WALL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return 2;
		}
		if (WIFSTOPPED(st)) {  /* such a thread in a stop: let it go, with its signal */
			ptrace(PTRACE_DETACH, w, 0, WSTOPSIG(st));
			continue;
		}
		if (w != pid)
			continue;
		if (WIFEXITED(st))
			return WEXITSTATUS(st);
		if (WIFSIGNALED(st))
			return 128 + WTERMSIG(st);
	}
}

int main(int argc, char **argv)
{
	struct restore_args *a = &args;
	struct img img;
	int err, pid_fd = -1, check_only = 0, msg_fd = -1;

	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--detach"))
			a->detach = 1;
		else if (!strcmp(argv[i], "--force"))
			a->force = 1;
		else if (!strcmp(argv[i], "--new-pid"))
			a->new_pid = 1;
		else if (!strcmp(argv[i], "--lazy"))
			a->lazy = 1;
		else if (!strcmp(argv[i], "--thp"))
			a->thp = 1;
		else if (!strcmp(argv[i], "--no-verify"))
			a->no_verify = 1;
		else if (!strcmp(argv[i], "--strict"))
			a->strict = 1;
		else if (!strcmp(argv[i], "--deleted-dir") && i + 1 < argc)
			a->deleted_dir = argv[++i];
		else if (!strcmp(argv[i], "--inherit-stdio"))
			a->inherit_stdio = 1;
		else if (!strcmp(argv[i], "--check"))
			check_only = 1;
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			a->verbose = 1;
		else if (!strcmp(argv[i], "--msg-fd") && i + 1 < argc)
			msg_fd = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--hand-over"))
			a->hand_over = 1;
		else if (!strcmp(argv[i], "--pid-fd") && i + 1 < argc)
			pid_fd = atoi(argv[++i]);
		else if (argv[i][0] == '-' || a->image_path)
			return usage();
		else
			a->image_path = argv[i];
	}
	if (!a->image_path || (a->hand_over && !a->detach))
		return usage();
	rst_log_open(a->image_path, msg_fd);
	a->t0 = rst_now_ns();
	a->img = &img;

	err = img_open(&img, a->image_path);
	if (!err)
		err = img_chain_open(&img);     /* an incremental image: its parents' pages too */
	if (!err)
		err = img_chain_check_tree(&img);
	if (err) {
		rst_log_error("%s", img.err);
		return 2;
	}
	rst_trace(a, "image read");
	if (check_only)
		return img.tree ? restore_tree_check(a, check_image) : check_image(a);
	/* format 1.2 trees: the root and its descendants (tree.c) */
	if (img.tree || restore_tree_of_one(a) ? (err = restore_tree(a)) != 0 : (err = restore_check_files(a)) || (err = restore_fds_check(a)) || (err = restore_state_check(a)) ||
	    (err = restore_check_fd_files(a)) || (err = restore_tty_prepare(a)) || (err = restore_sysv_make(a)) ||
	    (err = restore_fork(a)) ||
	    (err = restore_mm(a)) || (err = restore_threads(a)) || (err = restore_mm_wait(a)) ||
	    (err = restore_state_early(a)) || (err = restore_creds(a)) || (err = restore_fd_files_report(a)) ||
	    (err = restore_tty_parent(a)) || (err = restore_state(a)) || (err = restore_finish(a))) {
		restore_abort(a);
		restore_sysv_abort();
		restore_tty_done(a);
		restore_contents_abort(a);
		rst_log_error("%s", a->err[0] ? a->err : strerror(-err));
		return 2;
	}
	restore_sysv_finish();
	rst_trace(a, "running");
	restore_tty_running(a);
	if (pid_fd >= 0) {
		dprintf(pid_fd, "%d\n%s%s", a->pid, restore_hand_over_text(), a->hand_over ? "end\n" : "");
		close(pid_fd);
	} else if (a->detach) {
		printf("%d\n%s%s", a->pid, restore_hand_over_text(), a->hand_over ? "end\n" : "");
	}
	rst_log_close();
	if (a->detach)
		return 0;
	img_close(&img);
	err = wait_restored(a->pid);
	restore_tty_done(a);
	return err;
}
