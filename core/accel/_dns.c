/*
 * core.accel._dns: the DNS message parser of core/protocols/dns.py, in C.
 *
 * Where it sits: protocols stage. detect.py calls core.protocols.dns.parse on port-53 payloads;
 * when this module is built, that name is bound to parse() below. The pure-Python function
 * (core.protocols.dns.parse_py) stays the specification: for every bytes input and both `tcp`
 * values this returns an equal DnsMessage (same field values and types) or None in the same
 * cases. tests/test_accel_dns.py compares both on structured, mutated and random messages.
 *
 * parse(payload: bytes, tcp: bool = False) -> DnsMessage | None
 *   Never reads outside `payload`; never raises for any bytes input (only MemoryError, and
 *   TypeError when `payload` is not bytes or RuntimeError before init()).
 * init(message_type, answer_type): the DnsMessage and DnsAnswer NamedTuple classes. Records are
 *   built as tuple.__new__ builds tuple subclasses (tp_alloc + items), so isinstance and the
 *   classes' methods (a_records) work on them.
 *
 * Name rules mirrored from _read_name: compression pointers are followed (at most 32 jumps,
 * target inside the message), label lengths 64-191 are malformed, the name (label octets plus
 * the root octet) may not exceed 255 octets; labels are joined with ".", ASCII letters are
 * lower-cased, the bytes are decoded latin-1; the name is "bad" when a label holds a byte other
 * than [A-Za-z0-9_-] (a "." inside a label included).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_ANSWERS 32
#define MAX_QUESTIONS 8
#define MAX_POINTER_JUMPS 32
#define MAX_NAME_OCTETS 255

#define TYPE_NS 2
#define TYPE_CNAME 5
#define TYPE_PTR 12
#define TYPE_DNAME 39

static PyTypeObject *message_type = NULL;
static PyTypeObject *answer_type = NULL;

/* Per byte: bit 0 = allowed in an ordinary host-name label ([A-Za-z0-9_-]). */
static unsigned char label_ok[256];
static unsigned char lower[256];

typedef struct {
    Py_ssize_t after;       /* offset just after the name in the message */
    Py_ssize_t len;         /* length of text[] */
    int bad;                /* a label holds a byte outside [A-Za-z0-9_-] */
    int high;               /* text holds a byte >= 0x80 (latin-1, not ASCII) */
    unsigned char text[MAX_NAME_OCTETS + 1];  /* labels joined by '.', lower-cased */
} dns_name;

static inline unsigned
u16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

/* Decode the name at `off`; 1 and `out` filled, or 0 when malformed. With `want_text` 0 only the
 * validity and `out->after` are computed (used for skipped questions). */
static int
read_name(const unsigned char *msg, Py_ssize_t off, Py_ssize_t end, dns_name *out, int want_text)
{
    Py_ssize_t after = -1, len = 0;
    int jumps = 0, octets = 1, labels = 0, bad = 0, high = 0;

    for (;;) {
        if (off >= end)
            return 0;
        unsigned n = msg[off];
        if (n == 0) {
            off++;
            break;
        }
        if (n >= 0xC0) {
            if (off + 1 >= end)
                return 0;
            if (after < 0)
                after = off + 2;
            jumps++;
            off = (Py_ssize_t)(((n & 0x3F) << 8) | msg[off + 1]);
            if (jumps > MAX_POINTER_JUMPS || off >= end)
                return 0;
            continue;
        }
        if (n > 63)
            return 0;
        octets += (int)n + 1;
        if (octets > MAX_NAME_OCTETS)
            return 0;
        Py_ssize_t start = off + 1;
        off = start + (Py_ssize_t)n;
        if (off > end)
            return 0;
        if (want_text) {
            /* octets <= 255 bounds len: sum(n) + (labels - 1) <= 253 */
            if (labels)
                out->text[len++] = '.';
            for (Py_ssize_t i = start; i < off; i++) {
                unsigned char c = msg[i];
                bad |= !label_ok[c];
                high |= c >= 0x80;
                out->text[len++] = lower[c];
            }
        }
        labels++;
    }
    out->after = after >= 0 ? after : off;
    out->len = len;
    out->bad = bad;
    out->high = high;
    return 1;
}

static PyObject *
name_str(const dns_name *name)
{
    PyObject *s = PyUnicode_New(name->len, name->high ? 0xFF : 0x7F);
    if (s != NULL && name->len)
        memcpy(PyUnicode_1BYTE_DATA(s), name->text, (size_t)name->len);
    return s;
}

/* A new instance of the tuple subclass `type` holding the n references in items (stolen). */
static PyObject *
new_record(PyTypeObject *type, PyObject **items, Py_ssize_t n)
{
    PyObject *record = type->tp_alloc(type, n);
    if (record == NULL) {
        for (Py_ssize_t i = 0; i < n; i++)
            Py_XDECREF(items[i]);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (items[i] == NULL) {  /* a failed allocation among the items */
            for (Py_ssize_t k = i + 1; k < n; k++)
                Py_XDECREF(items[k]);
            Py_DECREF(record);
            return NULL;
        }
        PyTuple_SET_ITEM(record, i, items[i]);
    }
    return record;
}

/* One answer record at `*off`: 1 parsed (*answer set, *off advanced), 0 cut or malformed,
 * -1 error (MemoryError set). */
static int
read_answer(const unsigned char *msg, Py_ssize_t *off, Py_ssize_t end, PyObject *qname,
            PyObject **answer)
{
    Py_ssize_t at = *off;
    PyObject *owner;
    dns_name name;

    if (at + 2 <= end && msg[at] == 0xC0 && msg[at + 1] == 12) {
        owner = Py_NewRef(qname);  /* the usual pointer back to the question name */
        at += 2;
    } else {
        if (!read_name(msg, at, end, &name, 1))
            return 0;
        at = name.after;
        owner = NULL;
    }
    if (at + 10 > end) {
        Py_XDECREF(owner);
        return 0;
    }
    unsigned rtype = u16(msg + at);
    uint32_t ttl = ((uint32_t)u16(msg + at + 4) << 16) | u16(msg + at + 6);
    Py_ssize_t rdlength = (Py_ssize_t)u16(msg + at + 8);
    at += 10;
    if (at + rdlength > end) {
        Py_XDECREF(owner);
        return 0;
    }
    if (owner == NULL && (owner = name_str(&name)) == NULL)
        return -1;
    PyObject *rdata = NULL;
    if (rtype == TYPE_NS || rtype == TYPE_CNAME || rtype == TYPE_PTR || rtype == TYPE_DNAME) {
        dns_name target;  /* as in Python: the target may run past rdlength, not past the message */
        if (read_name(msg, at, end, &target, 1))
            rdata = name_str(&target);
        else
            rdata = PyBytes_FromStringAndSize((const char *)msg + at, rdlength);
    } else {
        rdata = PyBytes_FromStringAndSize((const char *)msg + at, rdlength);
    }
    PyObject *items[4] = {owner, PyLong_FromUnsignedLong(rtype), PyLong_FromUnsignedLong(ttl), rdata};
    *answer = new_record(answer_type, items, 4);
    if (*answer == NULL)
        return -1;
    *off = at + rdlength;
    return 1;
}

/* Skip the remaining questions, then read up to MAX_ANSWERS answers. Sets *answers (a new tuple)
 * and *complete; returns -1 on MemoryError. */
static int
parse_answers(const unsigned char *msg, Py_ssize_t off, Py_ssize_t end, unsigned qdcount,
              unsigned ancount, PyObject *qname, PyObject **answers, int *complete)
{
    PyObject *items[MAX_ANSWERS];
    Py_ssize_t count = 0;
    dns_name skipped;
    unsigned questions = qdcount < MAX_QUESTIONS ? qdcount : MAX_QUESTIONS;
    unsigned wanted = ancount < MAX_ANSWERS ? ancount : MAX_ANSWERS;

    *complete = 0;
    for (unsigned i = 1; i < questions; i++) {
        if (!read_name(msg, off, end, &skipped, 0) || skipped.after + 4 > end)
            return (*answers = PyTuple_New(0)) == NULL ? -1 : 0;
        off = skipped.after + 4;
    }
    if (qdcount > MAX_QUESTIONS)
        return (*answers = PyTuple_New(0)) == NULL ? -1 : 0;
    int status = 1;
    while ((unsigned)count < wanted) {
        status = read_answer(msg, &off, end, qname, &items[count]);
        if (status <= 0)
            break;
        count++;
    }
    if (status < 0) {
        for (Py_ssize_t i = 0; i < count; i++)
            Py_DECREF(items[i]);
        return -1;
    }
    *complete = status > 0 && ancount <= MAX_ANSWERS;
    *answers = PyTuple_New(count);
    if (*answers == NULL) {
        for (Py_ssize_t i = 0; i < count; i++)
            Py_DECREF(items[i]);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++)
        PyTuple_SET_ITEM(*answers, i, items[i]);
    return 0;
}

static PyObject *
parse_message(const unsigned char *payload, Py_ssize_t size, int tcp)
{
    const unsigned char *msg = payload;
    Py_ssize_t end = size;
    dns_name name;

    if (tcp) {
        if (size < 14)
            Py_RETURN_NONE;
        Py_ssize_t length = (Py_ssize_t)u16(payload);
        msg = payload + 2;
        end = size - 2 < length ? size - 2 : length;
    }
    if (end < 12)
        Py_RETURN_NONE;
    unsigned ident = u16(msg), flags = u16(msg + 2), qdcount = u16(msg + 4), ancount = u16(msg + 6);
    if (qdcount == 0 || !read_name(msg, 12, end, &name, 1))
        Py_RETURN_NONE;
    Py_ssize_t off = name.after;
    if (off + 4 > end)
        Py_RETURN_NONE;
    unsigned qtype = u16(msg + off), qclass = u16(msg + off + 2);
    off += 4;
    int is_response = (flags & 0x8000) != 0;
    PyObject *qname = name_str(&name);
    if (qname == NULL)
        return NULL;
    PyObject *answers = NULL;
    int complete = 1;
    if (is_response && ancount) {
        if (parse_answers(msg, off, end, qdcount, ancount, qname, &answers, &complete) < 0) {
            Py_DECREF(qname);
            return NULL;
        }
    } else if ((answers = PyTuple_New(0)) == NULL) {
        Py_DECREF(qname);
        return NULL;
    }
    PyObject *items[12] = {
        PyLong_FromUnsignedLong(ident), PyLong_FromUnsignedLong(flags), PyBool_FromLong(is_response),
        PyLong_FromUnsignedLong((flags >> 11) & 0xF), PyLong_FromUnsignedLong(flags & 0xF),
        PyBool_FromLong(flags & 0x80), qname, PyLong_FromUnsignedLong(qtype),
        PyLong_FromUnsignedLong(qclass), PyBool_FromLong(name.bad), answers, PyBool_FromLong(complete),
    };
    return new_record(message_type, items, 12);
}

static PyObject *
dns_parse(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *payload = nargs > 0 ? args[0] : NULL;
    PyObject *tcp = nargs > 1 ? args[1] : NULL;
    (void)self;

    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "parse() takes at most 2 positional arguments (%zd given)", nargs);
        return NULL;
    }
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, i);
            PyObject **slot;
            if (PyUnicode_CompareWithASCIIString(key, "payload") == 0)
                slot = &payload;
            else if (PyUnicode_CompareWithASCIIString(key, "tcp") == 0)
                slot = &tcp;
            else {
                PyErr_Format(PyExc_TypeError, "parse() got an unexpected keyword argument '%U'", key);
                return NULL;
            }
            if (*slot != NULL) {
                PyErr_Format(PyExc_TypeError, "parse() got multiple values for argument '%U'", key);
                return NULL;
            }
            *slot = args[nargs + i];
        }
    }
    if (payload == NULL) {
        PyErr_SetString(PyExc_TypeError, "parse() missing required argument 'payload'");
        return NULL;
    }
    if (!PyBytes_Check(payload)) {
        PyErr_Format(PyExc_TypeError, "parse() argument 'payload' must be bytes, not %.100s",
                     Py_TYPE(payload)->tp_name);
        return NULL;
    }
    int is_tcp = 0;
    if (tcp != NULL && (is_tcp = PyObject_IsTrue(tcp)) < 0)
        return NULL;
    if (message_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "core.accel._dns.init() has not been called");
        return NULL;
    }
    return parse_message((const unsigned char *)PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload),
                         is_tcp);
}

static int
check_record_type(PyObject *type, Py_ssize_t fields, const char *what)
{
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)
        || ((PyTypeObject *)type)->tp_basicsize != PyTuple_Type.tp_basicsize) {
        PyErr_Format(PyExc_TypeError, "%s must be a NamedTuple class", what);
        return -1;
    }
    PyObject *names = PyObject_GetAttrString(type, "_fields");
    Py_ssize_t n = names == NULL ? -1 : PyObject_Length(names);
    Py_XDECREF(names);
    if (n != fields) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a NamedTuple class with %zd fields", what, fields);
        return -1;
    }
    return 0;
}

static PyObject *
dns_init(PyObject *self, PyObject *args)
{
    PyObject *message, *answer;
    (void)self;
    if (!PyArg_ParseTuple(args, "OO:init", &message, &answer))
        return NULL;
    if (check_record_type(message, 12, "message_type") < 0 || check_record_type(answer, 4, "answer_type") < 0)
        return NULL;
    Py_INCREF(message);
    Py_INCREF(answer);
    Py_XSETREF(message_type, (PyTypeObject *)message);
    Py_XSETREF(answer_type, (PyTypeObject *)answer);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"init", dns_init, METH_VARARGS,
     "init(message_type, answer_type): the DnsMessage and DnsAnswer classes records are built from."},
    {"parse", (PyCFunction)(void (*)(void))dns_parse, METH_FASTCALL | METH_KEYWORDS,
     "parse(payload: bytes, tcp: bool = False) -> DnsMessage | None (see core.protocols.dns)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dns", "DNS message parser (see core.protocols.dns).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__dns(void)
{
    for (int c = 0; c < 256; c++) {
        label_ok[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                      || c == '_' || c == '-';
        lower[c] = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    return PyModule_Create(&module);
}
