/*
 * ckimg-restore: rebuild a process from an image so that it carries on.
 *
 * Shape (after CRIU's restorer, done from the outside with ptrace): main.c validates the
 * image and the files it maps, then a list of small restore_* steps runs, each fed the one
 * struct restore_args and returning 0 or -errno with a message in args->err naming the record
 * that failed. There is one failure path: the half-built child is killed and reaped.
 *
 *   restore_fork         clone3 with set_tid = recorded PID; the child (still our code) sets
 *                        up what it can by itself: fds, cwd, umask, personality, sigactions,
 *                        opens the image and the mapped files on high fds, maps a 2-page
 *                        trampoline ("syscall; int3" + scratch) and stops (PTRACE_TRACEME).
 *   restore_mm           remote syscalls: unmap our own binary, move vdso/vvar to their
 *                        recorded addresses, map every AREA, fill pages (workers), protect,
 *                        PR_SET_MM_MAP (brk, arg/env, auxv, exe).
 *   restore_threads      remote clone3 (set_tid) per recorded thread, per-thread state.
 *   restore_finish       registers + xstate + sigmask per thread, syscall restart, rlimits,
 *                        drop the trampoline, detach, re-raise pending signals.
 *
 * Pages: eager by default (page workers, one per CPU: CRCs, decompression, process_vm_writev
 * from a read-only mapping of the image); --lazy maps codec-NONE page-aligned chunks straight
 * from the image (MAP_PRIVATE, copy-on-write: those ranges show the image as their backing
 * file in /proc/PID/maps); --thp gives large private anonymous areas MADV_HUGEPAGE first.
 * Checksums are always verified before the process may run (--no-verify skips only the
 * chunks --lazy maps without copying).
 *
 * Format 1.1 state (state.c): interval and POSIX timers (same ids, clocks, targets; armed
 * last, relative to the restore), rseq per thread, seccomp (strict, filters), no_new_privs,
 * capabilities, securebits, supplementary groups, scheduler, oom_score_adj, timer slack,
 * pdeathsig, child subreaper, THP-disable, dumpable.
 *
 * Not restored (no record for it, or the kernel offers no way):
 *   - a POSIX timer's overrun count; absolute (TIMER_ABSTIME) deadlines become relative;
 *   - namespaces, cgroups; inotify watches;
 *   - the other end of a pipe or socket held by another process: fds 0-2 of that kind are
 *     taken over from the restorer's own stdio; others come back detached (a reading end gets
 *     the buffered bytes then end of file, a writing end /dev/null, a unix socket whose peer
 *     was named reconnects by name) with a warning; pipes, FIFOs, unix and TCP/UDP sockets
 *     inside the process come back with their state (fds.c and one file per kind);
 *   - TCP traffic from a peer between the kill and the restore meets no socket and resets
 *     the connection (nothing holds the connection in between, unlike CRIU's network lock);
 *   - SysV/shared anonymous memory is restored as private-to-this-mapping shared memory
 *     (in a tree image it is one object again for every process that maps it: tree.c);
 *   - restart_block: a syscall interrupted with -ERESTART_RESTARTBLOCK (relative sleeps)
 *     is run again from the start with its original arguments.
 */
#ifndef RST_RESTORE_H
#define RST_RESTORE_H

#include <stdint.h>
#include <sys/types.h>
#include "image.h"

struct rst_obj;

#define RST_TRAMP_SIZE   (2 * 4096)       /* page 0: code (RX), page 1: scratch (RW) */

struct rst_thread {
	pid_t tid;          /* live tid in the child (== recorded unless --new-pid) */
	int img_idx;        /* index into img.threads */
	int stopped;        /* we hold it in a ptrace stop */
	uint64_t sigmask;   /* the recorded mask (--hand-over: the next tracer sets it) */
	uint64_t base_regs[27]; /* template registers for remote syscalls */
};

struct restore_args {
	struct img *img;
	const char *image_path;
	int detach, force, new_pid, lazy, verbose, no_verify, thp;
	int hand_over;              /* --hand-over: let go stopped, every signal blocked (task.c) */
	int seccomp_suspended;      /* PTRACE_O_SUSPEND_SECCOMP is set on the child */

	/* the child */
	pid_t pid;
	uint64_t tramp;             /* trampoline address in the child */
	uint64_t park;              /* free range where vdso/vvar wait while they move */
	int *file_ok;               /* per img.files: identity verified, map it by path */
	struct rst_fill *fill;      /* page-fill workers (mm.c) */
	uint32_t kuid[4], kgid[4];  /* creds to set (recorded) */
	int img_fd_child;           /* image fd number inside the child */
	int *file_fd_child;         /* per img.files: fd number inside the child, -1 none */
	int exe_fd_child;
	int hi_fd;                  /* first "aux" fd number in the child */
	struct rst_thread *threads;
	size_t nthreads;
	char *child_err;            /* MAP_SHARED page: the child's error message */

	/* files and terminals (files-content.c, tty.c) */
	int strict;                 /* --strict: a file changed since the capture is refused */
	const char *deleted_dir;    /* --deleted-dir: deleted files are re-created here, kept */
	int inherit_stdio;          /* --inherit-stdio: fds 0-2 are ours, never reopened (ckimg run) */
	char **content_paths;
	int contents_made;          /* the child got as far as creating them */
	int *content_tree_fd;       /* tree: per FILE_CONTENT, the file made once for every process
				     * holding it (tree.c), 0: made by this process */
	char **fd_warnings;         /* changed files, said once the process is built */
	size_t nfd_warnings;       /* per img.contents: the --deleted-dir name, NULL otherwise */
	int content_fd_base;        /* img.contents[i] is held on content_fd_base + i in the child */
	int shell_job;              /* the process gets our terminal */
	int tty_fd;                 /* our terminal (0-2), -1 */
	char tty_path[128];
	int tty_saved, tty_fg_set;
	uint8_t saved_termios[64];  /* struct termios2 of our terminal as we found it */

	/* timings (ns since start) for --verbose */
	uint64_t t0;

	/* format 1.2 process trees (tree.c) */
	int hold;                   /* restore_finish stops short of letting it run */
	int tree_fd_base;           /* fds from here on belong to the tree, not to the process */
	const struct ckimg_tree_entry *tree_entry;
	struct rst_obj *tree_objs;  /* objects made once for the whole tree (pipes between processes) */
	size_t ntree_objs;
	struct rst_shared_run { uint64_t start; uint32_t pages, area_id; } *shared;  /* SHARED_PAGES */
	size_t nshared;
	uint32_t *inh_id;           /* descriptions inherited from the parent: tree file_id ... */
	int *inh_fd;                /* ... and where the copy waits */
	size_t ninh;
	int fds_shared;             /* one fd table with its parent (CLONE_FILES): the parent set it up */
	int aux_close_end;          /* mm.c closes aux fds [hi_fd, aux_close_end); 0: hi_fd and up */

	char err[768];
};

/* log.c: the one error line, warnings (stderr or --msg-fd), the -v trace */
void rst_log_open(const char *image_path, int msg_fd);
void rst_log_close(void);
void rst_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rst_err(struct restore_args *a, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void rst_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t rst_now_ns(void);
void rst_trace(struct restore_args *a, const char *what);

/* remote.c */
long rst_rsys(struct restore_args *a, struct rst_thread *t, long nr, uint64_t a1, uint64_t a2,
	      uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6);
int rst_thread_attach_regs(struct rst_thread *t);
int rst_write(struct restore_args *a, uint64_t addr, const void *buf, size_t len);
int rst_read_i32(struct restore_args *a, uint64_t addr, int32_t *out);
pid_t rst_last_clone_tid(void);

/* files-content.c, tty.c */
int restore_check_fd_files(struct restore_args *a);
int restore_fd_files_report(struct restore_args *a);
void restore_contents_abort(struct restore_args *a);
int restore_contents_child(struct restore_args *a, char *err, size_t errlen);
/* FILE_CONTENT ci of a, made and filled here (a tree makes a shared one in ckimg-restore): its fd */
int restore_content_make(struct restore_args *a, size_t ci, char *err, size_t errlen);
int restore_tty_prepare(struct restore_args *a);
int restore_tty_parent(struct restore_args *a);
void restore_tty_running(struct restore_args *a);
void restore_tty_done(struct restore_args *a);

/* steps */
int restore_check_files(struct restore_args *a);
int restore_fork(struct restore_args *a);
void rst_pid_holder(pid_t pid, char *out, size_t n);
int restore_mm(struct restore_args *a);
int restore_threads(struct restore_args *a);
int restore_mm_wait(struct restore_args *a);
int restore_creds(struct restore_args *a);
/* state.c (format 1.1 state records): refusals before anything is built; seccomp + groups
 * before the credentials change; the rest (caps, rseq, prctl, sched, timers) after it. */
int restore_state_check(struct restore_args *a);
int restore_state_early(struct restore_args *a);
int restore_state(struct restore_args *a);
int rst_keepcaps(struct restore_args *a);
uint32_t rst_main_pdeathsig(const struct restore_args *a);
int restore_finish(struct restore_args *a);
/* signals.c: SIGQUEUE entries queued again from inside the process; was (tid, sig) among them */
int restore_sigqueue(struct restore_args *a);
int rst_sigqueue_has(const struct img *img, uint32_t tid, int sig);
void restore_release(struct restore_args *a);
const char *restore_hand_over_text(void);
/* fork.c pieces a tree restore (tree.c) drives itself */
int restore_fork_prepare(struct restore_args *a);
void restore_child_setup(struct restore_args *a);
void restore_child_fail(struct restore_args *a, const char *what, int err) __attribute__((noreturn));
int restore_fork_adopt(struct restore_args *a);
/* sysv.c: SysV IPC objects with their ids, before any process is made; the areas that attach
 * a segment made so; removed segments removed again once all attached; abort: all removed */
int restore_sysv_make(struct restore_args *a);
int restore_sysv_is_segment(const struct img_area *ar);
void restore_sysv_finish(void);
void restore_sysv_abort(void);
/* tree.c: a tree image, every process; returns the exit code of ckimg-restore */
int restore_tree(struct restore_args *root);
/* A single-process image whose session or group leader had exited (a daemon) is restored as a
 * tree of one, whose placeholder leaders make them again: 1 if a->img now holds that tree. */
int restore_tree_of_one(struct restore_args *a);
int restore_tree_check(struct restore_args *root, int (*check_one)(struct restore_args *));
/* tree.c, for mm.c: an inherited area's pages that are neither stored nor shared become zero */
int rst_tree_zero_unshared(struct restore_args *a, const struct img_area *ar);
void restore_abort(struct restore_args *a);

#endif /* RST_RESTORE_H */
