/* Small helpers: payload buffers, /proc file reading, the failure reason, clocks. */
#include "capture.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

volatile sig_atomic_t cap_abort;
static char fail_reason[512];

/* Record why the capture failed (first caller wins); returns err for `return cap_fail(...)`. */
int cap_fail(int err, const char *fmt, ...)
{
	if (!fail_reason[0]) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(fail_reason, sizeof(fail_reason), fmt, ap);
		va_end(ap);
		if (err && n > 0 && (size_t)n < sizeof(fail_reason))
			snprintf(fail_reason + n, sizeof(fail_reason) - (size_t)n, ": %s", strerror(-err));
	}
	return err;
}

void cap_warn(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ckimg-capture: warning: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *cap_fail_reason(void)
{
	return fail_reason;
}

uint64_t now_ns(int clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int buf_put(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

int buf_put_str(struct buf *b, const void *s, size_t len)
{
	uint32_t l = (uint32_t)len;
	int err = buf_put(b, &l, 4);
	return err ? err : buf_put(b, s, len);
}

int buf_put_cstr(struct buf *b, const char *s)
{
	return buf_put_str(b, s ? s : "", s ? strlen(s) : 0);
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int read_file(const char *path, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	int err = 0;
	char *p = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !p) {
		err = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	for (;;) {
		if (n + 1 >= cap) {
			char *q = realloc(p, cap * 2);
			if (!q) {
				err = -ENOMEM;
				goto out;
			}
			p = q;
			cap *= 2;
		}
		ssize_t r = read(fd, p + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	p[n] = 0;
	*out = p;
	if (len)
		*len = n;
	p = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(p);
	return err;
}

int read_link(const char *path, char **out)
{
	char buf[4096];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

void cap_boost_self(int on)
{
	static int boosted;
	struct sched_param sp = { .sched_priority = on };

	if (on == boosted || (on && getenv("CKIMG_COW_NO_BOOST")))
		return;
	if (sched_setscheduler(0, on ? SCHED_FIFO | SCHED_RESET_ON_FORK : SCHED_OTHER, &sp) == 0)
		boosted = on;
}

/*
 * Remote syscalls in every thread of the target at once (pt_remote_syscalls): calls holds k
 * calls per thread, thread i's at calls[k i ...], results in their ret. A thread whose calls
 * could not be made fails the capture, named, with what the calls were for.
 */
int cap_remote_per_thread(struct capture *c, struct pt_syscall *calls, size_t k, const char *what)
{
	size_t n = c->nthreads;
	struct pt_remote_batch *b = calloc(n, sizeof(*b));
	int err;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		b[i] = (struct pt_remote_batch){ .tid = c->threads[i].tid, .calls = &calls[k * i], .ncalls = k };
	err = pt_remote_syscalls(b, n, c->syscall_ip);
	for (size_t i = 0; err && i < n; i++)
		if (b[i].err) {
			err = cap_fail(b[i].err, "thread %d: remote %s", b[i].tid, what);
			break;
		}
	free(b);
	return err;
}

/*
 * Anonymous memory for a buffer, backed by transparent huge pages where the kernel gives them
 * (MADV_HUGEPAGE; 2 MiB-aligned, the length rounded up to 2 MiB). Why: a first touch of memory
 * costs a page fault per 4 KiB page, measured 11-17 us each on the VM here (Firecracker; a
 * second touch costs 0.05 us), against ~0.35 us per 4 KiB when a 2 MiB huge page comes at
 * once. Not touched here. NULL on failure. Free with cap_free_buf(p, the same len).
 */
#define HUGE_2M (2ul << 20)
void *cap_alloc_buf(size_t len)
{
	size_t want = (len + HUGE_2M - 1) & ~(HUGE_2M - 1);
	uint8_t *p = mmap(NULL, want + HUGE_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + want < p + want + HUGE_2M)
		munmap(a + want, (size_t)(p + want + HUGE_2M - (a + want)));
	madvise(a, want, MADV_HUGEPAGE);
	return a;
}

void cap_free_buf(void *p, size_t len)
{
	if (p)
		munmap(p, (len + HUGE_2M - 1) & ~(HUGE_2M - 1));
}
