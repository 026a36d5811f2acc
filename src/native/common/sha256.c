/*
 * SHA-256, FIPS 180-4 section 6.2. Two block functions: the x86 SHA-NI one (sha256rnds2 does two
 * rounds, sha256msg1/msg2 the message schedule) and portable C; picked once at first use.
 */
#include "sha256.h"

#include <cpuid.h>
#include <errno.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void blocks_c(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
	while (nblocks--) {
		uint32_t w[64], a, b, c, d, e, f, g, hh;
		for (int i = 0; i < 16; i++)
			w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
			       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
		for (int i = 16; i < 64; i++) {
			uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
			uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
			w[i] = w[i - 16] + s0 + w[i - 7] + s1;
		}
		a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
		for (int i = 0; i < 64; i++) {
			uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
			uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
			hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
		}
		h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
		p += 64;
	}
}

/*
 * SHA-NI: state kept as ABEF/CDGH in two registers (the layout sha256rnds2 wants); each group of
 * four rounds adds K to four message words, runs rnds2 twice (low then high pair) and advances
 * the schedule with msg1/alignr/msg2.
 */
__attribute__((target("sha,sse4.1,ssse3")))
static void blocks_ni(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i t = _mm_loadu_si128((const __m128i *)&h[0]);   /* DCBA */
	__m128i s1 = _mm_loadu_si128((const __m128i *)&h[4]);  /* HGFE */
	t = _mm_shuffle_epi32(t, 0xB1);                           /* CDAB */
	s1 = _mm_shuffle_epi32(s1, 0x1B);                         /* EFGH */
	__m128i s0 = _mm_alignr_epi8(t, s1, 8);                   /* ABEF */
	s1 = _mm_blend_epi16(s1, t, 0xF0);                        /* CDGH */

	while (nblocks--) {
		__m128i a0 = s0, c0 = s1, m[4], k;
		for (int i = 0; i < 4; i++)
			m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
		for (int r = 0; r < 16; r++) {
			__m128i *cur = &m[r & 3];
			k = _mm_add_epi32(*cur, _mm_loadu_si128((const __m128i *)&K[4 * r]));
			s1 = _mm_sha256rnds2_epu32(s1, s0, k);
			if (r >= 3 && r < 15) {
				/* m[r+1] (as W[4r+4..]) = msg2(msg1(m[r-3], m[r-2]) + alignr(m[r], m[r-1]), m[r]) */
				__m128i *nx = &m[(r + 1) & 3];
				__m128i tmp = _mm_alignr_epi8(*cur, m[(r + 3) & 3], 4);
				*nx = _mm_add_epi32(*nx, tmp);
				*nx = _mm_sha256msg2_epu32(*nx, *cur);
			}
			k = _mm_shuffle_epi32(k, 0x0E);
			s0 = _mm_sha256rnds2_epu32(s0, s1, k);
			if (r >= 1 && r < 13)
				m[(r + 3) & 3] = _mm_sha256msg1_epu32(m[(r + 3) & 3], *cur);
		}
		s0 = _mm_add_epi32(s0, a0);
		s1 = _mm_add_epi32(s1, c0);
		p += 64;
	}
	t = _mm_shuffle_epi32(s0, 0x1B);                          /* FEBA */
	s1 = _mm_shuffle_epi32(s1, 0xB1);                         /* DCHG */
	s0 = _mm_blend_epi16(t, s1, 0xF0);                        /* DCBA */
	s1 = _mm_alignr_epi8(s1, t, 8);                           /* HGFE */
	_mm_storeu_si128((__m128i *)&h[0], s0);
	_mm_storeu_si128((__m128i *)&h[4], s1);
}

static void (*blocks_fn)(uint32_t *, const uint8_t *, size_t);

static void pick_impl(void)
{
	unsigned a, b, c, d;
	int ni = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)) &&
		 __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 19)) && (c & (1u << 9));
	if (getenv("CKIMG_SHA256_PORTABLE"))
		ni = 0;
	blocks_fn = ni ? blocks_ni : blocks_c;
}

static void blocks(uint32_t h[8], const uint8_t *p, size_t n)
{
	if (!blocks_fn)
		pick_impl();
	blocks_fn(h, p, n);
}

void sha256_init(struct sha256_ctx *c)
{
	static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
					0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
	memcpy(c->h, iv, sizeof(iv));
	c->total = 0;
	c->buf_len = 0;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	c->total += len;
	if (c->buf_len) {
		size_t take = 64 - c->buf_len < len ? 64 - c->buf_len : len;
		memcpy(c->buf + c->buf_len, p, take);
		c->buf_len += take;
		p += take;
		len -= take;
		if (c->buf_len < 64)
			return;
		blocks(c->h, c->buf, 1);
		c->buf_len = 0;
	}
	if (len >= 64) {
		blocks(c->h, p, len / 64);
		p += len & ~(size_t)63;
		len &= 63;
	}
	memcpy(c->buf, p, len);
	c->buf_len = len;
}

void sha256_final(struct sha256_ctx *c, uint8_t out[32])
{
	uint64_t bits = c->total * 8;
	uint8_t pad[72] = { 0x80 };
	size_t padlen = (c->buf_len < 56 ? 56 : 120) - c->buf_len;
	for (int i = 0; i < 8; i++)
		pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_update(c, pad, padlen + 8);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(c->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)c->h[i];
	}
}

int sha256_fd(int fd, uint8_t out[32])
{
	enum { BUF = 1 << 20 };
	struct sha256_ctx c;
	off_t off = 0;
	int err = 0;
	uint8_t *buf = malloc(BUF);

	if (!buf)
		return -ENOMEM;
	sha256_init(&c);
	for (;;) {
		ssize_t n = pread(fd, buf, BUF, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		sha256_update(&c, buf, (size_t)n);
		off += n;
	}
	if (!err)
		sha256_final(&c, out);
	free(buf);
	return err;
}
