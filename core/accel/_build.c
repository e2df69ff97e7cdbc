/*
 * core.accel._build: the placement loop of the trail index build, in C.
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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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

static PyMethodDef methods[] = {
    {"place", build_place, METH_VARARGS,
     "place(streams, chunks, table, bloom, mask, shift, half, mix, upper) -> (placed, fixups, spilled, overflow)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_build", "Placement loop of the trail index build (see core/accel).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__build(void)
{
    return PyModule_Create(&module);
}
