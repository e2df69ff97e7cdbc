/*
 * crc32.h: zlib's CRC-32 (the value of Python's zlib.crc32), for the accelerators that must
 * reproduce a value the Python side computes with it (_build.c: the trail index's key hashes;
 * _url.c: its bloom rule; _decode.c: the detector's duplicate-datagram key). Byte at a time from a
 * table: the inputs are short (names, path markers, the first 512 bytes of a datagram).
 * Call crc32_init() once (module init) before crc32_feed().
 */
#ifndef MALTRAIL_CRC32_H
#define MALTRAIL_CRC32_H

#include <stddef.h>
#include <stdint.h>

static uint32_t crc32_table[256];

static void
crc32_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc32_table[n] = c;
    }
}

/* the running (inverted) register `c` fed with s[0:n]; zlib.crc32(s) is
 * crc32_feed(0xFFFFFFFF, s, n) ^ 0xFFFFFFFF */
static uint32_t
crc32_feed(uint32_t c, const void *s, size_t n)
{
    const unsigned char *p = s;
    for (size_t k = 0; k < n; k++)
        c = crc32_table[(c ^ p[k]) & 0xFF] ^ (c >> 8);
    return c;
}

#endif
