/*
 * Open file descriptors, capture side.
 *
 * The generic code (fds.c) walks /proc/PID/fd, fills the FD record of every descriptor
 * (number, FD_CLOEXEC, open flags, position, stat identity), groups descriptors that share one
 * open file description, and hands each description once to the handler of its kind. A kind
 * lives in its own file (files-reg.c, pipes.c, sk-unix.c, …) and exports one `struct fd_ops`;
 * fd-table.c lists them. Adding a kind is adding a file and a table row.
 *
 * Kernel objects that several descriptions share (the two ends of a pipe, the two sockets of
 * a pair) are recorded once, under an object id (the inode), and the per-fd records refer to
 * it, so that a later process-tree capture can give the other end to another process.
 */
#ifndef CK_FDS_H
#define CK_FDS_H

#include <sys/stat.h>
#include "capture.h"

struct fd_ops;

/* One open descriptor of the target as the generic code sees it. */
struct cap_fd {
	int fd;                         /* number in the target */
	struct ckimg_fd_fixed f;        /* FD record FIXED, generic fields filled */
	char *link;                     /* readlink of /proc/PID/fd/N ("pipe:[123]", a path, …) */
	char *fdinfo;                   /* text of /proc/PID/fdinfo/N, NULL if unreadable */
	struct stat st;
	int have_stat;
	struct cap_fd *file;            /* first fd of the same open file description (self if first) */
	const struct fd_ops *ops;       /* handler of its kind (set for every fd) */
	int local;                      /* copy in ckimg-capture (pidfd_getfd), -1 until fd_local() */
	void *priv;                     /* the kind's own state, freed by its release() */
	char *note;                     /* why it cannot be brought back (FD note), or NULL */
};

struct fd_ops {
	const char *name;
	/* Is this descriptor of my kind? Rows are tried in table order; the first match wins. */
	int (*match)(struct capture *c, struct cap_fd *d);
	/* Record the kind's state of one open file description (called once, on its first fd,
	 * target frozen) with fd_emit(). NULL: the FD record says all there is. */
	int (*dump)(struct capture *c, struct cap_fd *d);
	/* The target is let go (killed != 0: it was killed first): undo what dump holds, free priv. */
	void (*release)(struct capture *c, struct cap_fd *d, int killed);
};

/* fd-table.c: every kind, most specific first; the last row matches anything. */
extern const struct fd_ops *const fd_ops_table[];

/* fds.c: services for the kinds. */
int fd_local(struct capture *c, struct cap_fd *d);   /* our copy of the target's fd, or -errno */
/* Queue one kind record (written after the FD records, in emission order). */
int fd_emit(struct capture *c, uint16_t type, uint32_t key32, uint64_t key64, const struct buf *payload);
/* This fd cannot be brought back: FD.state UNRESTORABLE, the note, and a warning on stderr
 * (fds 0-2 are taken over from restore's stdio instead, so they are marked but not warned). */
int fd_cannot(struct capture *c, struct cap_fd *d, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Its other end (pipe, socket peer) is in a process outside the image: FD.state PEER_OUTSIDE,
 * the note says what restore will give it, and a warning (fds > 2). */
int fd_peer_outside(struct capture *c, struct cap_fd *d, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* SO_DOMAIN of a socket fd (AF_UNIX, AF_INET, …), -errno if it cannot be asked. */
int fd_socket_family(struct capture *c, struct cap_fd *d);
/* Every fd of the target (sorted by number) for kinds that pair descriptions (pipes, socketpairs). */
struct cap_fd *fd_all(struct capture *c, size_t *n);

/* sk-unix.c: is an end (O_RDONLY/O_WRONLY) of pipe dev:ino in flight (SCM_RIGHTS) in a
 * queue of one of the process's unix sockets? */
int unix_pipe_in_flight(struct capture *c, dev_t dev, ino_t ino, int acc);

/* locks.c: FILE_LOCK records of the locks and leases the process holds (after the kinds). */
int collect_locks(struct capture *c);

#endif /* CK_FDS_H */
