/*
 * SHA-256 (FIPS 180-4), for the identity of mapped files (MAPPED_FILE.sha256). Uses the x86
 * SHA extensions when the CPU has them (checked once with CPUID), portable C otherwise.
 *
 * API (stable, shared by capture and restore):
 *   sha256_init(&ctx); sha256_update(&ctx, buf, len)...; sha256_final(&ctx, digest32);
 *   int sha256_fd(int fd, uint8_t out[32]): hash a whole file from offset 0 with pread,
 *     0 or -errno.
 */
#ifndef CK_SHA256_H
#define CK_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256_ctx {
	uint32_t h[8];
	uint64_t total;         /* bytes fed so far */
	uint8_t buf[64];
	size_t buf_len;
};

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
void sha256_final(struct sha256_ctx *c, uint8_t out[32]);
int sha256_fd(int fd, uint8_t out[32]);

#endif /* CK_SHA256_H */
