/*
 * ckimg-capture internals: what the freeze collects, the image writer, the page pipeline.
 * Every function returns 0 or -errno and on failure leaves its outputs safe to free; the
 * failing step records a human-readable reason with cap_fail() (first reason wins).
 */
#ifndef CK_CAPTURE_H
#define CK_CAPTURE_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/user.h>

#include "ckimg_format.h"
#include "ptrace_util.h"

#define PAGE_SIZE_4K 4096u
#define CHUNK_BYTES  (CKIMG_SPAN_GRID_PAGES * PAGE_SIZE_4K)

extern volatile sig_atomic_t cap_abort;   /* set by SIGINT/SIGTERM/SIGHUP */
int cap_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *cap_fail_reason(void);
uint64_t now_ns(int clock);
int proc_status_value(const char *status, const char *name, int base, unsigned long long *v);
unsigned long long proc_seccomp_mode(pid_t pid);    /* /proc/PID/status "Seccomp", 0 when unknown */
int proc_start_time(pid_t pid, uint64_t *out);      /* /proc/PID/stat field 22, clock ticks */
/* ckimg's own thread real-time (SCHED_FIFO 1) while on, when allowed and not
 * CKIMG_COW_NO_BOOST: work that keeps the target stopped does not wait for a CPU. */
void cap_boost_self(int on);
/* A buffer of fresh memory in transparent huge pages where possible (util.c: why). */
void *cap_alloc_buf(size_t len);
void cap_free_buf(void *p, size_t len);

/* Growable byte buffer for record payloads. */
struct buf {
	uint8_t *p;
	size_t len, cap;
};
int buf_put(struct buf *b, const void *data, size_t len);
int buf_put_str(struct buf *b, const void *s, size_t len);   /* u32 length + bytes */
int buf_put_cstr(struct buf *b, const char *s);
void buf_free(struct buf *b);

/* Whole small /proc file (NUL-terminated); *len excludes the NUL. */
int read_file(const char *path, char **out, size_t *len);
int read_link(const char *path, char **out);

struct thread_info {
	pid_t tid;
	uint32_t flags, state;
	uint64_t sigmask, pending, clear_child_tid, robust_list, robust_len;
	uint64_t ss_sp, ss_size;
	uint32_t ss_flags;
	struct user_regs_struct regs;
	uint8_t *xstate;
	uint32_t xstate_size;
};

struct area {
	uint32_t id;
	uint64_t start, end, file_offset, inode;
	uint32_t dev_major, dev_minor, prot, flags, kind, file_id;
	char *path, *vmflags;
	int shared;
	int any_rss;                   /* smaps Rss or Swap > 0 */
	int has_content;               /* maps a file the image stores (files-content.c) */
	uint64_t (*unreadable)[2];     /* [start, end) runs of pages that failed to read (pages.c) */
	size_t nunreadable;
	int tracked;                   /* track.c: only the written pages are read, the rest inherited */
	uint64_t (*written)[2];        /* track.c: [start, end) runs written since the last capture */
	size_t nwritten;
};

struct mapped_file {
	uint32_t id;
	uint32_t dev_major, dev_minor, mode, flags;
	uint64_t inode, size, mtime_ns, ctime_ns;
	uint8_t sha256[32];
	char *path;
	uint64_t map_start, map_end;   /* one area mapping it, for /proc/PID/map_files */
	uint8_t build_id[64];
	uint32_t build_id_len;
	int has_content;               /* a deleted file or memfd the image stores (files-content.c) */
};

/* A file whose bytes go into the image: an unlinked file or a memfd (FILE_CONTENT). */
struct file_content {
	uint32_t id, flags;
	dev_t dev;
	ino_t inode;
	int memfd;
	char *path;                    /* former path, or the memfd name */
	char src[96];                  /* /proc/PID/fd/N or /proc/PID/map_files/S-E to read it */
};

struct chunk {
	uint32_t area;                 /* index into areas[] */
	uint64_t first_page;
	uint32_t span_pages;
	uint32_t cand_pages;           /* pages read into the slot, packed in address order */
	uint64_t bits[CKIMG_SPAN_GRID_PAGES / 64];
	int zero_filter;               /* anonymous memory: drop all-zero pages */
	uint64_t carry[CKIMG_SPAN_GRID_PAGES / 64];   /* not read: held as the parent holds them (track.c) */
};

struct capture {
	pid_t pid;
	const char *out_path;
	int codec, kill_after, progress_stdout, progress_tty, use_hash_cache, direct_io;
	uint64_t buffer_bytes;         /* page buffer (ring) size; 0: as large as the memory */
	struct pt_process pt;
	int frozen;
	uint64_t syscall_ip;

	/* PROCESS */
	struct ckimg_process_fixed proc;
	char *comm, *exe, *cwd, *root, *kernel;
	struct buf argv, environ, auxv, rlimits, sigactions;
	uint32_t argc, envc, auxc, nrlimits, nsigactions, nfds;
	struct cap_fdtab *fdt;          /* open fds (fds.c) */

	struct thread_info *threads;
	size_t nthreads;
	pid_t *pre_tid;                /* thread states seen just before the freeze */
	char *pre_state;
	size_t npre;
	struct area *areas;
	size_t nareas;
	struct mapped_file *files;
	size_t nfiles;
	struct chunk *chunks;
	size_t nchunks;
	uint64_t cand_bytes;           /* bytes the page reader will read */

	/* format 1.1 state (state.c): finished payloads, written by put_state_records() */
	struct buf timers, pstate, seccomp;
	struct buf tstates;            /* THREAD_STATE payloads back to back, each after a u64 length */
	struct buf sigqueue;           /* SIGQUEUE payload (signals.c) */
	uint32_t ntimers, nfilters;
	/* files and terminals (files-content.c, tty.c) */
	struct file_content *contents;
	size_t ncontents;
	uint64_t content_bytes;

	/* results */
	uint64_t freeze_ns, total_ns, image_bytes, stored_pages, stored_bytes;

	/* incremental images (incremental.c) and copy-on-write capture (cow.c) */
	const char *parent_path;       /* --parent: store only what differs from this image */
	struct parent_image *parent;
	uint32_t parent_tree_root;     /* the parent image's TREE root pid (0: a single process) */
	struct digest_cell *dcells;    /* per chunk: pages the image holds and their digests */
	uint32_t *dig_arena;           /* the digests' memory (incremental.c) */
	size_t dig_arena_len;
	uint64_t held_pages, inherited_pages;
	int no_cow;                    /* --no-cow: stop-and-copy */
	int defer_sigactions;          /* copy-on-write: handlers read in the twin, after release */
	int vmflags_known;             /* areas have their smaps VmFlags/Rss (else: maps only) */
	int cow_blocked;               /* a tree process whose twin could be re-parented into the tree */
	int subreaper_seen;            /* PR_GET_CHILD_SUBREAPER as cow.c saw it: 0 unknown, 1 no, 2 yes */
	uint64_t shared_pending;       /* ShdPnd at the freeze */
	struct cow_twin *twin;
	uint64_t cow_written_pages;    /* pages the target wrote while its memory was copied */
	pid_t cow_twin_pid;            /* the twin the pages were read from (0: stop-and-copy) */
	/* format 1.2: the tree this process belongs to (tree.h), NULL for a single process */
	struct cap_tree *tree;
	int no_children;               /* --no-children */
	struct buf shared_runs;        /* SHARED_PAGES runs, 16 bytes each (tree.c) */
	uint32_t nshared_runs;
	uint64_t shared_pages;
	/* dirty-page tracking between captures (track.c) */
	int track_wanted;              /* --track: start it when there is none */
	int track_off;                 /* --no-track: leave the keeper alone (compare) */
	struct track *track;
	uint8_t **preread;             /* per chunk: its pages read while frozen (track.c), or NULL */
	uint64_t (*preread_bad)[CKIMG_SPAN_GRID_PAGES / 64];
	uint8_t *preread_pool;         /* faulted in before the freeze, sized by a first scan */
	size_t preread_pool_len, preread_pool_used;
};

/* proc.c: process-wide state from /proc and prlimit (freeze phase). */
int collect_process(struct capture *c);
/* threads.c: per-thread state and remote syscalls (freeze phase). */
int collect_prefreeze_states(struct capture *c);
int collect_threads(struct capture *c);
int collect_sigactions_and_tls(struct capture *c);
int collect_sigactions_in(struct capture *c, pid_t pid, pid_t tid, uint64_t scr);
/* mm.c: areas from maps (+ smaps), page candidates from pagemap, chunk plan (freeze phase). */
int collect_areas(struct capture *c);                     /* maps + the target's smaps */
int collect_areas_maps(struct capture *c);                /* maps only: flags unknown */
int areas_apply_smaps(struct capture *c, pid_t pid, int only_unknown);
void areas_smaps_begin(struct capture *c);   /* VmFlags read by a thread (tracked: mm.c) */
void areas_smaps_end(struct capture *c);     /* ... joined and applied */
int plan_chunks(struct capture *c);
int plan_chunks_part(struct capture *c, pid_t pagemap_pid, int part);   /* cow.c */
/* fds.c: open fds, one handler per kind (fds.h, fd-table.c). */
struct image;
int collect_fds(struct capture *c);                       /* freeze phase */
int fds_write(struct capture *c, struct image *im);       /* FD + kind records */
/* sysv.c: SysV IPC objects the process (a tree: the tree, written by its root) uses */
int sysv_put_records(struct capture *c, struct image *im);
void fds_release(struct capture *c, int killed);          /* the target is let go */
void fds_free(struct capture *c);
/* state.c: timers, rseq, sched, creds, seccomp, prctl state (freeze phase, after threads;
 * may fix a thread's rip out of an rseq critical section). */
int collect_state(struct capture *c);
int put_state_records(struct capture *c, struct image *im);
/* signals.c: pending signals with their siginfo (SIGQUEUE), read with PTRACE_PEEKSIGINFO */
int collect_sigqueue(struct capture *c);
int put_sigqueue(struct capture *c, struct image *im);
/* Something the image cannot bring back: one "ckimg-capture: warning: ..." line on stderr. */
void cap_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* files.c: identity of mapped files (after the freeze). */
int collect_mapped_files(struct capture *c);
int hash_mapped_files(struct capture *c);

/* files-content.c: contents of mapped deleted files/memfds (after fds and areas), then every
 * FILE_CONTENT with its FILE_DATA (still frozen). The fd kinds themselves are in fd-table.c. */
int collect_file_contents(struct capture *c);
struct image;
int put_file_contents(struct capture *c, struct image *im);

/* image.c: the atomic, streaming image file. */
struct image {
	int fd, dirfd, tmpfile;        /* tmpfile: O_TMPFILE (no name until finish) */
	char *final_path, *tmp_path, *dir_path;
	uint64_t off;                  /* next record offset */
	uint32_t seq;
	struct ckimg_index_entry *index;
	size_t nindex, index_cap;
	pthread_mutex_t lock;
	uint64_t synced_to;            /* writeback started up to here (sync_file_range) */
	uint64_t prealloc;             /* bytes fallocated ahead (truncated at finish) */
	/* format 1.2 trees: records written now belong to `owner` (0: single process); the
	 * index then has 48-byte entries carrying each record's owner */
	int tree;
	uint32_t owner;
	uint32_t *owners;              /* per index entry */
	uint8_t image_id[16];          /* the header's */
	uint8_t *stage;                /* image_stage: records gathered here, written at once */
	size_t stage_len, stage_cap;
	uint64_t stage_off;
};
int image_open(struct image *im, const char *path);
/* Reserve space for the next record (thread-safe, in call order); fills the index entry. */
int image_reserve(struct image *im, uint16_t type, uint64_t payload_len, uint32_t key32,
		  uint64_t key64, uint32_t aux_a, uint32_t aux_b, uint64_t *off, uint32_t *seq);
/* The same at a chosen offset >= the current end (leaves a gap; used for in-place pages). */
int image_reserve_at(struct image *im, uint64_t at, uint16_t type, uint64_t payload_len,
		     uint32_t key32, uint64_t key64, uint32_t aux_a, uint32_t aux_b, uint32_t *seq);
/* Write a record header + payload pieces at a reserved offset. */
int image_write_at(struct image *im, uint64_t off, uint16_t type, uint32_t seq,
		   const struct iovec *iov, int iovcnt, uint64_t payload_len, uint32_t payload_crc);
int image_record(struct image *im, uint16_t type, const struct buf *payload, uint32_t key32,
		 uint64_t key64);
/* The same with record flags (MUST_UNDERSTAND) and the index's aux fields. */
int image_record_ex(struct image *im, uint16_t type, uint16_t flags, const struct buf *payload,
		    uint32_t key32, uint64_t key64, uint32_t aux_a, uint32_t aux_b);
int image_finish(struct image *im);   /* index, trailer, fsync, link/rename */
void image_abort(struct image *im);   /* remove every trace of the temp file */
void image_writeback(struct image *im, uint64_t upto); /* start writeback of written data */
/* Many small records in a row (one thread): image_stage(im, 1) gathers the next ones in memory,
 * image_stage(im, 0) writes what is gathered (one pwrite per few MiB) and stops gathering. */
int image_stage(struct image *im, int on);

/* incremental.c: the parent image (--parent) and the page digests every image carries. */
int incr_load_parent(struct capture *c);                  /* before the freeze */
/* A tree's descendant, before it is frozen: the same process (pid, start time) of root's parent
 * image is its parent; none (stored whole) when the parent image does not hold it. */
int incr_load_parent_of_child(const struct capture *root, struct capture *c);
int incr_check_process(struct capture *c);                /* after collect_process */
int incr_parent_holds(const struct capture *c, uint64_t addr);
int incr_parent_holds_range(const struct capture *c, uint64_t start, uint64_t end);
int incr_alloc_cells(struct capture *c);                  /* after plan_chunks */
/* Decide which read pages chunk i stores (packed to the front of slot; bits in final) and
 * which it holds (digests); returns the number stored, *raw_crc their CRC. Thread-safe per i. */
uint32_t incr_filter_chunk(struct capture *c, size_t i, uint8_t *slot, const uint64_t *bad,
			   uint64_t *final, uint32_t *raw_crc);
int incr_put_parent(struct capture *c, struct image *im);
int incr_put_digests(struct capture *c, struct image *im);
void incr_free(struct capture *c);
const uint8_t *incr_parent_id(const struct capture *c);  /* the parent's image_id */
/* Pages the parent holds in [first, first + span pages): bits set in out (zeroed first). */
void incr_parent_held_bits(const struct capture *c, uint64_t first, uint32_t span, uint64_t *out);

/* track.c: dirty-page tracking with userfaultfd WP_ASYNC + PAGEMAP_SCAN (Linux >= 6.7).
 * track_open before the freeze (asks the keeper); track_freeze frozen, after the areas (scans,
 * registers, makes the handle under --track); track_commit once the image is published;
 * track_close on every path. */
int track_open(struct capture *c);
int track_direct(const struct capture *c);   /* the parent is the tracked baseline */
int track_freeze(struct capture *c);
int track_plan_cell(const struct capture *c, const struct area *a, size_t *run, struct chunk *ch);
int track_preread(struct capture *c);
void track_probe_subreaper(struct capture *c);   /* frozen, a tracked tree process */
void track_free_preread(struct capture *c);
void track_free_chunk(struct capture *c, size_t i);        /* frozen: the planned (written) pages, into memory */
void track_drop(struct capture *c, const char *why);
int track_commit(struct capture *c, const uint8_t id[16]);
void track_close(struct capture *c);
const char *track_state(const struct capture *c, pid_t *keeper, uint64_t *written);
const char *track_note(const struct capture *c);
int track_keeper_main(int argc, char **argv);

/* cow.c: copy-on-write capture. cow_begin (frozen, after the areas): a twin holding the
 * memory, or stop-and-copy (c->twin stays NULL) when one cannot be made; cow_read_chunk
 * (pages.c, after the release); cow_end: kill and reap the twin (every path). */
int cow_wanted(const struct capture *c);
int cow_begin(struct capture *c);
int cow_read_chunk(struct capture *c, size_t i, uint8_t *dst, uint64_t *bad);
/* pages.c: a chunk's candidate pages from a /proc/PID/mem fd, packed; unreadable ones in bad */
void pages_read_packed(int mem_fd, const struct chunk *ch, uint8_t *dst, uint64_t *bad);
/* pages.c: the next run [*p, *q) of candidate pages of ch from *p on; 0 when none is left */
int next_run(const struct chunk *ch, uint32_t *p, uint32_t *q);
/* util.c: k remote calls per thread (calls[k i ...] for thread i), all threads at once */
int cap_remote_per_thread(struct capture *c, struct pt_syscall *calls, size_t k, const char *what);
/* mm.c: a pagemap entry of a swapped-out page (not a pte marker: uffd-wp, guard) */
int pm_swapped_page(uint64_t e8);
/* mm.c: a page of a private mapping the process wrote (swapped, or present and not the file's) */
int pm_own_private_page(uint64_t e8);
/* mm.c: the same page frame as the parent process's at this address (still shared since fork) */
int shared_with_parent(uint64_t mine, uint64_t parents);
int cow_read_while_frozen(const struct capture *c, const struct area *a);
int cow_collect_areas(struct capture *c);     /* freeze: maps; smaps only when needed */
int cow_fallback_plan(struct capture *c);     /* no twin after all: flags, every chunk */
int cow_plan_rest(struct capture *c);         /* after the release: the twin's chunks */
int cow_collect_sigactions(struct capture *c); /* from the twin, else (frozen) the target */
void cow_end(struct capture *c);
pid_t cow_twin_of(const struct capture *c);   /* the twin's pid, 0: none */

/* pages.c: read memory (frozen) and compress/write it (pipeline). */
struct pipeline;
void pages_prealloc(struct capture *c, struct image *im);   /* before the freeze */
int pages_start(struct capture *c, struct image *im, struct pipeline **out);
int pages_read_all(struct pipeline *pl);     /* main thread, while frozen */
int pages_finish(struct pipeline *pl, void (*tick)(struct pipeline *)); /* join, free */
void pages_progress(struct pipeline *pl, uint64_t *done, uint64_t *total);
int pages_put_unreadable(struct capture *c, struct image *im); /* UNREADABLE_PAGES records */

#endif /* CK_CAPTURE_H */
