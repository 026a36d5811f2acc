/*
 * The one table of fd kinds (restore side). Rows are tried in order, the first whose match()
 * accepts a recorded fd opens it; specific kinds first, the last row takes anything. A new
 * kind: its own file exporting `const struct rst_fd_ops NAME_ops`, one extern line, one row.
 */
#include "fds.h"

extern const struct rst_fd_ops pipe_ops, fifo_ops, reg_ops, null_ops;
extern const struct rst_fd_ops deleted_ops, tty_ops;

const struct rst_fd_ops *const rst_fd_ops_table[] = {
	&pipe_ops,              /* pipes.c: anonymous pipes */
	&fifo_ops,              /* pipes.c: named FIFOs, reopened without blocking */
	&deleted_ops,           /* files-content.c: deleted files and memfds, re-created */
	&tty_ops,               /* tty.c: our terminal for a shell job; pty pairs */
	&reg_ops,               /* files-reg.c: files, directories, devices by path */
	&null_ops,              /* files-reg.c: the rest keep their number on /dev/null */
	NULL,
};
