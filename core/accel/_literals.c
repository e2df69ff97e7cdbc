/*
 * core.accel._literals: "does any of these literals occur in this text", in C.
 *
 * Where it sits: the heuristics' literal gates (core/literals.py `gate`). A gate is
 * searched on every HTTP request path (and on unseen User-Agents) before any heuristic regex
 * runs; as a trie-shaped regular expression it costs about 1 µs per path, as this matcher a few
 * tens of ns. The regex stays the specification: tests compare both on the shipped pattern sets
 * and on random literal sets and texts.
 *
 * Gate(literals) -> object with search(text) -> True or None (the truth of re.search, so it
 * replaces a compiled gate at its call sites). Literals and texts are compared as UTF-8: an
 * encoded literal occurs in an encoded text exactly when the literal occurs in the text (UTF-8
 * is self-synchronising). An empty literal matches every text, as the empty regex does. A text
 * that cannot be encoded (lone surrogates) answers True: the caller then runs its regexes.
 *
 * Layout: literals of one byte mark a 256-entry table; longer ones set a bit for their first two
 * bytes in a 64 Ki-bit map and sit in an array sorted by those two bytes, so a text position
 * costs one table test and one bit test, and only a set bit leads to a binary search and memcmp
 * of the few literals that start with that pair.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    uint16_t bigram;
    Py_ssize_t len;
    char *bytes;
} literal;

typedef struct {
    PyObject_HEAD
    unsigned char single[256];
    unsigned char bigrams[65536 / 8];
    uint32_t start[257]; /* literals with first byte b: [start[b], start[b + 1]) */
    literal *items;
    Py_ssize_t count;
    int always;
} Gate;

static int
by_bigram(const void *a, const void *b)
{
    const literal *x = a, *y = b;
    if (x->bigram != y->bigram)
        return x->bigram < y->bigram ? -1 : 1;
    return x->len < y->len ? -1 : x->len > y->len;
}

static void
gate_dealloc(Gate *self)
{
    for (Py_ssize_t k = 0; k < self->count; k++)
        PyMem_Free(self->items[k].bytes);
    PyMem_Free(self->items);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
gate_init(Gate *self, PyObject *args, PyObject *kwargs)
{
    PyObject *iterable;
    static char *keywords[] = {"literals", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O", keywords, &iterable))
        return -1;
    if (self->items != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Gate is already initialised");
        return -1;
    }
    PyObject *seq = PySequence_Fast(iterable, "literals must be an iterable of str");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    self->items = PyMem_Calloc((size_t)(n ? n : 1), sizeof(literal));
    if (self->items == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, k);
        if (!PyUnicode_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "literals must be str");
            Py_DECREF(seq);
            return -1;
        }
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(item, &len);
        if (text == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        if (len == 0) {
            self->always = 1;
            continue;
        }
        if (len == 1) {
            self->single[(unsigned char)text[0]] = 1;
            continue;
        }
        literal *lit = &self->items[self->count];
        lit->bytes = PyMem_Malloc((size_t)len);
        if (lit->bytes == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(lit->bytes, text, (size_t)len);
        lit->len = len;
        lit->bigram = (uint16_t)(((unsigned char)text[0] << 8) | (unsigned char)text[1]);
        self->bigrams[lit->bigram >> 3] |= (unsigned char)(1 << (lit->bigram & 7));
        self->count++;
    }
    Py_DECREF(seq);
    qsort(self->items, (size_t)self->count, sizeof(literal), by_bigram);
    Py_ssize_t k = 0;
    for (int b = 0; b < 256; b++) {
        self->start[b] = (uint32_t)k;
        while (k < self->count && (self->items[k].bigram >> 8) == b)
            k++;
    }
    self->start[256] = (uint32_t)self->count;
    return 0;
}

static int
occurs(const Gate *self, const unsigned char *t, Py_ssize_t n)
{
    if (self->always)
        return 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned c = t[i];
        if (self->single[c])
            return 1;
        if (i + 1 >= n)
            break;
        unsigned bg = (c << 8) | t[i + 1];
        if (!(self->bigrams[bg >> 3] >> (bg & 7) & 1))
            continue;
        uint32_t lo = self->start[c], hi = self->start[c + 1];
        while (lo < hi) { /* first literal with this bigram (sorted by bigram) */
            uint32_t mid = lo + (hi - lo) / 2;
            if (self->items[mid].bigram < bg)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (uint32_t k = lo; k < self->start[c + 1] && self->items[k].bigram == bg; k++) {
            const literal *lit = &self->items[k];
            if (lit->len <= n - i && memcmp(t + i, lit->bytes, (size_t)lit->len) == 0)
                return 1;
        }
    }
    return 0;
}

static PyObject *
gate_search(Gate *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "search() takes a str");
        return NULL;
    }
    Py_ssize_t n;
    const char *t = PyUnicode_AsUTF8AndSize(text, &n);
    if (t == NULL) {
        PyErr_Clear(); /* lone surrogates: say "maybe", the regexes decide */
        Py_RETURN_TRUE;
    }
    if (occurs(self, (const unsigned char *)t, n))
        Py_RETURN_TRUE;
    Py_RETURN_NONE;
}

static PyMethodDef gate_methods[] = {
    {"search", (PyCFunction)gate_search, METH_O, "search(text) -> True when a literal occurs, else None"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "core.accel._literals.Gate",
    .tp_basicsize = sizeof(Gate),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Gate(literals): search(text) is True when any literal occurs in text, else None",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)gate_init,
    .tp_dealloc = (destructor)gate_dealloc,
    .tp_methods = gate_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_literals", "Literal gates of the heuristics (see core/accel).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__literals(void)
{
    if (PyType_Ready(&GateType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&GateType);
    if (PyModule_AddObject(m, "Gate", (PyObject *)&GateType) < 0) {
        Py_DECREF(&GateType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
