/*
 * CRC-32/ISO-HDLC as docs/FORMAT.md requires: zlib's crc32() (reflected 0xEDB88320, init and
 * final XOR 0xFFFFFFFF; ck_crc32(0, "123456789", 9) == 0xCBF43926). zlib picks its fastest
 * (PCLMUL/braided) implementation at run time.
 *
 * API (stable, shared by capture and restore):
 *   uint32_t ck_crc32(uint32_t crc, const void *buf, size_t len)
 *     Continue a CRC: start with crc = 0, feed pieces in order; returns the running value,
 *     which is also the final value (no separate finish step). Any len, including > 4 GiB.
 */
#ifndef CK_CRC32_H
#define CK_CRC32_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

static inline uint32_t ck_crc32(uint32_t crc, const void *buf, size_t len)
{
	/* crc32_z takes z_size_t (size_t), so no 4 GiB split is needed. */
	return (uint32_t)crc32_z(crc, (const Bytef *)buf, len);
}

#endif /* CK_CRC32_H */
