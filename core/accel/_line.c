/*
 * core.accel._line: the event-line grammar (core/events/event.py `line_problem`), in C.
 *
 * Where it sits: the server's UDP intake checks every datagram's line with check_line; this is
 * its compiled twin. The Python function stays the specification: for every input this returns
 * exactly what line_problem returns (tests/test_accel_line.py compares them on the shared table,
 * on mutated lines and on random bytes).
 *
 * init(problems, types)
 *   problems: the reasons, in the order of LINE_PROBLEMS ("not_utf8", "control_char",
 *   "bad_time", "bad_date", "bad_fields", "bad_address", "bad_port", "bad_proto", "bad_type");
 *   types: the event types as bytes. The returned reasons are these very objects.
 * check(line: bytes) -> str | None
 *   The step-by-step grammar: strict UTF-8 (what bytes.decode accepts), no C0/DEL/C1 control
 *   characters, the quoted time, exactly 10 fields, a real date, addresses (inet_pton, as
 *   socket.inet_pton), ports, protocol, type.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <string.h>

enum { NOT_UTF8, CONTROL_CHAR, BAD_TIME, BAD_DATE, BAD_FIELDS, BAD_ADDRESS, BAD_PORT, BAD_PROTO, BAD_TYPE,
       N_PROBLEMS };
#define N_FIELDS 10
#define MAX_TYPES 32

static PyObject *problems[N_PROBLEMS];
static PyObject *types_obj;
static const char *type_text[MAX_TYPES];
static Py_ssize_t type_len[MAX_TYPES];
static int n_types = -1;

/* What bytes.decode("utf-8") accepts (no surrogates, nothing above U+10FFFF, no overlongs);
   sets *control when a C0, DEL or C1 control character occurs. */
static int
valid_utf8(const unsigned char *s, Py_ssize_t n, int *control)
{
    Py_ssize_t i = 0;
    *control = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                *control = 1;
            i++;
            continue;
        }
        int extra;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            extra = 1;
        else if (c == 0xE0) {
            extra = 2;
            lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
            extra = 2;
        else if (c == 0xED) {
            extra = 2;
            hi = 0x9F;
        } else if (c == 0xF0) {
            extra = 3;
            lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3)
            extra = 3;
        else if (c == 0xF4) {
            extra = 3;
            hi = 0x8F;
        } else
            return 0;
        if (i + extra >= n)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (int k = 2; k <= extra; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        if (c == 0xC2 && s[i + 1] <= 0x9F)
            *control = 1; /* U+0080..U+009F */
        i += extra + 1;
    }
    return 1;
}

static int
digits(const unsigned char *s, int n)
{
    for (int k = 0; k < n; k++)
        if (s[k] < '0' || s[k] > '9')
            return 0;
    return 1;
}

static int
two(const unsigned char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* The quoted time at the start: "YYYY-MM-DD HH:MM:SS[.f{1,6}]" with the ranges of the pattern
   (month 01-12, day 01-31, hour 00-23, minute and second 00-59). Its length, or 0. */
static Py_ssize_t
time_prefix(const unsigned char *s, Py_ssize_t n)
{
    if (n < 21 || s[0] != '"' || !digits(s + 1, 4) || s[5] != '-' || !digits(s + 6, 2) || s[8] != '-'
        || !digits(s + 9, 2) || s[11] != ' ' || !digits(s + 12, 2) || s[14] != ':' || !digits(s + 15, 2)
        || s[17] != ':' || !digits(s + 18, 2))
        return 0;
    int month = two(s + 6), day = two(s + 9);
    if (month < 1 || month > 12 || day < 1 || day > 31 || two(s + 12) > 23 || two(s + 15) > 59
        || two(s + 18) > 59)
        return 0;
    Py_ssize_t i = 20;
    if (s[i] == '.') {
        Py_ssize_t start = ++i;
        while (i < n && i - start < 7 && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start || i - start > 6)
            return 0;
    }
    if (i >= n || s[i] != '"')
        return 0;
    return i + 1;
}

static int
real_date(const unsigned char *s)
{
    int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int month = two(s + 5), day = two(s + 8);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1)
        return 0;
    int limit = days[month - 1];
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        limit = 29;
    return day <= limit;
}

/* Splits s[i:n] into exactly N_FIELDS fields, each preceded by one space: `-`, a run of
   characters other than space and double quote, or a double-quoted run with quotes doubled.
   Fills start/len; 0 when the rest is not exactly that. */
static int
fields(const unsigned char *s, Py_ssize_t i, Py_ssize_t n, Py_ssize_t *start, Py_ssize_t *len)
{
    for (int f = 0; f < N_FIELDS; f++) {
        if (i >= n || s[i] != ' ')
            return 0;
        i++;
        Py_ssize_t from = i;
        if (i < n && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= n)
                    return 0;
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                i++;
            }
        } else {
            while (i < n && s[i] != ' ' && s[i] != '"')
                i++;
            if (i == from || (i < n && s[i] == '"'))
                return 0;
        }
        start[f] = from;
        len[f] = i - from;
    }
    return i == n;
}

static int
address(const unsigned char *s, Py_ssize_t n)
{
    char text[64];
    unsigned char out[16];
    if (n >= (Py_ssize_t)sizeof(text))
        return 0;
    memcpy(text, s, n);
    text[n] = 0;
    for (Py_ssize_t k = 0; k < n; k++)
        if (s[k] >= 0x80)
            return 0;
    return inet_pton(memchr(s, ':', n) ? AF_INET6 : AF_INET, text, out) == 1;
}

/* `-`, or 0|[1-9]\d{0,(width-1)} not above `max` */
static int
number(const unsigned char *s, Py_ssize_t n, int width, long max, int dash)
{
    if (dash && n == 1 && s[0] == '-')
        return 1;
    if (n < 1 || n > width || !digits(s, (int)n) || (n > 1 && s[0] == '0'))
        return 0;
    long value = 0;
    for (Py_ssize_t k = 0; k < n; k++)
        value = value * 10 + (s[k] - '0');
    return value <= max;
}

static int
proto_name(const unsigned char *s, Py_ssize_t n)
{
    if (n < 1 || n > 16)
        return 0;
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (Py_ssize_t k = 1; k < n; k++)
        if (!((s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= 'a' && s[k] <= 'z') || (s[k] >= '0' && s[k] <= '9')))
            return 0;
    return 1;
}

static int
known_type(const unsigned char *s, Py_ssize_t n)
{
    for (int k = 0; k < n_types; k++)
        if (type_len[k] == n && memcmp(type_text[k], s, n) == 0)
            return 1;
    return 0;
}

static PyObject *
reason(int which)
{
    Py_INCREF(problems[which]);
    return problems[which];
}

static PyObject *
check(PyObject *self, PyObject *arg)
{
    (void)self;
    if (n_types < 0) {
        PyErr_SetString(PyExc_RuntimeError, "core.accel._line: init() first");
        return NULL;
    }
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "check() takes bytes");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    int control;
    if (!valid_utf8(s, n, &control))
        return reason(NOT_UTF8);
    if (control)
        return reason(CONTROL_CHAR);
    Py_ssize_t start[N_FIELDS], len[N_FIELDS];
    Py_ssize_t head = time_prefix(s, n);
    if (head == 0)
        return reason(BAD_TIME);
    if (!fields(s, head, n, start, len))
        return reason(head == n || s[head] == ' ' ? BAD_FIELDS : BAD_TIME);
    if (!real_date(s + 1))
        return reason(BAD_DATE);
    if (!address(s + start[1], len[1]) || !address(s + start[3], len[3]))
        return reason(BAD_ADDRESS);
    if (!number(s + start[2], len[2], 5, 65535, 1) || !number(s + start[4], len[4], 5, 65535, 1))
        return reason(BAD_PORT);
    if (!proto_name(s + start[5], len[5]) && !number(s + start[5], len[5], 3, 255, 0))
        return reason(BAD_PROTO);
    if (!known_type(s + start[6], len[6]))
        return reason(BAD_TYPE);
    Py_RETURN_NONE;
}

static PyObject *
init(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *reasons, *types;
    if (!PyArg_ParseTuple(args, "O!O!", &PyTuple_Type, &reasons, &PyTuple_Type, &types))
        return NULL;
    if (PyTuple_GET_SIZE(reasons) != N_PROBLEMS || PyTuple_GET_SIZE(types) > MAX_TYPES) {
        PyErr_SetString(PyExc_ValueError, "init(problems, types): 9 problems, at most 32 types");
        return NULL;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(types); k++)
        if (!PyBytes_Check(PyTuple_GET_ITEM(types, k))) {
            PyErr_SetString(PyExc_TypeError, "types must be bytes");
            return NULL;
        }
    for (int k = 0; k < N_PROBLEMS; k++) {
        Py_INCREF(PyTuple_GET_ITEM(reasons, k));
        Py_XSETREF(problems[k], PyTuple_GET_ITEM(reasons, k));
    }
    Py_INCREF(types);
    Py_XSETREF(types_obj, types);     /* keeps the bytes that type_text points into */
    n_types = (int)PyTuple_GET_SIZE(types);
    for (int k = 0; k < n_types; k++) {
        type_text[k] = PyBytes_AS_STRING(PyTuple_GET_ITEM(types, k));
        type_len[k] = PyBytes_GET_SIZE(PyTuple_GET_ITEM(types, k));
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"init", init, METH_VARARGS, "init(problems, types): the reasons to return and the event types"},
    {"check", check, METH_O, "check(line) -> reason or None: the event-line grammar"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_line", "The event-line grammar in C.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__line(void)
{
    return PyModule_Create(&module);
}
