/*
 * The bytes queued in a pty pair (FORMAT.md TTY DATA), shared by capture and restore.
 * The kernel has no way to read a tty's queue without taking the bytes: capture reads them
 * from a duplicate of the target's fd and writes them back at once through the other end
 * (the target is frozen and sees them again), restore writes them into the new pair.
 */
#ifndef CKIMG_TTY_QUEUE_H
#define CKIMG_TTY_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/* Exactly n bytes from fd into out (n as FIONREAD counted them: they are there; a canonical
 * slave gives them a line per read). Returns the bytes read (< n if the queue had fewer). */
size_t tty_queue_take(int fd, uint8_t *out, size_t n);

/*
 * Put n bytes back in a pty pair whose slave is `slave` and master `master`. to_slave: the
 * slave's input (what the master side had written and the slave not read yet): written into
 * the master with the slave's echo, signals and input translation off (and, in canonical mode,
 * the editing characters disabled, so that lines end where they ended). Otherwise the
 * master's input (what the slave side had written): written into the slave with output
 * processing off. The slave's termios is the same afterwards; the bytes are waited for (up to
 * about a second) to have reached the other side's queue before that, since the pty passes
 * them on from a kernel worker. 0, or -errno (-ETIMEDOUT: not all of them arrived in time).
 */
int tty_queue_put(int slave, int master, int to_slave, const uint8_t *data, size_t n);

#endif
