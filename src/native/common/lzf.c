/*
 * LZF compressor/decompressor (format in lzf.h). A greedy one-pass matcher over a hash table
 * of 3-byte prefixes; table entries may be stale (from an earlier call): every candidate is
 * checked byte for byte and must lie before the current position, so no reset is needed.
 */
#include "lzf.h"

#include <errno.h>
#include <string.h>

#define MAX_LIT  32
#define MAX_OFF  8192
#define MAX_REF  264          /* 7 + 255 + 2 */

static inline uint32_t hash3(const uint8_t *p)
{
	uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
	return (v * 2654435761u) >> (32 - LZF_HLOG);
}

static inline size_t match_len(const uint8_t *a, const uint8_t *b, size_t max)
{
	size_t n = 0;
	while (n + 8 <= max) {
		uint64_t x, y;
		memcpy(&x, a + n, 8);
		memcpy(&y, b + n, 8);
		if (x != y)
			return n + (size_t)(__builtin_ctzll(x ^ y) >> 3);
		n += 8;
	}
	while (n < max && a[n] == b[n])
		n++;
	return n;
}

size_t lzf_compress(const void *in_, size_t n, void *out_, size_t cap, struct lzf_state *st)
{
	const uint8_t *in = in_;
	uint8_t *out = out_;
	size_t ip = 0, op = 0, lit = 0, ctrl, misses = 0;

	if (n == 0 || cap < 2 || n > 0xFFFFFFFEu)
		return 0;
	ctrl = op++;                      /* control byte of the current literal run */
	while (ip + 2 < n) {
		uint32_t h = hash3(in + ip);
		size_t ref = st->htab[h];
		st->htab[h] = (uint32_t)ip;
		size_t off = ip - ref - 1;
		if (ref < ip && off < MAX_OFF && in[ref] == in[ip] && in[ref + 1] == in[ip + 1] &&
		    in[ref + 2] == in[ip + 2]) {
			size_t max = n - ip < MAX_REF ? n - ip : MAX_REF;
			size_t len = 3 + match_len(in + ref + 3, in + ip + 3, max - 3);
			size_t l = len - 2;
			if (lit)
				out[ctrl] = (uint8_t)(lit - 1);
			else
				op--;             /* no literals: drop the reserved control byte */
			if (op + 4 > cap)
				return 0;
			if (l < 7) {
				out[op++] = (uint8_t)(l << 5 | off >> 8);
			} else {
				out[op++] = (uint8_t)(7 << 5 | off >> 8);
				out[op++] = (uint8_t)(l - 7);
			}
			out[op++] = (uint8_t)off;
			/* Index the last position inside the match so runs chain on. */
			if (ip + len + 2 < n && len > 1)
				st->htab[hash3(in + ip + len - 1)] = (uint32_t)(ip + len - 1);
			ip += len;
			misses = 0;
			lit = 0;
			ctrl = op++;
			continue;
		}
		/* No match: emit literals. After a long matchless stretch (incompressible data)
		 * take bigger steps without hashing, as LZ4's acceleration does. */
		size_t step = 1 + (misses++ >> 6);
		if (step > MAX_LIT - lit)
			step = MAX_LIT - lit;
		if (step > n - 2 - ip)
			step = n - 2 - ip;
		if (op + step > cap)
			return 0;
		memcpy(out + op, in + ip, step);
		op += step;
		ip += step;
		lit += step;
		if (lit == MAX_LIT) {
			out[ctrl] = MAX_LIT - 1;
			lit = 0;
			if (op + 1 > cap)
				return 0;
			ctrl = op++;
		}
	}
	while (ip < n) {
		if (op + 1 > cap)
			return 0;
		out[op++] = in[ip++];
		if (++lit == MAX_LIT) {
			out[ctrl] = MAX_LIT - 1;
			lit = 0;
			if (op + 1 > cap)
				return 0;
			ctrl = op++;
		}
	}
	if (lit)
		out[ctrl] = (uint8_t)(lit - 1);
	else
		op--;
	return op <= cap ? op : 0;
}

long lzf_decompress(const void *in_, size_t n, void *out_, size_t cap)
{
	const uint8_t *in = in_;
	uint8_t *out = out_;
	size_t ip = 0, op = 0;

	while (ip < n) {
		size_t c = in[ip++];
		if (c < 32) {
			size_t len = c + 1;
			if (ip + len > n)
				return -EINVAL;
			if (op + len > cap)
				return -E2BIG;
			memcpy(out + op, in + ip, len);
			ip += len;
			op += len;
			continue;
		}
		size_t len = c >> 5;
		if (len == 7) {
			if (ip >= n)
				return -EINVAL;
			len += in[ip++];
		}
		if (ip >= n)
			return -EINVAL;
		size_t back = ((c & 31) << 8 | in[ip++]) + 1;
		len += 2;
		if (back > op)
			return -EINVAL;
		if (op + len > cap)
			return -E2BIG;
		const uint8_t *ref = out + op - back;
		for (size_t i = 0; i < len; i++)   /* overlapping copy, byte by byte */
			out[op + i] = ref[i];
		op += len;
	}
	return (long)op;
}
