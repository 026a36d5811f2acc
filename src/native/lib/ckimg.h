/*
 * libckimg: a process checkpoints itself (link with -lckimg; static libckimg.a or shared
 * libckimg.so, both built by `npm run build` into build/).
 *
 *   int ckimg_checkpoint(const char *path, unsigned flags);
 *
 * Writes an image of the calling process — every thread, whichever thread calls — to `path`
 * (atomically, mode 0600) with ckimg-capture, like fork(2) or setjmp(3) in how it returns:
 *   0   in the original process, once the image is durable;
 *   1   in a process restored from that image (`ckimg restore path`): it carries on from here;
 *  -1   on failure, with errno set (the process runs on unchanged); the capturer's one-line
 *       reason went to stderr.
 * Flags: CKIMG_EXIT — write the image and end the process with _exit(0) (it never returns 0;
 * a restore of the image returns 1). The capturer is $CKIMG_CAPTURE_BIN, else the ckimg-capture built beside
 * this library. Not async-signal-safe; SIGCHLD must not be ignored (SIG_IGN) while it runs.
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
