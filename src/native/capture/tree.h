/*
 * Process trees, capture side (FORMAT.md "Process trees"): the root and every descendant are
 * frozen (re-scanning children until no new process appears), each is captured with the
 * single-process steps into the same image under its own owner pid, and all are released
 * together. The tree also answers the per-fd code's questions about other processes: does
 * another process of the tree hold this pipe or socket (then its other end is not outside),
 * did an earlier one already store its bytes, and which tree-wide open-file-description id
 * an fd has (kcmp across processes).
 */
#ifndef CK_TREE_H
#define CK_TREE_H

#include "capture.h"

struct tree_fd {                /* one fd of one live process, seen right after the freeze */
	size_t proc;                /* index into tree.procs */
	int fd, acc;                /* number, O_ACCMODE */
	dev_t dev;
	ino_t ino;
	uint32_t file_id;           /* tree-wide description id once assigned, else 0 */
};

struct tree_proc {
	struct ckimg_tree_entry e;
	struct capture *c;          /* NULL for a zombie */
	pid_t twin;                 /* its copy-on-write twin (cow.c), 0: none */
	int preread;                /* tracked: its written pages copied while frozen (track.c) */
	int subreaper;              /* a child subreaper: 1, or not known (-1); 0: not one */
};

struct tree_shm_range {         /* object offsets [start, end) of a shared-memory object whose
				 * pages an earlier area (process) of the tree stores */
	uint32_t dev_major, dev_minor;
	uint64_t inode, start, end;
};

struct cap_tree {
	struct tree_proc *procs;    /* parents before children; procs[0] is the root */
	size_t n, cap;
	struct tree_fd *fds;
	size_t nfds;
	uint32_t next_file_id;
	struct tree_shm_range *shm;
	size_t nshm, shm_cap;
	int released;               /* tree_release ran: the processes run on */
};

/* Freeze root and its descendants. root->pt holds the root afterwards; on failure nothing is
 * left seized. *out is the tree (free with tree_free). */
int tree_freeze(struct capture *root, struct cap_tree **out);
/* Every process seized by tree_freeze let go (killed first when kill_all). Idempotent. */
void tree_release(struct cap_tree *t, int kill_all);
void tree_free(struct cap_tree *t);
/* The TREE record. */
int tree_put_record(struct cap_tree *t, struct image *im);

/* Questions from the fd kinds (c->tree set): */
uint32_t tree_file_id(struct capture *c, int fd);
/* Another process of the tree holds (dev, ino) with access mode `acc` (-1: any). */
int tree_other_holds(const struct capture *c, dev_t dev, ino_t ino, int acc);
/* An earlier process of the tree holds (dev, ino): its record carries the object's bytes. */
int tree_earlier_holds(const struct capture *c, dev_t dev, ino_t ino);

/* Copy-on-write pages shared with the parent (SHARED_PAGES): the parent's pagemap (-1: none,
 * or the root), one shared page of area `area_id` noted, and the record of them all. */
int tree_parent_pagemap(const struct capture *c);
/* Copy-on-write for process i of the tree: not when an ancestor in the tree is (or may be) a
 * child subreaper (a twin would be re-parented to it, and it could wait for it). */
int tree_cow_allowed(const struct cap_tree *t, size_t i);
int tree_shared_page(struct capture *c, uint32_t area_id, uint64_t addr);
int tree_put_shared_pages(struct capture *c, struct image *im);

/* Shared memory (AREA kind SHMEM, SHARED) seen by several processes is stored once: the page at
 * object offset `off` of area a's object is already stored by an earlier area of the tree, and
 * area a's range noted as stored (after it is planned). No-ops without a tree. */
int tree_shmem_stored(const struct capture *c, const struct area *a, uint64_t off);
int tree_shmem_note(struct capture *c, const struct area *a);

#endif /* CK_TREE_H */
