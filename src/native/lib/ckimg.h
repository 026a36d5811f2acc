/*
 * libckimg: a process checkpoints itself (link with -lckimg; static libckimg.a or shared
 * libckimg.so, both built by `npm run build` into build/).
 *
 *   int ckimg_checkpoint(const char *path, unsigned flags);
 *
 * Writes an image of the calling process tree — the calling process with every thread,
 * whichever thread calls, and its descendants (child processes, theirs…; not the capturer it
 * forks) — to `path` (atomically, mode 0600) with ckimg-capture, like fork(2) or setjmp(3) in
 * how it returns:
 *   0   in the original process, once the image is durable;
 *   1   in a process restored from that image (`ckimg restore path`): it carries on from here,
 *       its descendants from wherever they were (each frozen at the same instant);
 *  -1   on failure, with errno set (the processes run on unchanged); the capturer's one-line
 *       reason went to stderr.
 * Flags: CKIMG_EXIT — write the image and end: the tree stays frozen until the image is
 * complete (stop-and-copy), then the descendants are killed and reaped and the process ends with
 * _exit(0) (it never returns 0; a restore of the image returns 1). (Descendants may run for the
 * moment between the capturer letting them go and being killed.) The capturer is
 * $CKIMG_CAPTURE_BIN, else the ckimg-capture built beside this library. Not async-signal-safe;
 * SIGCHLD must not be ignored (SIG_IGN) while it runs.
 */
#ifndef CKIMG_H
#define CKIMG_H

#ifdef __cplusplus
extern "C" {
#endif

#define CKIMG_EXIT 1u

int ckimg_checkpoint(const char *path, unsigned flags);

#ifdef __cplusplus
}
#endif

#endif
