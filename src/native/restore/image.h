/*
 * Image reader for restore: opens a ckimg image (docs/FORMAT.md), validates header, trailer
 * and index, and loads every metadata record restore needs into plain structs. Page data is
 * not read here: PAGES records are described (area, span, bitmap, where DATA lies) and read
 * later chunk by chunk with img_read_chunk().
 *
 * Images are hostile input: every length, count and offset is checked against the file size
 * and the spec's limits before it is used or allocated. Errors return -EBADMSG (bad content),
 * -ENOTSUP (unsupported version/record) or -errno (I/O), and leave a one-line explanation in
 * img->err naming the record ("THREAD #3 at offset 1234: ...").
 */
#ifndef RST_IMAGE_H
#define RST_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "ckimg_format.h"

struct img_chain;

struct img_str {
	char *s;            /* NUL-terminated copy (the image string has no NUL) */
	uint32_t len;
};

struct img_process {
	struct ckimg_process_fixed f;
	struct img_str comm, exe, cwd, root, kernel;
};

struct img_thread {
	struct ckimg_thread_fixed f;
	uint64_t regs[27];          /* struct user_regs_struct order (FORMAT.md 4.6) */
	uint8_t *xstate;
	uint32_t xstate_size;
	uint32_t seq;               /* record sequence, for messages */
};

struct img_area {
	struct ckimg_area_fixed f;
	struct img_str path, vmflags;
	uint32_t seq;
	int file_idx;               /* index into img.files, -1 if none */
	/* filled by restore */
	int has_pages;
	int premapped;              /* tree: 1 mapped and filled before the fork (the parent's),
				     * 2 inherited from the parent, its shared pages already right */
	int shared_fd;              /* tree: fd (in the child) of the one shared-memory object this
				     * SHMEM area maps with every other sharer (tree.c); 0: none */
};

struct img_file {
	struct ckimg_mapped_file_fixed f;
	struct img_str path, build_id;
	uint32_t seq;
};

struct img_fd {
	struct ckimg_fd_fixed f;
	struct img_str path, note;  /* note: 1.1, why it cannot come back (empty: it can) */
	uint32_t seq;
};

/* ---- format 1.1 files and terminals (image-files.c) ---- */
struct img_content {            /* FILE_CONTENT: a file whose bytes the image holds */
	struct ckimg_file_content_fixed f;
	struct img_str path;
	uint32_t seq;
	size_t first_run, nruns;    /* its runs: img.runs[first_run .. +nruns), by offset */
};

struct img_run {                /* FILE_DATA: described; DATA read by img_read_run() */
	struct ckimg_file_data_fixed f;
	int content_idx;
	uint64_t rec_offset, payload_offset, payload_length;
	uint32_t payload_crc, seq;
};

struct img_fd_file {            /* FD_FILE */
	struct ckimg_fd_file_fixed f;
	uint32_t seq;
	int content_idx;            /* -1: the file is on disk */
};

struct img_tty {                /* TTY */
	struct ckimg_tty_fixed f;
	struct img_str name;
	uint8_t *data;
	uint32_t seq;
};

/* A record of an fd kind (types 0x0041-0x0057; TTY 0x0058-0x005F is image-files.c's), kept whole for its kind to decode; the kind
 * checks it before the fork (restore_fds_check) so damage is refused with no process made. */
struct img_fdrec {
	uint16_t type;
	uint32_t seq, key32;
	uint64_t key64, off;
	uint8_t *p;
	uint64_t len;
};
#define IMG_FDREC_FIRST 0x0041
#define IMG_FDREC_LAST  0x0057      /* 0x0058-0x005F: TTY (image-files.c) */

struct img_chunk {
	uint32_t area_id;
	int area_idx;
	uint64_t first_page;
	uint32_t span_pages, stored_pages;
	uint8_t codec;
	uint32_t stored_size, raw_crc, payload_crc;
	uint64_t rec_offset;        /* file offset of the record header */
	uint64_t payload_offset;    /* file offset of the payload */
	uint64_t payload_length;
	uint64_t data_offset;       /* absolute file offset of DATA */
	uint8_t *bitmap;            /* ceil(span_pages / 8) bytes */
	uint32_t seq;
	/* incremental chains (chain.c): a chunk of an ancestor image, writing only `take` */
	const struct img *src;      /* NULL: this image */
	uint8_t *take;              /* NULL: every stored page */
	uint32_t take_pages;
};

/* Format 1.1 "state" records (state-image.c). */
struct img_thread_state {
	struct ckimg_thread_state_fixed f;
	uint32_t seq;
	int thread_idx;             /* index into img.threads */
};

struct img_filter {
	struct ckimg_seccomp_filter h;
	const uint64_t *insns;      /* into img_state.seccomp_payload */
};

struct img_state {
	int have_timers, have_pstate, have_seccomp;
	struct ckimg_timers_fixed timers;
	struct ckimg_posix_timer *ptimers;
	uint32_t nptimers, timers_seq;
	struct ckimg_process_state_fixed pstate;
	uint32_t *groups;
	uint32_t pstate_seq;
	uint8_t *seccomp_payload;
	struct img_filter *filters;
	uint32_t nfilters, seccomp_seq;
	struct img_thread_state *tstates;
	size_t ntstates, cap_tstates;
};

struct img {
	const char *path;
	int fd;
	uint64_t size;
	const uint8_t *map;         /* whole image, read-only, after img_map() (else pread) */
	struct ckimg_header hdr;
	uint32_t page_size;

	struct ckimg_index_entry *ents;
	uint64_t nents;

	int have_process;
	struct img_process proc;
	uint64_t (*auxv)[2];
	uint32_t nauxv;
	struct ckimg_rlimit_entry *rlimits;
	uint32_t nrlimits;
	struct ckimg_sigactions_fixed sigf;
	struct ckimg_sigaction_entry *sigs;
	uint32_t nsigs;

	struct img_thread *threads;
	size_t nthreads;
	struct img_area *areas;
	size_t nareas;
	struct img_file *files;
	size_t nfiles;
	struct img_fd *fds;
	size_t nfds;
	struct img_fdrec *fdrecs;
	size_t nfdrecs;
	struct img_chunk *chunks;
	size_t nchunks;
	struct img_state st;
	/* SIGQUEUE (signals.c): entries as in the payload, checked */
	struct ckimg_sigqueue_entry *sigq;
	uint32_t nsigq, sigq_seq;
	int have_sigq;

	/* format 1.1 files and terminals (image-files.c) */
	struct img_content *contents;
	size_t ncontents, cap_contents;
	struct img_run *runs;
	size_t nruns, cap_runs;
	struct img_fd_file *fd_files;
	size_t nfd_files, cap_fd_files;
	struct img_tty *ttys;
	size_t nttys, cap_ttys;
	/* format 1.2 process trees: only the records of process `owner` are loaded (0: a
	 * single-process image, or the tree's root) */
	uint32_t owner;
	uint32_t *owners;           /* per index entry */
	struct ckimg_tree_entry *tree;  /* the TREE entries, parents first; NULL: one process */
	uint32_t ntree, tree_root;

	struct img_chain *chain;    /* format 1.2 PARENT / PAGE_DIGESTS (chain.c) */

	char err[512];
};

/* Open and validate path; load all metadata. Returns 0 or -errno with img->err set. */
int img_open(struct img *img, const char *path);
/* The same for process `pid` of a tree image (its records only; the TREE in img->tree). */
int img_open_process(struct img *img, const char *path, uint32_t pid);
void img_close(struct img *img);

/* Map the whole image read-only: chunks are then checked and copied from the page cache
 * without an intermediate read. */
int img_map(struct img *img);

/*
 * Check chunk c (payload CRC, then raw CRC after decompression) and point *data_out at its
 * raw pages (stored_pages * page_size bytes). The payload comes from the mapping when there
 * is one, else is read into `buf` (c->payload_length bytes). Compressed chunks decompress
 * into `raw` (stored_pages * page_size bytes); codec NONE points into the payload. Thread-safe.
 * Returns 0 or -EBADMSG/-errno with a message in errbuf naming the record.
 */
int img_read_chunk(const struct img *img, const struct img_chunk *c, uint8_t *buf, uint8_t *raw,
		   const uint8_t **data_out, char *errbuf, size_t errlen);

/* Decompress one block; 0 when exactly dlen bytes came out, else -EBADMSG. (codec.c) */
int rst_decompress(uint8_t codec, const uint8_t *src, size_t slen, uint8_t *dst, size_t dlen);

/* image-files.c: FILE_CONTENT, FD_FILE, TTY payloads (CRC checked); FILE_DATA described from
 * its header; cross checks after every record is in. 0 or -EBADMSG/-errno with img->err set. */
int img_files_parse(struct img *img, uint16_t type, const uint8_t *pl, uint64_t plen, uint32_t seq,
		    uint64_t off);
int img_files_data_ref(struct img *img, uint64_t rec_off, const struct ckimg_record_header *rh);
int img_files_check(struct img *img);
void img_files_free(struct img *img);
/* Check (payload and raw CRC) and decompress run r into out (r->f.length bytes). Thread-safe. */
int img_read_run(const struct img *img, const struct img_run *r, uint8_t *out, char *errbuf, size_t errlen);
const struct img_fd_file *img_fd_file(const struct img *img, uint32_t fd);
const struct img_tty *img_tty(const struct img *img, uint32_t fd);
/* The content a MAPPED_FILE's (dev, inode) names, or -1. */
int img_content_for_file(const struct img *img, const struct img_file *f);

/* chain.c: PARENT and PAGE_DIGESTS payloads (CRC checked) while loading; after img_open,
 * img_chain_open() opens the parents and appends the chunks the image inherits. */
int img_chain_record(struct img *img, uint16_t type, const uint8_t *pl, uint64_t len, uint32_t seq, uint64_t off);
int img_chain_open(struct img *img);
int img_chain_check_tree(struct img *img);   /* a tree: every process's chain, before anything */
void img_chain_free(struct img *img);

const char *img_type_name(uint16_t type);
/* The payload of the record index entry e points to, read and CRC-checked (malloc'ed into
 * *out; the caller bounds e->payload_length first): 0, -EBADMSG (damaged), -ENOMEM. */
int img_read_payload(const struct img *img, const struct ckimg_index_entry *e, uint8_t **out);
/* The kind record of `type` keyed by fd `key32` (the first fd of its description), or NULL. */
const struct img_fdrec *img_fdrec_by_fd(const struct img *img, uint16_t type, uint32_t key32);
/* ... or by object id (key64). */
const struct img_fdrec *img_fdrec_by_id(const struct img *img, uint16_t type, uint64_t key64);

/* state-image.c: parse one TIMERS / PROCESS_STATE / SECCOMP / THREAD_STATE payload (owned by
 * the caller, copied as needed), and the cross-record checks once all records are read. */
int img_parse_state(struct img *img, uint16_t type, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off);
int img_check_state(struct img *img);
/* signals.c: SIGQUEUE parsed (hostile input) and its tids checked against the THREADs */
int img_parse_sigqueue(struct img *img, const uint8_t *pl, uint64_t plen, uint32_t seq, uint64_t off);
int img_check_sigqueue(struct img *img);
/* R8 index keys, C4 thread_count, G6 chunk sizes (verify.c) */
int img_check_rules(struct img *img);
void img_free_state(struct img *img);
int img_area_by_id(const struct img *img, uint32_t area_id);

#endif /* RST_IMAGE_H */
