/*
 * LZF, byte-compatible with liblzf's lzf_compress/lzf_decompress format (no header):
 *   ctrl < 32          : a literal run of ctrl + 1 bytes follows;
 *   ctrl >= 32         : back reference, len = ctrl >> 5 (7 = "read one more byte and add it"),
 *                        offset = ((ctrl & 31) << 8 | next byte) + 1 back from the output
 *                        position, copy len + 2 bytes (may overlap).
 * Own implementation (not liblzf's code); offsets up to 8192, matches of 3..264 bytes.
 *
 * API (stable, shared by capture and restore):
 *   size_t lzf_compress(in, in_len, out, out_cap, state): bytes written, 0 when the output
 *     would not fit in out_cap (store raw then). state: a struct lzf_state, zeroed once
 *     (e.g. calloc) and reused across calls by one thread.
 *   long lzf_decompress(in, in_len, out, out_cap): bytes written or -EINVAL (corrupt input)
 *     / -E2BIG (output larger than out_cap).
 */
#ifndef CK_LZF_H
#define CK_LZF_H

#include <stddef.h>
#include <stdint.h>

#define LZF_HLOG 14
struct lzf_state {
	uint32_t htab[1u << LZF_HLOG];
};

size_t lzf_compress(const void *in, size_t in_len, void *out, size_t out_cap, struct lzf_state *st);
long lzf_decompress(const void *in, size_t in_len, void *out, size_t out_cap);

#endif /* CK_LZF_H */
