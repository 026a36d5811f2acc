/*
 * The one table of fd kinds (capture side). Rows are tried in order and the first whose
 * match() accepts the fd handles it, so specific kinds come before general ones; the last
 * row takes anything. A new kind: its own file exporting `const struct fd_ops NAME_ops`, one
 * extern line and one row here.
 */
#include "fds.h"

extern const struct fd_ops pipe_ops, fifo_ops, unix_ops, inet_ops, reg_ops, other_ops;
extern const struct fd_ops eventfd_ops, timerfd_ops, signalfd_ops, epoll_ops, inotify_ops;
extern const struct fd_ops deleted_ops, regfile_ops, tty_ops, ns_ops;

const struct fd_ops *const fd_ops_table[] = {
	&pipe_ops,              /* pipes.c: anonymous pipes */
	&fifo_ops,              /* pipes.c: named FIFOs */
	&unix_ops,              /* sk-unix.c: unix sockets */
	&inet_ops,              /* sk-inet.c: TCP and UDP over IPv4/IPv6 */
	&eventfd_ops,           /* anon-fds.c: eventfd (count, semaphore) */
	&timerfd_ops,           /* anon-fds.c: timerfd (clock, value, interval, ticks) */
	&signalfd_ops,          /* anon-fds.c: signalfd (mask) */
	&epoll_ops,             /* anon-fds.c: epoll (watched fds, events, data) */
	&inotify_ops,           /* inotify.c: inotify (watches: wd, mask, path) */
	&ns_ops,                /* files-ns.c: namespace files (/proc/PID/ns/TYPE), FD record only */
	&deleted_ops,           /* files-content.c: unlinked files and memfds, content stored */
	&regfile_ops,           /* files-content.c: regular files on disk (identity: FD_FILE) */
	&tty_ops,               /* tty.c: terminals and pty masters (TTY) */
	&reg_ops,               /* files-reg.c: files, directories, devices reopened by path */
	&other_ops,             /* files-reg.c: the rest (FD record only) */
	NULL,
};
