/*
 * Terminals (FORMAT.md TTY), restore side.
 *
 * Shell job (CRIU's --shell-job, automatic here): when the process had a controlling terminal
 * and ckimg-restore itself runs on a terminal — or the recorded terminal is gone — the process
 * gets ours: its terminal fds open our terminal, it stays in our session (a recorded session
 * leader does not call setsid, it could not take a terminal that is already our session's),
 * the recorded termios (raw mode, echo …) is applied to our terminal, its process group is
 * made the foreground group when it was, and it gets SIGWINCH so that it redraws on ours.
 * When it ends, our terminal gets our foreground group and termios back.
 *
 * Pty pairs the process held both ends of are made again (posix_openpt + TIOCGPTPEER), with
 * the slave's termios, owner and mode, the window size and the master's lock and packet modes. In a tree, a
 * pair whose ends several processes hold (a tmux or screen server and the shells of its panes,
 * `script`, sshd) is made once by tree.c with rst_pty_make, before any process, and each
 * holder takes its end from it (tree_pty below).
 */
#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fds.h"
#include "tty_queue.h"

#define TAG_PTY 0x70747970u    /* 'ptyp' */

static const struct img_tty *controlling(const struct img *img)
{
	for (size_t i = 0; i < img->nttys; i++)
		if (img->ttys[i].f.flags & CKIMG_TTY_CONTROLLING)
			return &img->ttys[i];
	return NULL;
}

/* The record of q's side of its pty (same index, same end) that holds the side's queue, or NULL. */
static const struct img_tty *side_data(const struct img *img, const struct img_tty *q)
{
	uint32_t side = q->f.flags & (CKIMG_TTY_PTY_MASTER | CKIMG_TTY_PTY_SLAVE);

	for (size_t i = 0; side && q->f.index != CKIMG_TTY_NONE && i < img->nttys; i++) {
		const struct img_tty *e = &img->ttys[i];
		if (e->f.index == q->f.index && (e->f.flags & side) && e->f.data_length)
			return e;
	}
	return NULL;
}

static int our_terminal(void)
{
	for (int fd = 0; fd <= 2; fd++)
		if (isatty(fd))
			return fd;
	return -1;
}

int restore_tty_prepare(struct restore_args *a)
{
	const struct img_tty *t = controlling(a->img);
	int gone = 0;

	a->tty_fd = -1;
	/* the bytes queued on a side of a pair are in the record of its lowest fd (tty_queue.c);
	 * other terminals' queues were not taken */
	for (size_t i = 0; i < a->img->nttys; i++) {
		const struct img_tty *q = &a->img->ttys[i];
		/* /dev/tty counts the queue of the controlling terminal, another record's */
		const struct img_tty *own = !strcmp(q->name.s, "/dev/tty") && t && (t->f.flags & CKIMG_TTY_PAIRED) ? t : q;
		if ((q->f.in_queued || q->f.out_queued) && !q->f.data_length && !side_data(a->img, own))
			rst_warn("fd %u (%s): %u bytes queued for reading and %u for writing at the capture are "
				 "not in the image", q->f.fd, q->name.s, q->f.in_queued, q->f.out_queued);
	}
	/* a pty master whose slave is not ours (another process's terminal) cannot be joined to it
	 * again; in a tree, tree.c looks for the slave in the other processes (make_shared_ptys) */
	for (size_t i = 0; !a->img->tree && i < a->img->nttys; i++) {
		const struct img_tty *q = &a->img->ttys[i];
		if (!(q->f.flags & CKIMG_TTY_PTY_MASTER) || (q->f.flags & CKIMG_TTY_PAIRED))
			continue;
		if (!a->force)
			return rst_err(a, -EXDEV, "TTY record #%u: fd %u is a pty master (pty %d) whose slave the process did "
				       "not hold; it cannot be reconnected (--force gives it a new pty)", q->seq,
				       q->f.fd, (int)q->f.index);
		rst_warn("fd %u: a pty master whose slave the process did not hold gets a new pty", q->f.fd);
	}
	if (!t)
		return 0;
	gone = t->name.s[0] != '/' || access(t->name.s, F_OK) != 0;
	a->tty_fd = our_terminal();
	if (a->tty_fd < 0) {
		if (gone && !((t->f.flags & CKIMG_TTY_PAIRED) && (t->f.flags & CKIMG_TTY_PTY_SLAVE)))   /* made again */
			rst_warn("the terminal %s of the process is gone and ckimg restore runs on none: fds 0-2 "
				 "take ours", t->name.s);
		return 0;
	}
	if (ttyname_r(a->tty_fd, a->tty_path, sizeof(a->tty_path)) != 0)
		snprintf(a->tty_path, sizeof(a->tty_path), "/proc/%d/fd/%d", (int)getpid(), a->tty_fd);
	a->shell_job = 1;
	if (ioctl(a->tty_fd, TCGETS2, (struct termios2 *)a->saved_termios) == 0)
		a->tty_saved = 1;
	return 0;
}

/* Before the process runs: our terminal gets its termios and, if it had it, the foreground. */
int restore_tty_parent(struct restore_args *a)
{
	const struct img_tty *t = controlling(a->img);
	struct termios2 tm;

	if (!a->shell_job || !t)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.c_iflag = t->f.c_iflag;
	tm.c_oflag = t->f.c_oflag;
	tm.c_cflag = t->f.c_cflag;
	tm.c_lflag = t->f.c_lflag;
	tm.c_line = t->f.c_line;
	memcpy(tm.c_cc, t->f.c_cc, CKIMG_TTY_NCCS);
	tm.c_ispeed = t->f.ispeed;
	tm.c_ospeed = t->f.ospeed;
	/* keep our line's speed and line discipline: those belong to the terminal, not the program */
	if (a->tty_saved) {
		const struct termios2 *o = (const struct termios2 *)a->saved_termios;
		tm.c_cflag = (tm.c_cflag & ~(CBAUD | CIBAUD)) | (o->c_cflag & (CBAUD | CIBAUD));
		tm.c_line = o->c_line;
		tm.c_ispeed = o->c_ispeed;
		tm.c_ospeed = o->c_ospeed;
	}
	signal(SIGTTOU, SIG_IGN);       /* we may be in a background group ourselves */
	if (ioctl(a->tty_fd, TCSETS2, &tm) < 0)
		return rst_err(a, -errno, "TTY record #%u: cannot set the termios of %s: %s", t->seq, a->tty_path,
			       strerror(errno));
	if (t->f.flags & CKIMG_TTY_FOREGROUND) {
		pid_t pg = getpgid(a->pid);
		if (pg > 0 && tcsetpgrp(a->tty_fd, pg) == 0)
			a->tty_fg_set = 1;
		else
			rst_warn("cannot make process group %d the foreground of %s: %s", (int)pg, a->tty_path,
				 strerror(errno));
	}
	return 0;
}

/* Once it runs: SIGWINCH to the terminal's foreground group (as a size change would send it),
 * whether or not the size differs: our terminal does not show what the program drew on its
 * old one, and full-screen programs (vim, top, less) and readline redraw on SIGWINCH. */
void restore_tty_running(struct restore_args *a)
{
	const struct img_tty *t = controlling(a->img);
	pid_t fg;

	if (!a->shell_job || !t || a->tty_fd < 0)
		return;
	fg = a->tty_fg_set ? tcgetpgrp(a->tty_fd) : -1;
	if (fg > 0)
		kill(-fg, SIGWINCH);
	else
		kill(a->pid, SIGWINCH);
}

/* It ended (or the restore failed): our terminal is ours again. */
void restore_tty_done(struct restore_args *a)
{
	if (!a->shell_job || a->tty_fd < 0)
		return;
	signal(SIGTTOU, SIG_IGN);
	if (a->tty_fg_set)
		tcsetpgrp(a->tty_fd, getpgrp());
	if (a->tty_saved)
		ioctl(a->tty_fd, TCSETS2, (const struct termios2 *)a->saved_termios);
	a->tty_fg_set = 0;
}

/* ---- the fd kind ---- */

/* A pair the tree made for pty `index` (its ends held by several processes). */
static int tree_pty(const struct restore_args *a, uint32_t index)
{
	for (size_t i = 0; i < a->ntree_objs; i++)
		if (a->tree_objs[i].tag == TAG_PTY && a->tree_objs[i].id == index)
			return 1;
	return 0;
}

/* The process's controlling terminal when it was a pty pair it held both ends of (made again
 * here, in its own session: not a shell job), or NULL. */
static const struct img_tty *own_ctty(struct rst_fds *s)
{
	const struct img_tty *t = controlling(rst_fds_img(s));

	if (!t || rst_fds_args(s)->shell_job || !(t->f.flags & CKIMG_TTY_PAIRED) || !(t->f.flags & CKIMG_TTY_PTY_SLAVE) ||
	    t->f.index == CKIMG_TTY_NONE)
		return NULL;
	return t;
}

/* /dev/tty (5:0): the process's controlling terminal, whichever that is when it is opened */
static int is_dev_tty(const struct img_fd *d)
{
	return d->f.rdev_major == 5 && d->f.rdev_minor == 0;
}

static int tty_match(struct rst_fds *s, const struct img_fd *d)
{
	const struct img_tty *t = img_tty(rst_fds_img(s), d->f.fd);

	if (!t)
		return 0;
	if ((t->f.flags & CKIMG_TTY_CONTROLLING) && rst_fds_args(s)->shell_job)
		return 1;
	if (is_dev_tty(d) && own_ctty(s))
		return 1;
	return ((t->f.flags & CKIMG_TTY_PAIRED) || tree_pty(rst_fds_args(s), t->f.index)) &&
	       t->f.index != CKIMG_TTY_NONE && (t->f.flags & (CKIMG_TTY_PTY_MASTER | CKIMG_TTY_PTY_SLAVE));
}

static void set_termios(int fd, const struct img_tty *t)
{
	struct termios2 tm;

	memset(&tm, 0, sizeof(tm));
	tm.c_iflag = t->f.c_iflag;
	tm.c_oflag = t->f.c_oflag;
	tm.c_cflag = t->f.c_cflag;
	tm.c_lflag = t->f.c_lflag;
	tm.c_line = t->f.c_line;
	memcpy(tm.c_cc, t->f.c_cc, CKIMG_TTY_NCCS);
	tm.c_ispeed = t->f.ispeed;
	tm.c_ospeed = t->f.ospeed;
	ioctl(fd, TCSETS2, &tm);
}

/* Make the pair for pty number `index` once: master in fd[0], slave in fd[1]. */
static int make_pair(struct rst_fds *s, const struct img_tty *t, struct rst_obj **out)
{
	struct img *img = rst_fds_img(s);
	struct rst_obj *o = rst_obj_get(s, TAG_PTY, t->f.index);
	const struct img_tty *m = NULL, *sl = NULL;

	if (!o)
		return rst_fds_fail(s, -ENOMEM, "pty");
	*out = o;
	if (o->fd[0] >= 0)
		return 0;
	for (size_t i = 0; i < img->nttys; i++) {
		const struct img_tty *e = &img->ttys[i];
		if (e->f.index != t->f.index || !(e->f.flags & CKIMG_TTY_PAIRED))
			continue;
		/* the one with the side's queued bytes, if any */
		if ((e->f.flags & CKIMG_TTY_PTY_MASTER) && (!m || (!m->f.data_length && e->f.data_length)))
			m = e;
		if ((e->f.flags & CKIMG_TTY_PTY_SLAVE) && (!sl || (!sl->f.data_length && e->f.data_length)))
			sl = e;
	}
	int pair[2];
	const char *step;
	int err = rst_pty_make(m, sl, pair, &step);
	if (err)
		return rst_fds_fail(s, err, "a new pty: %s", step);
	o->fd[0] = rst_fd_scratch(s, pair[0]);
	o->fd[1] = rst_fd_scratch(s, pair[1]);
	if (o->fd[0] < 0 || o->fd[1] < 0)
		return rst_fds_fail(s, o->fd[0] < 0 ? o->fd[0] : o->fd[1], "pty to a scratch number");
	return 0;
}

/* The session leader takes the slave of the pair it made again as controlling terminal (once:
 * /dev/tty and the slave's own fds may each come first). */
static int take_ctty(struct rst_fds *s, const struct img_tty *t, int slave)
{
	pid_t sid;

	if (getsid(0) != getpid())
		return rst_fds_fail(s, -EPERM, "pty %u was the controlling terminal of the process, which is not a session "
				    "leader here (a new PID?)", t->f.index);
	if (ioctl(slave, TIOCGSID, &sid) == 0 && sid == getpid())
		return 0;
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		return rst_fds_fail(s, -errno, "making pty %u its controlling terminal again (TIOCSCTTY)", t->f.index);
	return 0;
}

static int tty_open(struct rst_fds *s, struct rst_file *f)
{
	const struct img_fd *d = f->d;
	const struct img_tty *t = img_tty(rst_fds_img(s), d->f.fd), *ct = own_ctty(s);
	struct restore_args *a = rst_fds_args(s);
	struct rst_obj *o = NULL;
	int fd, err;

	if ((t->f.flags & CKIMG_TTY_CONTROLLING) && a->shell_job) {
		int flags = (int)d->f.open_flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC);
		fd = open(a->tty_path, flags | O_NOCTTY | O_CLOEXEC);
		return fd < 0 ? rst_fds_fail(s, -errno, "cannot open our terminal %s", a->tty_path) : fd;
	}
	if (is_dev_tty(d) && ct) {
		int flags = (int)d->f.open_flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC);
		if ((err = make_pair(s, ct, &o)) || (err = take_ctty(s, ct, o->fd[1])))
			return err;
		fd = open("/dev/tty", flags | O_CLOEXEC);
		return fd < 0 ? rst_fds_fail(s, -errno, "cannot open /dev/tty (pty %u)", ct->f.index) : fd;
	}
	if ((err = make_pair(s, t, &o)))
		return err;
	if (ct && ct->f.index == t->f.index && (err = take_ctty(s, ct, o->fd[1])))
		return err;
	fd = fcntl(o->fd[(t->f.flags & CKIMG_TTY_PTY_MASTER) ? 0 : 1], F_DUPFD_CLOEXEC, 0);
	return fd < 0 ? rst_fds_fail(s, -errno, "dup of the pty") : fd;
}

/* ---- pty pairs between the processes of a tree (tree.c, make_shared_ptys) ---- */

/* A new pty pair like the one master record m and slave record sl describe (either may be
 * NULL): fd[0] the master, fd[1] the slave (close-on-exec, not anyone's controlling terminal),
 * the slave's termios and window size, the master's packet and lock modes. 0, or -errno with
 * *step naming what failed. */
int rst_pty_make(const struct img_tty *m, const struct img_tty *sl, int fd[2], const char **step)
{
	int v = 0, e;

	fd[0] = fd[1] = -1;
	*step = "posix_openpt";
	if ((fd[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		return -errno;
	*step = "unlocking the new pty (TIOCSPTLCK)";
	if (ioctl(fd[0], TIOCSPTLCK, &v) < 0)
		goto fail;
	*step = "opening its slave (TIOCGPTPEER)";
	if ((fd[1] = ioctl(fd[0], TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		goto fail;
	if (sl) {
		struct winsize ws = { sl->f.ws_row, sl->f.ws_col, sl->f.ws_xpixel, sl->f.ws_ypixel };
		set_termios(fd[1], sl);
		*step = "setting the window size (TIOCSWINSZ)";
		if (ioctl(fd[0], TIOCSWINSZ, &ws) < 0)
			goto fail;
		/* the slave node's owner, then its mode (fchown clears set-id bits) */
		*step = "giving the slave its owner (fchown)";
		if ((sl->f.uid != CKIMG_TTY_NONE || sl->f.gid != CKIMG_TTY_NONE) &&
		    fchown(fd[1], (uid_t)sl->f.uid, (gid_t)sl->f.gid) < 0)
			goto fail;
		*step = "giving the slave its mode (fchmod)";
		if (sl->f.mode != CKIMG_TTY_NONE && fchmod(fd[1], (mode_t)(sl->f.mode & 07777)) < 0)
			goto fail;
	}
	/* the queued bytes, each side's into the other end, before packet mode and the lock */
	*step = "putting back the bytes queued for the slave";
	if (sl && sl->data && (e = tty_queue_put(fd[1], fd[0], 1, sl->data, sl->f.data_length)) < 0)
		goto fail_e;
	*step = "putting back the bytes queued for the master";
	if (m && m->data && (e = tty_queue_put(fd[1], fd[0], 0, m->data, m->f.data_length)) < 0)
		goto fail_e;
	if (m && (m->f.flags & CKIMG_TTY_PACKET)) {
		v = 1;
		*step = "packet mode (TIOCPKT)";
		if (ioctl(fd[0], TIOCPKT, &v) < 0)
			goto fail;
	}
	if (m && (m->f.flags & CKIMG_TTY_LOCKED)) {
		v = 1;
		*step = "locking the pty (TIOCSPTLCK)";
		if (ioctl(fd[0], TIOCSPTLCK, &v) < 0)
			goto fail;
	}
	return 0;
fail:
	e = -errno;
fail_e:
	close(fd[0]);
	if (fd[1] >= 0)
		close(fd[1]);
	fd[0] = fd[1] = -1;
	return e;
}

const struct rst_fd_ops tty_ops = {
	.name = "tty",
	.match = tty_match,
	.open = tty_open,
};
