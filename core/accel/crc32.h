/*
 * crc32.h: zlib's CRC-32 (the value of Python's zlib.crc32), for the accelerators that must
 * reproduce a value the Python side computes with it (_build.c: the trail index's key hashes;
 * _url.c: its bloom rule; _decode.c: the detector's duplicate-datagram key), eight bytes a step
 * from eight tables ("slicing by 8").
 * Call crc32_init() once (module init) before crc32_feed().
 */
#ifndef MALTRAIL_CRC32_H
#define MALTRAIL_CRC32_H

#include <stddef.h>
#include <stdint.h>

static uint32_t crc32_table[8][256]; /* [0]: the byte table; [k]: a byte followed by k zero bytes */

static void
crc32_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc32_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int k = 1; k < 8; k++)
            crc32_table[k][n] = crc32_table[0][crc32_table[k - 1][n] & 0xFF] ^ (crc32_table[k - 1][n] >> 8);
}

static inline uint32_t
crc32_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* the running (inverted) register `c` fed with s[0:n], eight bytes a step (slicing by 8);
 * zlib.crc32(s) is crc32_feed(0xFFFFFFFF, s, n) ^ 0xFFFFFFFF */
static uint32_t
crc32_feed(uint32_t c, const void *s, size_t n)
{
    const unsigned char *p = s;
    const uint32_t (*t)[256] = crc32_table;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t one = crc32_le32(p) ^ c, two = crc32_le32(p + 4);
        c = t[7][one & 0xFF] ^ t[6][(one >> 8) & 0xFF] ^ t[5][(one >> 16) & 0xFF] ^ t[4][one >> 24]
            ^ t[3][two & 0xFF] ^ t[2][(two >> 8) & 0xFF] ^ t[1][(two >> 16) & 0xFF] ^ t[0][two >> 24];
    }
    for (; n > 0; p++, n--)
        c = t[0][(c ^ *p) & 0xFF] ^ (c >> 8);
    return c;
}

#endif
