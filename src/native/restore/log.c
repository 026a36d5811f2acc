/*
 * Messages of ckimg-restore: the one error line ("ckimg: IMG: what"), warnings, and the -v
 * timing trace. Errors and warnings go to stderr or to --msg-fd (the restored process keeps
 * our stderr, so a caller that wants to tell them apart passes a separate fd).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "restore.h"

static FILE *msg;               /* errors and warnings: stderr, or --msg-fd */
static const char *image_name;  /* "ckimg: IMG: ..." */

void rst_log_open(const char *image_path, int msg_fd)
{
	image_name = image_path;
	msg = msg_fd >= 0 ? fdopen(msg_fd, "w") : NULL;
	if (!msg)
		msg = stderr;
}

void rst_log_close(void)
{
	if (msg && msg != stderr)
		fclose(msg);
	msg = NULL;
}

/* Paths and names in a message come from the image or the file system and may hold a newline:
 * show control bytes as '?' so an error or warning stays one line. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* The one failure line. */
void rst_log_error(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	one_line(buf);
	fprintf(msg ? msg : stderr, "ckimg: %s: %s\n", image_name ? image_name : "-", buf);
	fflush(msg ? msg : stderr);
}

int rst_err(struct restore_args *a, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
	return err ? err : -EIO;
}

void rst_warn(const char *fmt, ...)
{
	char buf[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	one_line(buf);
	fprintf(msg ? msg : stderr, "ckimg: %s: warning: %s\n", image_name ? image_name : "-", buf);
	fflush(msg ? msg : stderr);
}

uint64_t rst_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rst_trace(struct restore_args *a, const char *what)
{
	if (a->verbose)
		fprintf(stderr, "ckimg-restore: %8.2f ms  %s\n", (double)(rst_now_ns() - a->t0) / 1e6, what);
}
