/*
 * Page-chunk decompression (FORMAT.md 4.8): LZ4 block (liblz4), LZF (the liblzf format,
 * decoded here), raw DEFLATE (zlib, windowBits -15). Every decoder must produce exactly the
 * raw size; anything else is BAD_CODEC. Inputs are hostile: no read or write leaves its buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <lz4.h>
#include <zlib.h>

#include "image.h"

/*
 * liblzf format: a control byte c.
 *   c < 32:  a literal run of c + 1 bytes follows.
 *   c >= 32: a back-reference: len = c >> 5 (7 means "7 + next byte"), then one more byte;
 *            distance = ((c & 0x1f) << 8) + that byte + 1; copy len + 2 bytes (may overlap).
 */
static int lzf_decode(const uint8_t *in, size_t ilen, uint8_t *out, size_t olen)
{
	const uint8_t *ip = in, *iend = in + ilen;
	uint8_t *op = out, *oend = out + olen;

	while (ip < iend) {
		size_t c = *ip++;

		if (c < 32) {
			size_t n = c + 1;
			if ((size_t)(iend - ip) < n || (size_t)(oend - op) < n)
				return -EBADMSG;
			memcpy(op, ip, n);
			op += n;
			ip += n;
		} else {
			size_t len = c >> 5, dist;
			if (len == 7) {
				if (ip >= iend)
					return -EBADMSG;
				len += *ip++;
			}
			if (ip >= iend)
				return -EBADMSG;
			dist = ((c & 0x1f) << 8) + *ip++ + 1;
			len += 2;
			if ((size_t)(op - out) < dist || (size_t)(oend - op) < len)
				return -EBADMSG;
			const uint8_t *ref = op - dist;
			if (dist >= len) {
				memcpy(op, ref, len);
				op += len;
			} else {
				while (len--)
					*op++ = *ref++;
			}
		}
	}
	return op == oend ? 0 : -EBADMSG;
}

static int deflate_decode(const uint8_t *in, size_t ilen, uint8_t *out, size_t olen)
{
	z_stream zs;
	int ret;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, -15) != Z_OK)
		return -ENOMEM;
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)ilen;
	zs.next_out = out;
	zs.avail_out = (uInt)olen;
	ret = inflate(&zs, Z_FINISH);
	inflateEnd(&zs);
	/* G7: the stream ends exactly at stored_size and yields exactly the raw size */
	return (ret == Z_STREAM_END && zs.total_out == olen && zs.avail_in == 0) ? 0 : -EBADMSG;
}

int rst_decompress(uint8_t codec, const uint8_t *src, size_t slen, uint8_t *dst, size_t dlen)
{
	switch (codec) {
	case CKIMG_CODEC_NONE:
		if (slen != dlen)
			return -EBADMSG;
		memcpy(dst, src, dlen);
		return 0;
	case CKIMG_CODEC_LZ4:
		if (slen > INT32_MAX || dlen > INT32_MAX)
			return -EBADMSG;
		return LZ4_decompress_safe((const char *)src, (char *)dst, (int)slen, (int)dlen) == (int)dlen
			? 0 : -EBADMSG;
	case CKIMG_CODEC_LZF:
		return lzf_decode(src, slen, dst, dlen);
	case CKIMG_CODEC_DEFLATE:
		return deflate_decode(src, slen, dst, dlen);
	default:
		return -EBADMSG;
	}
}
