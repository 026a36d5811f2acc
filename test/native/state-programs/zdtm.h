/*
 * A tiny zdtm-like harness for the state tests (after CRIU's test/zdtm/lib): a program sets
 * up its state, prints "ready", then waits for a line on stdin (the test writes "check" after
 * capture → kill → restore; the restored process reads the restorer's stdin), checks that the
 * state is what it was and prints "PASS" or "FAIL: why" and exits 0 / 1.
 */
#ifndef ZDTM_H
#define ZDTM_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int zdtm_failed;

static void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;
	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	zdtm_failed = 1;
}

static void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void ready(void)
{
	printf("ready\n");
	fflush(stdout);
}

/* Block until a line arrives on stdin (EINTR from timer signals is retried). */
static void wait_check(void)
{
	char c;
	for (;;) {
		ssize_t n = read(0, &c, 1);
		if (n == 1 && c == '\n')
			return;
		if (n == 0)
			exit(3);
		if (n < 0 && errno != EINTR)
			exit(4);
	}
}

static int finish(void)
{
	if (!zdtm_failed)
		printf("PASS\n");
	fflush(stdout);
	return zdtm_failed;
}

#endif
