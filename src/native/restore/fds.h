/*
 * Open file descriptors, restore side.
 *
 * The generic code (fds.c) runs in the new child before its memory is replaced: it groups the
 * recorded fds into open file descriptions, asks the handler of each description's kind to
 * open it (on a scratch number above every recorded fd), then moves it to every number that
 * shared it with the recorded FD_CLOEXEC and status flags, and finally lets each kind finish
 * (post_open: queued data, connections, locks). Kinds live in their own files (files-reg.c,
 * pipes.c, …) and are listed in fd-table.c; adding a kind is adding a file and a table row.
 *
 * Kernel objects that several descriptions share (a pipe's two ends, a socket pair) are
 * made once: the first description of the object creates it and keeps the other ends in an
 * rst_obj (by kind tag and recorded object id) for the descriptions that come later.
 */
#ifndef RST_FDS_H
#define RST_FDS_H

#include "restore.h"

struct rst_fds;

/* One open file description to bring back. */
struct rst_file {
	const struct img_fd *d;         /* its first (lowest) recorded fd */
	const struct rst_fd_ops *ops;
	int fd;                         /* opened, on a scratch number; -1 until then */
	void *priv;                     /* the kind's own state */
	int inherited;                  /* a tree: the parent's description, kept (no post_open) */
};

struct rst_fd_ops {
	const char *name;
	/* Is this recorded fd of my kind? Rows are tried in table order; first match wins. */
	int (*match)(struct rst_fds *s, const struct img_fd *d);
	/* Open the description; return an fd (any number: the generic code moves it) or -errno
	 * after rst_fds_fail() said why. */
	int (*open)(struct rst_fds *s, struct rst_file *f);
	/* Every description is open and at its numbers: finish (queues, connections). May be NULL. */
	int (*post_open)(struct rst_fds *s, struct rst_file *f);
	/* The handler only keeps the number taken (the fd does not come back): fds 0-2 of this
	 * kind are taken over from ckimg-restore's own stdio instead. */
	unsigned placeholder:1;
};

/* Checks one kind record before the fork (lengths, counts, values in range): 0, or -EBADMSG
 * with one line in err naming what is wrong. Listed per record type in fd-table.c. */
struct rst_fd_record {
	uint16_t type;
	const char *name;
	int (*check)(const struct img_fdrec *r, char *err, size_t errlen);
};
extern const struct rst_fd_record rst_fd_records[];

/* Something several descriptions share, made by the first that needs it. */
struct rst_obj {
	uint32_t tag;                   /* kind-chosen tag ('pipe', …) */
	uint64_t id;                    /* recorded object id (e.g. the pipe's inode) */
	int fd[2];                      /* kept ends (scratch numbers), -1 if none; closed at the end */
	unsigned given;                 /* bit per kept end: a description has been made of it */
	void *priv;
};

/* fd-table.c */
extern const struct rst_fd_ops *const rst_fd_ops_table[];

/* fds.c: services for the kinds. */
int rst_fds_force(struct rst_fds *s);            /* --force: unrestorable fds get placeholders */
struct img *rst_fds_img(struct rst_fds *s);
struct restore_args *rst_fds_args(struct rst_fds *s);
struct rst_obj *rst_obj_get(struct rst_fds *s, uint32_t tag, uint64_t id);   /* find or add */
int rst_fd_scratch(struct rst_fds *s, int fd);   /* move fd above every recorded number */
int rst_fds_fail(struct rst_fds *s, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* pipes.c: a new pipe with the recorded size and bytes of pipe_id (a tree's pipe between
 * processes, made before any of them). 0, or -errno with *step naming what failed. */
int rst_pipe_make(const struct img *img, uint64_t pipe_id, int fd[2], const char **step);

/* tty.c: a new pty pair for a master record m and a slave record sl (either may be NULL):
 * fd[0] master, fd[1] slave, with the recorded termios, window size, packet and lock modes
 * (a tree's pty between processes, made before any of them). 0, or -errno with *step. */
int rst_pty_make(const struct img_tty *m, const struct img_tty *sl, int fd[2], const char **step);

/* sk-unix.c: for a tree's pairs between processes. rst_unix_pair_peer: 1 with *peer when the
 * UNIX_SOCKET record of `inode` in img is one end of a connected pair of the tree (its peer
 * recorded inside), else 0. rst_unix_pair_make: a new socketpair of that socket's type (its
 * options, names and queues are set by each holder's unix_open). 0, or -errno with *step. */
int rst_unix_pair_peer(const struct img *img, uint64_t inode, uint64_t *peer);
int rst_unix_pair_make(const struct img *img, uint64_t inode, int fd[2], const char **step);

/* pipes.c: a new description on an end of a pipe this process made again (the passed files
 * of a socket queue, sk-unix.c): open_flags' access mode picks the end. fd, or -errno. */
int rst_pipe_end_open(struct rst_fds *s, uint64_t pipe_id, uint32_t open_flags);

/* locks.c: take the recorded locks and leases again (child, every fd in place). */
int restore_locks_child(struct rst_fds *s);

/* Child side of restore_fork: rebuild every recorded fd. 0, or -errno with the message in err. */
int restore_fds_child(struct restore_args *a, char *err, size_t errlen);
/* Parent side, before the fork: every kind record checked, and fds that capture marked as not
 * restorable refused (one line) unless --force, which warns and keeps a placeholder. */
int restore_fds_check(struct restore_args *a);
/* Parent side, before the fork: highest scratch fd count the child may need. */
size_t restore_fds_scratch_need(const struct img *img);

#endif /* RST_FDS_H */
