/*
 * core.accel._build: the placement and common-line parse loops of the trail index build, in C.
 *
 * Where it sits: core/trails/build.py `_Grid._region` (its specification, which runs when this
 * module is not built) places every parsed key of one table region into the linear-probing
 * table and sets its two bloom bits; in Python that is about 1.2 us per key, a second of a
 * first start with the 1.6M-row set. Tests build indexes both ways and compare them byte for
 * byte, and compare both loops on crafted streams (equal hashes, duplicate keys, probes that
 * cross the region end).
 *
 * place(streams, chunks, table, bloom, mask, shift, half, mix, upper)
 *     -> (placed, fixups, spilled, overflow)
 *   streams: list of (hashes, offsets, base): array('I') of key crc32s and record offsets
 *            (relative to base) in file order;
 *   chunks:  list of (base, bytearray): the records, each chunk starting at global offset base
 *            (records: uint32 pair id, uint16 key length, key bytes; little-endian);
 *   table:   writable uint32 buffer, slot j = (crc32, global record offset), offset 0 = empty;
 *   bloom:   writable byte buffer; bits h >> shift and (h * mix mod 2^32) >> shift;
 *   keys whose home slot (h & mask) lies in the region (home >= half when upper, else below)
 *   are placed; a later copy of a key already placed gives a fix-up (offset of the placed
 *   record, the later pair id), also written into the placed record when not upper; a lower
 *   key whose probe reaches slot 2 * half is put aside as (h, offset) in spilled; an upper key
 *   whose probe reaches the table's end sets overflow (the caller raises).
 *
 * feed(lines, i, pair_ids, records, hashes, offsets, port_ips, url_offsets) -> index
 *   The common CSV lines of core/trails/build.py `_Part.feed_lines` (its specification), from
 *   lines[i] on, until the first line it leaves to Python (returned; len(lines) when none): a
 *   line `key,info,reference` without quotes whose `info,reference` is already in pair_ids, with
 *   an ASCII key of 1..65535 bytes that is, lower-cased, a domain-charset name that does not look
 *   like an IPv4 address, a key holding a "/" that is not a User-Agent trail (`ua:`; its record
 *   offset appended to url_offsets, for its marker), or an
 *   IPv4:port that inet_pton and the port range accept (the address joins port_ips). Each is
 *   appended as Python does: crc32 to hashes, the record's offset to offsets, the record to
 *   records.
 *
 * remap(records, offsets, remap) -> None
 *   The pair-id rewrite of core/trails/build.py `_remap_py` (its specification): for each record
 *   offset, the record's uint32 pair id p becomes remap[p] (the helper's part of a two-process
 *   parse numbers its pairs on its own; in Python that is half a second of a first start).
 *   records: writable bytes; offsets, remap: uint32 buffers. An offset whose head does not fit
 *   or a pair id past remap raises ValueError (records before it are already rewritten).
 */


#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "crc32.h"

/* zlib.crc32(data) */
static uint32_t
crc32_of(const unsigned char *p, Py_ssize_t n)
{
    return crc32_feed(0xFFFFFFFFu, p, (size_t)n) ^ 0xFFFFFFFFu;
}

typedef struct {
    unsigned long long base;
    Py_buffer view;
} chunk;

static uint32_t
le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The chunk holding global record offset `off` (and room for its 6-byte head), or NULL. */
static unsigned char *
record_at(chunk *chunks, Py_ssize_t count, unsigned long long off, Py_ssize_t *room)
{
    for (Py_ssize_t c = count - 1; c >= 0; c--) {
        if (off >= chunks[c].base) {
            unsigned long long local = off - chunks[c].base;
            if (local + 6 > (unsigned long long)chunks[c].view.len)
                return NULL;
            *room = chunks[c].view.len - (Py_ssize_t)local;
            return (unsigned char *)chunks[c].view.buf + local;
        }
    }
    return NULL;
}

static PyObject *
build_place(PyObject *self, PyObject *args)
{
    PyObject *streams, *chunk_list;
    Py_buffer table = {0}, bloom = {0};
    unsigned long long mask, half, mix;
    int shift, upper;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!w*w*KiKKp", &PyList_Type, &streams, &PyList_Type, &chunk_list, &table, &bloom,
                          &mask, &shift, &half, &mix, &upper))
        return NULL;
    PyObject *result = NULL, *fixups = PyList_New(0), *spilled = PyList_New(0);
    Py_ssize_t nchunks = PyList_GET_SIZE(chunk_list), got = 0;
    chunk *chunks = PyMem_Calloc((size_t)(nchunks ? nchunks : 1), sizeof(chunk));
    if (fixups == NULL || spilled == NULL || chunks == NULL)
        goto done;
    if (table.len % 8 != 0 || shift < 0 || shift > 31 || (unsigned long long)bloom.len * 8 < (0xFFFFFFFFull >> shift) + 1) {
        PyErr_SetString(PyExc_ValueError, "place: table of slot pairs, bloom covering every bit");
        goto done;
    }
    for (; got < nchunks; got++) {
        PyObject *item = PyList_GET_ITEM(chunk_list, got);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "place: chunks are (base, bytearray)");
            goto done;
        }
        chunks[got].base = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(item, 0));
        if (PyErr_Occurred() || PyObject_GetBuffer(PyTuple_GET_ITEM(item, 1), &chunks[got].view, PyBUF_WRITABLE) < 0)
            goto done;
    }
    uint32_t *slots = (uint32_t *)table.buf;
    unsigned char *bits = (unsigned char *)bloom.buf;
    unsigned long long words = (unsigned long long)table.len / 4;
    unsigned long long stop = upper ? words : 2 * half;
    if (stop > words)
        stop = words;
    Py_ssize_t placed = 0;
    int overflow = 0;
    for (Py_ssize_t s = 0; s < PyList_GET_SIZE(streams) && !overflow; s++) {
        PyObject *stream = PyList_GET_ITEM(streams, s);
        Py_buffer hv = {0}, ov = {0};
        unsigned long long base;
        if (!PyTuple_Check(stream) || PyTuple_GET_SIZE(stream) != 3) {
            PyErr_SetString(PyExc_TypeError, "place: streams are (hashes, offsets, base)");
            goto done;
        }
        base = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(stream, 2));
        if (PyErr_Occurred())
            goto done;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(stream, 0), &hv, PyBUF_SIMPLE) < 0)
            goto done;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(stream, 1), &ov, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&hv);
            goto done;
        }
        int bad = hv.len != ov.len || hv.len % 4 != 0;
        const unsigned char *hp = hv.buf, *op = ov.buf;
        Py_ssize_t n = bad ? 0 : hv.len / 4;
        for (Py_ssize_t k = 0; k < n; k++) {
            uint32_t h;
            uint32_t rel;
            memcpy(&h, hp + 4 * k, 4);  /* array('I'): native order, as the Python loop reads it */
            memcpy(&rel, op + 4 * k, 4);
            unsigned long long home = h & mask;
            if ((home >= half) != (upper != 0))
                continue;
            unsigned long long off = rel + base;
            unsigned long long j = home << 1;
            if (off > 0xFFFFFFFFull) {
                PyErr_SetString(PyExc_ValueError, "place: record offset beyond 32 bits");
                bad = 2;
                break;
            }
            for (;;) {
                if (j >= stop) {
                    if (upper) {
                        overflow = 1;
                        break;
                    }
                    PyObject *pair = Py_BuildValue("(kK)", (unsigned long)h, off);
                    if (pair == NULL || PyList_Append(spilled, pair) < 0) {
                        Py_XDECREF(pair);
                        bad = 2;
                        break;
                    }
                    Py_DECREF(pair);
                    break;
                }
                uint32_t taken = slots[j + 1];
                if (taken == 0) {
                    slots[j] = h;
                    slots[j + 1] = (uint32_t)off;
                    uint32_t bit = h >> shift;
                    bits[bit >> 3] |= (unsigned char)(1u << (bit & 7));
                    bit = (uint32_t)((unsigned long long)h * mix & 0xFFFFFFFFull) >> shift;
                    bits[bit >> 3] |= (unsigned char)(1u << (bit & 7));
                    placed++;
                    break;
                }
                if (slots[j] == h) {
                    Py_ssize_t room_a = 0, room_b = 0;
                    unsigned char *a = record_at(chunks, nchunks, taken, &room_a);
                    unsigned char *b = record_at(chunks, nchunks, off, &room_b);
                    if (a == NULL || b == NULL) {
                        PyErr_SetString(PyExc_ValueError, "place: record offset outside the records");
                        bad = 2;
                        break;
                    }
                    unsigned klen = (unsigned)b[4] | (unsigned)b[5] << 8;
                    if (((unsigned)a[4] | (unsigned)a[5] << 8) == klen && room_a >= 6 + (Py_ssize_t)klen &&
                            room_b >= 6 + (Py_ssize_t)klen && memcmp(a + 6, b + 6, klen) == 0) {
                        uint32_t pid = le32(b);
                        PyObject *fix = Py_BuildValue("(kk)", (unsigned long)taken, (unsigned long)pid);
                        if (fix == NULL || PyList_Append(fixups, fix) < 0) {
                            Py_XDECREF(fix);
                            bad = 2;
                            break;
                        }
                        Py_DECREF(fix);
                        if (!upper)  /* a later duplicate: last row wins */
                            memcpy(a, b, 4);
                        break;
                    }
                }
                j += 2;
            }
            if (bad || overflow)
                break;
        }
        PyBuffer_Release(&hv);
        PyBuffer_Release(&ov);
        if (bad == 1) {
            PyErr_SetString(PyExc_ValueError, "place: hashes and offsets of one stream differ in length");
            goto done;
        }
        if (bad)
            goto done;
    }
    result = Py_BuildValue("(nOOi)", placed, fixups, spilled, overflow);
done:
    for (Py_ssize_t c = 0; c < got; c++)
        PyBuffer_Release(&chunks[c].view);
    PyMem_Free(chunks);
    Py_XDECREF(fixups);
    Py_XDECREF(spilled);
    if (table.obj != NULL)
        PyBuffer_Release(&table);
    if (bloom.obj != NULL)
        PyBuffer_Release(&bloom);
    return result;
}


#define MAX_FIELD 0xFFFF
#define DOMAIN_CHAR 1
#define IPV4_CHAR 2

static unsigned char char_class[256];

static void
fill_char_class(void)
{
    const char *domain = "abcdefghijklmnopqrstuvwxyz0123456789.-_", *ipv4 = "0123456789.";
    for (const char *c = domain; *c; c++)
        char_class[(unsigned char)*c] |= DOMAIN_CHAR;
    for (const char *c = ipv4; *c; c++)
        char_class[(unsigned char)*c] |= IPV4_CHAR;
}

/* Appends n uint32 values to an array('I') through its frombytes method. */
static int
extend_u32(PyObject *arr, const uint32_t *values, Py_ssize_t n)
{
    if (n == 0)
        return 0;
    PyObject *r = PyObject_CallMethod(arr, "frombytes", "y#", (const char *)values, n * (Py_ssize_t)sizeof(uint32_t));
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *
build_feed(PyObject *self, PyObject *args)
{
    PyObject *lines, *pair_ids, *records, *hashes, *offsets, *port_ips, *url_offsets;
    Py_ssize_t i;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!nO!O!OOO!O", &PyList_Type, &lines, &i, &PyDict_Type, &pair_ids,
                          &PyByteArray_Type, &records, &hashes, &offsets, &PySet_Type, &port_ips, &url_offsets))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(lines), cap = 0, count = 0, urls = 0;
    uint32_t *hs = NULL, *os = NULL, *us = NULL;
    int failed = 0;
    unsigned char kb[MAX_FIELD + 3];
    for (; i < n; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyBytes_Check(line))
            break;
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(line);
        Py_ssize_t len = PyBytes_GET_SIZE(line);
        if (memchr(p, '"', (size_t)len) != NULL)
            break;
        const unsigned char *comma = memchr(p, ',', (size_t)len);
        if (comma == NULL)
            break;
        Py_ssize_t klen = comma - p;
        const unsigned char *tail = comma + 1;
        Py_ssize_t tlen = len - klen - 1;
        const unsigned char *second = memchr(tail, ',', (size_t)tlen);
        if (second == NULL || memchr(second + 1, ',', (size_t)(tail + tlen - second - 1)) != NULL)
            break;
        if (klen < 1 || klen > MAX_FIELD)
            break;
        PyObject *tail_obj = PyBytes_FromStringAndSize((const char *)tail, tlen);
        if (tail_obj == NULL) {
            failed = 1;
            break;
        }
        PyObject *pid_obj = PyDict_GetItemWithError(pair_ids, tail_obj);
        Py_DECREF(tail_obj);
        if (pid_obj == NULL) {
            if (PyErr_Occurred())
                failed = 1;
            break;
        }
        long pid = PyLong_AsLong(pid_obj);
        if (pid == -1 && PyErr_Occurred()) {
            failed = 1;
            break;
        }
        if (pid < 0 || pid > 0xFFFFFFFFL)
            break;
        int ascii = 1, slash = 0, domain = 1, ipv4 = 1, colons = 0, ipv4_port = 1;
        for (Py_ssize_t k = 0; k < klen; k++) {
            unsigned char c = p[k];
            if (c >= 0x80) {
                ascii = 0;
                break;
            }
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c + 32);
            kb[k] = c;
            slash |= c == '/';
            domain &= (char_class[c] & DOMAIN_CHAR) != 0;
            ipv4 &= (char_class[c] & IPV4_CHAR) != 0;
            ipv4_port &= (char_class[c] & IPV4_CHAR) != 0 || c == ':';
            colons += c == ':';
        }
        if (!ascii)
            break;
        Py_ssize_t size = klen;
        const unsigned char *key = kb;
        unsigned char packed_key[7];
        if (slash || domain) {
            if (kb[klen - 1] < 58 && ipv4)
                break;  /* looks like an IPv4 address: classify() */
            if (klen >= 3 && kb[0] == 'u' && kb[1] == 'a' && kb[2] == ':')
                break;  /* a User-Agent trail (ua:...): classify() */
        } else if (ipv4_port && colons == 1) {
            const unsigned char *colon = memchr(kb, ':', (size_t)klen);
            Py_ssize_t hlen = colon - kb, plen = klen - hlen - 1;
            char host[16];
            struct in_addr addr;
            if (hlen >= (Py_ssize_t)sizeof host || plen < 1 || plen > 5)
                break;
            memcpy(host, kb, (size_t)hlen);
            host[hlen] = 0;
            if (inet_pton(AF_INET, host, &addr) != 1)
                break;
            long number = 0;
            int digits = 1;
            for (Py_ssize_t k = 0; k < plen; k++) {
                digits &= colon[1 + k] >= '0' && colon[1 + k] <= '9';
                number = number * 10 + (colon[1 + k] - '0');
            }
            if (!digits || !(0 < number && number < 65536))
                break;  /* int() refuses it, or out of range: classify() */
            packed_key[0] = 0xFE;
            memcpy(packed_key + 1, &addr.s_addr, 4);  /* network order, as inet_pton gives it */
            packed_key[5] = (unsigned char)(number >> 8);
            packed_key[6] = (unsigned char)(number & 0xFF);
            PyObject *packed = PyBytes_FromStringAndSize((const char *)packed_key + 1, 4);
            if (packed == NULL || PySet_Add(port_ips, packed) < 0) {
                Py_XDECREF(packed);
                failed = 1;
                break;
            }
            Py_DECREF(packed);
            key = packed_key;
            size = 7;
        } else {
            break;  /* anything else: classify() */
        }
        if (count == cap) {
            Py_ssize_t grow = cap ? 2 * cap : 1024;
            uint32_t *nh = PyMem_Realloc(hs, (size_t)grow * sizeof(uint32_t));
            if (nh == NULL) {
                failed = 1;
                PyErr_NoMemory();
                break;
            }
            hs = nh;
            uint32_t *no = PyMem_Realloc(os, (size_t)grow * sizeof(uint32_t));
            if (no == NULL) {
                failed = 1;
                PyErr_NoMemory();
                break;
            }
            os = no;
            uint32_t *nu = PyMem_Realloc(us, (size_t)grow * sizeof(uint32_t));
            if (nu == NULL) {
                failed = 1;
                PyErr_NoMemory();
                break;
            }
            us = nu;
            cap = grow;
        }
        Py_ssize_t at = PyByteArray_GET_SIZE(records);
        if (at > 0xFFFFFFFFLL - 6 - size) {
            PyErr_SetString(PyExc_ValueError, "feed: records beyond 32-bit offsets");
            failed = 1;
            break;
        }
        if (PyByteArray_Resize(records, at + 6 + size) < 0) {
            failed = 1;
            break;
        }
        unsigned char *r = (unsigned char *)PyByteArray_AS_STRING(records) + at;
        r[0] = (unsigned char)(pid & 0xFF);
        r[1] = (unsigned char)(pid >> 8 & 0xFF);
        r[2] = (unsigned char)(pid >> 16 & 0xFF);
        r[3] = (unsigned char)(pid >> 24 & 0xFF);
        r[4] = (unsigned char)(size & 0xFF);
        r[5] = (unsigned char)(size >> 8 & 0xFF);
        memcpy(r + 6, key, (size_t)size);
        hs[count] = crc32_of(key, size);
        os[count] = (uint32_t)at;
        count++;
        if (slash)
            us[urls++] = (uint32_t)at;
    }
    PyObject *result = NULL;
    if (!failed && extend_u32(hashes, hs, count) == 0 && extend_u32(offsets, os, count) == 0 &&
            extend_u32(url_offsets, us, urls) == 0)
        result = PyLong_FromSsize_t(i);
    PyMem_Free(hs);
    PyMem_Free(os);
    PyMem_Free(us);
    return result;
}

static PyObject *
build_remap(PyObject *self, PyObject *args)
{
    Py_buffer records = {0}, offsets = {0}, remap = {0};
    (void)self;
    if (!PyArg_ParseTuple(args, "w*y*y*", &records, &offsets, &remap))
        return NULL;
    PyObject *result = NULL;
    if (offsets.len % 4 != 0 || remap.len % 4 != 0) {
        PyErr_SetString(PyExc_ValueError, "offsets and remap must be uint32 arrays");
        goto done;
    }
    unsigned char *rec = (unsigned char *)records.buf;
    const uint32_t *offs = (const uint32_t *)offsets.buf, *map = (const uint32_t *)remap.buf;
    Py_ssize_t n = offsets.len / 4, pairs = remap.len / 4;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t off = offs[i];
        if ((Py_ssize_t)off + 4 > records.len) {
            PyErr_Format(PyExc_ValueError, "record offset %u past the records", off);
            goto done;
        }
        uint32_t pid = le32(rec + off);
        if ((Py_ssize_t)pid >= pairs) {
            PyErr_Format(PyExc_ValueError, "pair id %u past the remap table", pid);
            goto done;
        }
        uint32_t to = map[pid];
        rec[off] = (unsigned char)to;
        rec[off + 1] = (unsigned char)(to >> 8);
        rec[off + 2] = (unsigned char)(to >> 16);
        rec[off + 3] = (unsigned char)(to >> 24);
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&records);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&remap);
    return result;
}

static PyMethodDef methods[] = {
    {"remap", build_remap, METH_VARARGS, "remap(records, offsets, remap) -> None: pair ids rewritten through remap"},
    {"feed", build_feed, METH_VARARGS,
     "feed(lines, i, pair_ids, records, hashes, offsets, port_ips, url_offsets) -> index of the first line left"},
    {"place", build_place, METH_VARARGS,
     "place(streams, chunks, table, bloom, mask, shift, half, mix, upper) -> (placed, fixups, spilled, overflow)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_build", "Parse and placement loops of the trail index build (see core/accel).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__build(void)
{
    crc32_init();
    fill_char_class();
    return PyModule_Create(&module);
}
