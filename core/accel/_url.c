/*
 * core.accel._url: the bloom prefilters of an HTTP request path and of a domain name's suffixes, in C.
 *
 * Where it sits: core/detect.py `_url_trails`, through TrailStore.path_markers_maybe. A request
 * whose host has no URL trail can only hit a `/path` trail through one of its candidates, and
 * every candidate's URL marker (core/trails/index.py url_marker) is one of the markers that
 * core.urls.candidate_markers lists. The index's bloom holds every marker; when none of the
 * request's markers has both bloom bits set, no candidate can hit and the request is done.
 *
 * markers(path) -> list[bytes]
 *   The UTF-8 markers (0x02 + path prefix; 0x01 alone for a path of slashes only) of candidate_markers(path, ...), in no particular
 *   order, duplicates possible (tests compare it, as a set, with the Python function).
 * maybe(bloom, offset, shift, mix, path) -> bool
 *   False only when no marker of `path` has both of its bloom bits set: bit crc32(m) >> shift and
 *   bit (crc32(m) * mix mod 2**32) >> shift of the bit array at `bloom[offset:]` (the lookup rule
 *   of core/trails/store.py). A path that is not a str starting with "/" or cannot be encoded
 *   answers True (the caller then takes the full path). An offset outside `bloom` (here and in
 *   suffixes) is a ValueError.
 * suffixes(bloom, offset, shift, mix, name) -> int
 *   The domain walk's prefilter (core/detect/domains.py): bit k is set when the UTF-8 of the
 *   name without its first k labels (k = 0: the name; the candidates after each ".") has both
 *   bloom bits set, so only those candidates are looked up. -1 (every bit) for a name of more
 *   than 63 candidates; 0 for a name that is not a str or cannot be encoded (TrailStore.get
 *   answers None for every candidate then). The specification is core/trails/view.py
 *   suffixes_maybe_py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "crc32.h"

#define PATH_MARK 0x02
#define MAX_MARKERS 8


/* zlib.crc32 of `mark` followed by s[0:n] */
static uint32_t
marker_crc(char mark, const char *s, Py_ssize_t n)
{
    return crc32_feed(crc32_feed(0xFFFFFFFFu, &mark, 1), s, (size_t)n) ^ 0xFFFFFFFFu;
}

/* The bit array at `offset` in a buffer (the index's mapping). */
typedef struct {
    Py_buffer buffer;
    const unsigned char *bits;
    Py_ssize_t limit; /* bytes of bits */
} bloom_view;

/* Opens the bloom of `obj` at `offset`: 0, or -1 with an error (not a buffer; ValueError for an
 * offset outside it). Release v->buffer when done. */
static int
bloom_open(PyObject *obj, Py_ssize_t offset, bloom_view *v)
{
    if (PyObject_GetBuffer(obj, &v->buffer, PyBUF_SIMPLE) < 0)
        return -1;
    if (offset < 0 || offset > v->buffer.len) {
        PyBuffer_Release(&v->buffer);
        PyErr_SetString(PyExc_ValueError, "bloom offset outside the buffer");
        return -1;
    }
    v->bits = (const unsigned char *)v->buffer.buf + offset;
    v->limit = v->buffer.len - offset;
    return 0;
}

/* Both bloom bits of crc32 h set (the lookup rule of core/trails/store.py); a bit beyond a bloom
 * smaller than the rule implies counts as set: the prefilter never answers "absent" wrongly. */
static int
bloom_has(const unsigned char *bits, Py_ssize_t limit, uint32_t h, unsigned int shift, uint32_t mix)
{
    uint32_t b1 = h >> shift, b2 = (uint32_t)(h * mix) >> shift;
    if ((Py_ssize_t)(b1 >> 3) >= limit || (Py_ssize_t)(b2 >> 3) >= limit)
        return 1;
    return (bits[b1 >> 3] >> (b1 & 7) & 1) && (bits[b2 >> 3] >> (b2 & 7) & 1);
}

static Py_ssize_t
find_char(const char *s, Py_ssize_t from, Py_ssize_t to, char ch)
{
    for (Py_ssize_t k = from; k < to; k++)
        if (s[k] == ch)
            return k;
    return -1;
}

/* Length of url_marker(s[0:n]) without its mark byte; s starts with '/'. */
static Py_ssize_t
marker_len(const char *s, Py_ssize_t n)
{
    Py_ssize_t end = find_char(s, 0, n, '?');
    if (end < 0)
        end = n;
    Py_ssize_t first = find_char(s, 1, end, '/');
    if (first >= 0) {
        Py_ssize_t second = find_char(s, first + 1, end, '/');
        if (second >= 0)
            end = second;
    }
    return end;
}

typedef struct {
    const char *s;
    Py_ssize_t n;
    char mark; /* PATH_MARK, or HOST_MARK for url_marker("") */
} span;

#define HOST_MARK 0x01

/* The candidate_markers of path p[0:n] as spans into p or into `keys` (a scratch buffer for the
 * query-stripped form); returns the count, or -1 when the scratch buffer cannot be allocated. */
static int
collect(const char *p, Py_ssize_t n, span *out, char **keys)
{
    int count = 0;
    Py_ssize_t q = find_char(p, 0, n, '?');
    Py_ssize_t base_n = q < 0 ? n : q;
    out[count++] = (span){p, marker_len(p, base_n), PATH_MARK};
    if (!(n == 1 && p[0] == '/') && n > 0 && p[n - 1] == '/') {
        Py_ssize_t r = n;
        while (r > 0 && p[r - 1] == '/')
            r--;
        if (r > 0)
            out[count++] = (span){p, marker_len(p, r), PATH_MARK};
        else /* a path of slashes only: url_marker("") is the bare host mark */
            out[count++] = (span){p, 0, HOST_MARK};
    }
    if (q >= 0 && base_n > 0 && p[base_n - 1] == '/') { /* the base without its trailing slashes */
        Py_ssize_t r = base_n;
        while (r > 0 && p[r - 1] == '/')
            r--;
        if (r > 0)
            out[count++] = (span){p, marker_len(p, r), PATH_MARK};
    }
    Py_ssize_t eq = find_char(p, 0, n, '=');
    if (eq >= 0)
        out[count++] = (span){p, marker_len(p, eq + 1), PATH_MARK};
    Py_ssize_t slash = -1;
    for (Py_ssize_t k = base_n - 1; k >= 0; k--)
        if (p[k] == '/') {
            slash = k;
            break;
        }
    if (slash > 0)
        out[count++] = (span){p, marker_len(p, slash + 1), PATH_MARK};
    /* last = base[slash:]; slash >= 0 because the path starts with "/" */
    Py_ssize_t last_n = base_n - slash;
    int has_query = q >= 0 && q + 1 < n;
    if (!(last_n == 0 || (last_n == 1 && p[slash] == '/')) || has_query)
        out[count++] = (span){p + slash, marker_len(p + slash, last_n), PATH_MARK};
    if (has_query && find_char(p, q + 1, n, '/') >= 0) {
        /* keys: every &-part of the query cut after its first "=" (or kept whole) */
        *keys = PyMem_Malloc((size_t)(n - q) + 1);
        if (*keys == NULL)
            return -1;
        char *k = *keys;
        Py_ssize_t kn = 0, pos = q + 1;
        while (1) {
            Py_ssize_t amp = find_char(p, pos, n, '&');
            Py_ssize_t part_end = amp < 0 ? n : amp;
            Py_ssize_t e = find_char(p, pos, part_end, '=');
            Py_ssize_t take = e < 0 ? part_end - pos : e + 1 - pos;
            memcpy(k + kn, p + pos, (size_t)take);
            kn += take;
            if (amp < 0)
                break;
            k[kn++] = '&';
            pos = amp + 1;
        }
        Py_ssize_t ks = -1;
        for (Py_ssize_t j = kn - 1; j >= 0; j--)
            if (k[j] == '/') {
                ks = j;
                break;
            }
        if (ks >= 0) /* stripped[stripped.rfind("/"):] lies inside the keys */
            out[count++] = (span){k + ks, marker_len(k + ks, kn - ks), PATH_MARK};
    }
    return count;
}

static int
path_arg(PyObject *obj, const char **p, Py_ssize_t *n)
{
    if (!PyUnicode_Check(obj))
        return 0;
    *p = PyUnicode_AsUTF8AndSize(obj, n);
    if (*p == NULL) {
        PyErr_Clear(); /* not encodable (lone surrogates): the caller takes the full path */
        return 0;
    }
    return *n > 0 && (*p)[0] == '/';
}

static PyObject *
url_markers(PyObject *self, PyObject *arg)
{
    (void)self;
    const char *p;
    Py_ssize_t n;
    if (!path_arg(arg, &p, &n)) {
        PyErr_SetString(PyExc_ValueError, "path must be a str starting with '/'");
        return NULL;
    }
    span spans[MAX_MARKERS];
    char *keys = NULL;
    int count = collect(p, n, spans, &keys);
    if (count < 0)
        return PyErr_NoMemory();
    PyObject *out = PyList_New(count);
    for (int k = 0; out != NULL && k < count; k++) {
        PyObject *b = PyBytes_FromStringAndSize(NULL, spans[k].n + 1);
        if (b == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyBytes_AS_STRING(b)[0] = spans[k].mark;
        memcpy(PyBytes_AS_STRING(b) + 1, spans[k].s, (size_t)spans[k].n);
        PyList_SET_ITEM(out, k, b);
    }
    PyMem_Free(keys);
    return out;
}

static PyObject *
url_maybe(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *bloom_obj, *path_obj;
    Py_ssize_t offset;
    unsigned int shift;
    unsigned long mix;
    if (!PyArg_ParseTuple(args, "OnIkO", &bloom_obj, &offset, &shift, &mix, &path_obj))
        return NULL;
    const char *p;
    Py_ssize_t n;
    if (!path_arg(path_obj, &p, &n) || shift > 31)
        Py_RETURN_TRUE;
    bloom_view bloom;
    if (bloom_open(bloom_obj, offset, &bloom) < 0)
        return NULL;
    span spans[MAX_MARKERS];
    char *keys = NULL;
    int count = collect(p, n, spans, &keys);
    int maybe = count < 0; /* no scratch memory: say "maybe", the full path decides */
    for (int k = 0; !maybe && k < count; k++)
        maybe = bloom_has(bloom.bits, bloom.limit, marker_crc(spans[k].mark, spans[k].s, spans[k].n), shift,
                          (uint32_t)mix);
    PyMem_Free(keys);
    PyBuffer_Release(&bloom.buffer);
    return PyBool_FromLong(maybe);
}

#define MAX_SUFFIXES 63

static PyObject *
url_suffixes(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *bloom_obj, *name_obj;
    Py_ssize_t offset;
    unsigned int shift;
    unsigned long mix;
    if (!PyArg_ParseTuple(args, "OnIkO", &bloom_obj, &offset, &shift, &mix, &name_obj))
        return NULL;
    if (!PyUnicode_Check(name_obj))
        return PyLong_FromLong(0);
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(name_obj, &n);
    if (s == NULL) { /* lone surrogates: no candidate can be encoded, none can have a row */
        PyErr_Clear();
        return PyLong_FromLong(0);
    }
    Py_ssize_t dots = 0;
    for (Py_ssize_t k = 0; k < n; k++)
        dots += s[k] == '.';
    if (dots >= MAX_SUFFIXES || shift > 31)
        return PyLong_FromLong(-1);
    bloom_view bloom;
    if (bloom_open(bloom_obj, offset, &bloom) < 0)
        return NULL;
    uint64_t mask = 0;
    Py_ssize_t start = 0;
    for (int k = 0;; k++) {
        uint32_t h = crc32_feed(0xFFFFFFFFu, s + start, (size_t)(n - start)) ^ 0xFFFFFFFFu;
        if (bloom_has(bloom.bits, bloom.limit, h, shift, (uint32_t)mix))
            mask |= (uint64_t)1 << k;
        Py_ssize_t dot = find_char(s, start, n, '.');
        if (dot < 0)
            break;
        start = dot + 1;
    }
    PyBuffer_Release(&bloom.buffer);
    return PyLong_FromUnsignedLongLong(mask);
}

static PyMethodDef methods[] = {
    {"markers", url_markers, METH_O, "markers(path) -> list of UTF-8 markers (0x02 + prefix)"},
    {"maybe", url_maybe, METH_VARARGS, "maybe(bloom, offset, shift, mix, path) -> bool"},
    {"suffixes", url_suffixes, METH_VARARGS, "suffixes(bloom, offset, shift, mix, name) -> int (bit k: candidate k may have a row)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_url", "URL-path and domain-suffix bloom prefilters (see core/accel).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__url(void)
{
    crc32_init();
    return PyModule_Create(&module);
}
