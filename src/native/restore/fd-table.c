/*
 * The one table of fd kinds (restore side). Rows are tried in order, the first whose match()
 * accepts a recorded fd opens it; specific kinds first, the last row takes anything. A new
 * kind: its own file exporting `const struct rst_fd_ops NAME_ops`, one extern line, one row.
 */
#include "fds.h"

extern const struct rst_fd_ops pipe_ops, fifo_ops, unix_ops, inet_ops, reg_ops, null_ops;
int inet_record_check(const struct img_fdrec *r, char *err, size_t errlen);
int tcp_record_check(const struct img_fdrec *r, char *err, size_t errlen);
int udp_queue_record_check(const struct img_fdrec *r, char *err, size_t errlen);
int lock_record_check(const struct img_fdrec *r, char *err, size_t errlen);
int pipe_record_check(const struct img_fdrec *r, char *err, size_t errlen);
int unix_record_check(const struct img_fdrec *r, char *err, size_t errlen);
int unix_files_record_check(const struct img_fdrec *r, char *err, size_t errlen);
extern const struct rst_fd_ops eventfd_ops, timerfd_ops, signalfd_ops, epoll_ops;
int eventfd_record_check(const struct img_fdrec *r, char *err, size_t errlen);
int timerfd_record_check(const struct img_fdrec *r, char *err, size_t errlen);
int signalfd_record_check(const struct img_fdrec *r, char *err, size_t errlen);
int epoll_record_check(const struct img_fdrec *r, char *err, size_t errlen);
extern const struct rst_fd_ops inotify_ops;
int inotify_record_check(const struct img_fdrec *r, char *err, size_t errlen);
extern const struct rst_fd_ops deleted_ops, tty_ops, ns_ops;

const struct rst_fd_ops *const rst_fd_ops_table[] = {
	&pipe_ops,              /* pipes.c: anonymous pipes */
	&fifo_ops,              /* pipes.c: named FIFOs, reopened without blocking */
	&unix_ops,              /* sk-unix.c: unix sockets, pairs joined again */
	&inet_ops,              /* sk-inet.c: TCP (listening, established via repair) and UDP */
	&eventfd_ops,           /* anon-fds.c: eventfd with its count */
	&timerfd_ops,           /* anon-fds.c: timerfd armed as it was */
	&signalfd_ops,          /* anon-fds.c: signalfd with its mask */
	&epoll_ops,             /* anon-fds.c: epoll, watches added once every fd is placed */
	&inotify_ops,           /* inotify.c: inotify, watches added again under their numbers */
	&ns_ops,                /* files-ns.c: namespace files, opened where the namespace lives */
	&deleted_ops,           /* files-content.c: deleted files and memfds, re-created */
	&tty_ops,               /* tty.c: our terminal for a shell job; pty pairs */
	&reg_ops,               /* files-reg.c: files, directories, devices by path */
	&null_ops,              /* files-reg.c: the rest keep their number on /dev/null */
	NULL,
};

/* Every kind record type restore understands, with its checker. */
const struct rst_fd_record rst_fd_records[] = {
	{ CKIMG_REC_PIPE, "PIPE", pipe_record_check },
	{ CKIMG_REC_UNIX_SOCKET, "UNIX_SOCKET", unix_record_check },
	{ CKIMG_REC_UNIX_FILES, "UNIX_FILES", unix_files_record_check },
	{ CKIMG_REC_INET_SOCKET, "INET_SOCKET", inet_record_check },
	{ CKIMG_REC_TCP_STREAM, "TCP_STREAM", tcp_record_check },
	{ CKIMG_REC_UDP_QUEUE, "UDP_QUEUE", udp_queue_record_check },
	{ CKIMG_REC_FILE_LOCK, "FILE_LOCK", lock_record_check },
	{ CKIMG_REC_EVENTFD, "EVENTFD", eventfd_record_check },
	{ CKIMG_REC_TIMERFD, "TIMERFD", timerfd_record_check },
	{ CKIMG_REC_SIGNALFD, "SIGNALFD", signalfd_record_check },
	{ CKIMG_REC_EPOLL, "EPOLL", epoll_record_check },
	{ CKIMG_REC_INOTIFY, "INOTIFY", inotify_record_check },
	{ 0, NULL, NULL },
};
