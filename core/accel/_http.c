/* core.accel._http: compiled twin of core.protocols.http.parse_request.
 *
 * Where it sits: detect.py calls core.protocols.http.parse_request() on every client TCP
 * payload; that name is bound to this module's parse_request() when the module is built (see
 * the end of core/protocols/http.py). The pure-Python function stays the specification: for
 * every bytes input this one returns the same None or the same 13-field HttpRequest record
 * (same values and types), which tests/test_accel_http.py checks on fuzzed input.
 *
 * Text semantics mirrored from Python:
 *   - bytes.strip() / bytes.lower() are ASCII-only (b" \t\n\r\x0b\x0c", A-Z);
 *   - text is latin-1, so str.strip() also drops 0x1c-0x1f, 0x85 and 0xa0, and str.lower()
 *     also maps 0xc0-0xde (except 0xd7) to +0x20; lowering never crosses the ASCII boundary;
 *   - ports are ASCII digits only (the Python side checks isascii() before isdigit()).
 * The parser only ever reads inside the payload and raises nothing but MemoryError.
 *
 *   init(record_type)          remember the HttpRequest class (a tuple subclass, 13 fields)
 *   parse_request(payload)     -> HttpRequest | None
 *   request_seen(d, sec, clean, state) -> bool: see its comment below
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "decoded.h"
#include "gate.h"

#define MAX_HEADERS 100
#define MAX_NAME 256
#define MAX_VALUE 8192
#define FIELDS 13

typedef unsigned char uchar;

/* ---- module state: set once by init() and PyInit ------------------------------------------ */

static PyObject *record_type = NULL;  /* the HttpRequest class (strong reference) */
static PyObject *empty_str = NULL;    /* "" */
static PyObject *slash_str = NULL;    /* "/" */
static PyObject *http11_str = NULL;   /* "HTTP/1.1" */
static PyObject *http10_str = NULL;   /* "HTTP/1.0" */

static uchar text_lower[256];  /* str.lower() on one latin-1 character */
static uchar text_space[256];  /* str.isspace() on one latin-1 character */
static uchar bytes_space[256]; /* bytes.strip() whitespace */

typedef struct {
    const char *name;
    Py_ssize_t size;
    PyObject *text;  /* the method as str, shared by every record */
} Method;

static Method methods[] = {
    {"GET", 3, NULL}, {"POST", 4, NULL}, {"HEAD", 4, NULL}, {"PUT", 3, NULL}, {"DELETE", 6, NULL},
    {"OPTIONS", 7, NULL}, {"CONNECT", 7, NULL}, {"PATCH", 5, NULL}, {"TRACE", 5, NULL},
    {"PROPFIND", 8, NULL}, {"PROPPATCH", 9, NULL}, {"MKCOL", 5, NULL}, {"COPY", 4, NULL},
    {"MOVE", 4, NULL}, {"LOCK", 4, NULL}, {"UNLOCK", 6, NULL}, {"SEARCH", 6, NULL},
    {"REPORT", 6, NULL}, {"MKACTIVITY", 10, NULL}, {"CHECKOUT", 8, NULL}, {"MERGE", 5, NULL},
    {"NOTIFY", 6, NULL}, {"SUBSCRIBE", 9, NULL}, {"UNSUBSCRIBE", 11, NULL}, {"PURGE", 5, NULL},
    {"ACL", 3, NULL}, {"LINK", 4, NULL}, {"UNLINK", 6, NULL}, {"BIND", 4, NULL},
    {"REBIND", 6, NULL}, {"UNBIND", 6, NULL}, {"MKCALENDAR", 10, NULL},
};
#define METHOD_COUNT ((int)(sizeof(methods) / sizeof(methods[0])))
#define METHOD_MAX 11
#define CONNECT_INDEX 6

static void build_tables(void)
{
    for (int c = 0; c < 256; c++) {
        text_lower[c] = (uchar)c;
        text_space[c] = 0;
        bytes_space[c] = 0;
    }
    for (int c = 'A'; c <= 'Z'; c++)
        text_lower[c] = (uchar)(c + 32);
    for (int c = 0xC0; c <= 0xDE; c++)
        if (c != 0xD7)
            text_lower[c] = (uchar)(c + 32);
    const uchar spaces[] = {9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0x85, 0xA0};
    for (size_t i = 0; i < sizeof(spaces); i++)
        text_space[spaces[i]] = 1;
    const uchar bspaces[] = {9, 10, 11, 12, 13, 32};
    for (size_t i = 0; i < sizeof(bspaces); i++)
        bytes_space[bspaces[i]] = 1;
}

/* ---- byte helpers (half-open ranges, Python find semantics: -1 when absent) ---------------- */

static Py_ssize_t find_byte(const uchar *p, Py_ssize_t start, Py_ssize_t end, uchar c)
{
    if (start >= end)
        return -1;
    const uchar *hit = memchr(p + start, c, (size_t)(end - start));
    return hit ? (Py_ssize_t)(hit - p) : -1;
}

static Py_ssize_t rfind_byte(const uchar *p, Py_ssize_t start, Py_ssize_t end, uchar c)
{
    for (Py_ssize_t i = end - 1; i >= start; i--)
        if (p[i] == c)
            return i;
    return -1;
}

/* First `needle` (size >= 1) starting at or after `start` and ending at or before `end`. */
static Py_ssize_t find_sub(const uchar *p, Py_ssize_t start, Py_ssize_t end, const uchar *needle,
                           Py_ssize_t size)
{
    Py_ssize_t last = end - size;
    for (Py_ssize_t i = start; i <= last; i++) {
        i = find_byte(p, i, last + 1, needle[0]);
        if (i < 0)
            return -1;
        if (memcmp(p + i + 1, needle + 1, (size_t)(size - 1)) == 0)
            return i;
    }
    return -1;
}

static int ascii_digits(const uchar *p, Py_ssize_t start, Py_ssize_t end)
{
    for (Py_ssize_t i = start; i < end; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static PyObject *latin1(const uchar *p, Py_ssize_t start, Py_ssize_t end)
{
    if (end <= start) {
        Py_INCREF(empty_str);
        return empty_str;
    }
    return PyUnicode_DecodeLatin1((const char *)p + start, end - start, NULL);
}

/* str(p[start:end], "latin-1").lower(); lowering keeps ASCII ASCII and latin-1 latin-1. */
static PyObject *latin1_lower(const uchar *p, Py_ssize_t start, Py_ssize_t end)
{
    Py_UCS4 maxchar = 127;
    for (Py_ssize_t i = start; i < end; i++)
        if (p[i] > 127) {
            maxchar = 255;
            break;
        }
    PyObject *out = PyUnicode_New(end - start, maxchar);
    if (out == NULL)
        return NULL;
    Py_UCS1 *data = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t i = start; i < end; i++)
        data[i - start] = text_lower[p[i]];
    return out;
}

/* ---- the header block ------------------------------------------------------------------------ */

typedef struct {
    Py_ssize_t block_start, block_end;  /* whole header lines */
    Py_ssize_t body_start;              /* body is p[body_start:n] */
    int complete;
} Head;

static void header_block(const uchar *p, Py_ssize_t n, Py_ssize_t off, Head *head)
{
    static const uchar crlf2[] = "\r\n\r\n";
    static const uchar lf2[] = "\n\n";
    head->complete = 1;
    head->block_start = off;
    Py_ssize_t end = off >= 2 ? find_sub(p, off - 2, n, crlf2, 4) : -1;
    if (end >= 0) {
        head->block_end = end + 2;
        head->body_start = end + 4;
        return;
    }
    end = off >= 1 ? find_sub(p, off - 1, n, lf2, 2) : -1;
    if (end >= 0) {  /* bare-LF clients */
        head->block_end = end + 1;
        head->body_start = end + 2;
        return;
    }
    head->complete = 0;
    head->body_start = n;
    Py_ssize_t last = rfind_byte(p, 0, n, '\n');
    head->block_end = last >= off ? last + 1 : off;
}

/* The next "\n" + name in low[start:size], as an offset of the "\n", or -1. */
static Py_ssize_t find_line_with(const uchar *low, Py_ssize_t start, Py_ssize_t size, const char *name,
                                 Py_ssize_t width)
{
    Py_ssize_t last = size - width - 1;
    for (Py_ssize_t i = start; i <= last; i++) {
        i = find_byte(low, i, last + 1, '\n');
        if (i < 0)
            return -1;
        if (memcmp(low + i + 1, name, (size_t)width) == 0)
            return i;
    }
    return -1;
}

/* _find_header: the value range of the first `name:` header in the block, as
 * block[*vs:*ve] (already stripped and cut at MAX_VALUE). Returns 1 when found, else 0.
 * `blk` and `low` are the block and its lower-case copy, both `size` bytes. */
static int find_header(const uchar *blk, const uchar *low, Py_ssize_t size, const char *name,
                       Py_ssize_t width, Py_ssize_t *vs, Py_ssize_t *ve)
{
    Py_ssize_t begin;
    if (size >= width && memcmp(low, name, (size_t)width) == 0)
        begin = 0;
    else {
        begin = find_line_with(low, 0, size, name, width) + 1;
        if (begin == 0)
            return 0;
    }
    for (;;) {
        Py_ssize_t pos = begin + width;
        while (pos < size && (low[pos] == ' ' || low[pos] == '\t'))
            pos++;
        if (pos < size && low[pos] == ':' && pos - begin <= MAX_NAME) {
            Py_ssize_t end = find_byte(low, pos, size, '\n');
            if (end < 0)
                return 0;
            if (begin != 0) {  /* the header must be on one of the first MAX_HEADERS lines */
                Py_ssize_t lines = 0;
                for (Py_ssize_t i = find_byte(low, 0, begin, '\n'); i >= 0; i = find_byte(low, i + 1, begin, '\n'))
                    if (++lines >= MAX_HEADERS)
                        return 0;
            }
            Py_ssize_t a = pos + 1, b = end;
            while (a < b && bytes_space[blk[a]])
                a++;
            while (b > a && bytes_space[blk[b - 1]])
                b--;
            if (b - a > MAX_VALUE)
                b = a + MAX_VALUE;
            *vs = a;
            *ve = b;
            return 1;
        }
        begin = find_line_with(low, begin, size, name, width) + 1;
        if (begin == 0)
            return 0;
    }
}

/* ---- _split_host ------------------------------------------------------------------------------ */

/* `host[:port]`, `[v6][:port]` or `user@host` in s[a:b] -> *host (new str, or NULL for None) and
 * *port (-1 for None). Returns -1 on MemoryError, else 0. */
static int split_host(const uchar *s, Py_ssize_t a, Py_ssize_t b, PyObject **host, long *port)
{
    *host = NULL;
    *port = -1;
    while (a < b && text_space[s[a]])
        a++;
    while (b > a && text_space[s[b - 1]])
        b--;
    Py_ssize_t hs = a, he = b;
    int special = 0;
    for (Py_ssize_t i = a; i < b; i++)
        if (s[i] == ':' || s[i] == '@' || s[i] == '[') {
            special = 1;
            break;
        }
    if (special) {
        Py_ssize_t at = rfind_byte(s, a, b, '@');
        if (at >= 0)
            a = at + 1;
        if (a < b && s[a] == '[') {
            Py_ssize_t close = find_byte(s, a, b, ']');
            if (close < 0)
                return 0;
            hs = a + 1;
            he = close;
            Py_ssize_t rest = b - (close + 1);
            if (rest >= 2 && rest <= 6 && s[close + 1] == ':' && ascii_digits(s, close + 2, b)) {
                long value = 0;
                for (Py_ssize_t i = close + 2; i < b; i++)
                    value = value * 10 + (s[i] - '0');
                *port = value;
            }
        } else {
            int colons = 0;
            for (Py_ssize_t i = a; i < b; i++)
                colons += s[i] == ':';
            hs = a;
            he = b;
            if (colons == 1) {  /* more than one: a bare IPv6 literal, no port can be told apart */
                Py_ssize_t colon = rfind_byte(s, a, b, ':');
                he = colon;
                Py_ssize_t digits = b - (colon + 1);
                if (digits >= 1 && digits <= 5 && ascii_digits(s, colon + 1, b)) {
                    long value = 0;
                    for (Py_ssize_t i = colon + 1; i < b; i++)
                        value = value * 10 + (s[i] - '0');
                    *port = value;
                }
            }
        }
        if (*port == 0 || *port >= 65536)
            *port = -1;
    }
    while (he > hs && s[he - 1] == '.')  /* lower() never makes or removes a '.' */
        he--;
    if (he > hs) {
        *host = latin1_lower(s, hs, he);
        if (*host == NULL)
            return -1;
    }
    return 0;
}

/* ---- parse_request ---------------------------------------------------------------------------- */

static int match_method(const uchar *p, Py_ssize_t size)
{
    for (int i = 0; i < METHOD_COUNT; i++)
        if (methods[i].size == size && methods[i].name[0] == (char)p[0] &&
            memcmp(methods[i].name, p, (size_t)size) == 0)
            return i;
    return -1;
}

static PyObject *version_str(const uchar *p, Py_ssize_t start, Py_ssize_t end)
{
    if (end - start == 8 && memcmp(p + start, "HTTP/1.", 7) == 0) {
        if (p[start + 7] == '1') {
            Py_INCREF(http11_str);
            return http11_str;
        }
        if (p[start + 7] == '0') {
            Py_INCREF(http10_str);
            return http10_str;
        }
    }
    return latin1(p, start, end);
}

static int is_prefix_lower(const uchar *p, Py_ssize_t size, const char *prefix, Py_ssize_t width)
{
    if (size < width)
        return 0;
    for (Py_ssize_t i = 0; i < width; i++)
        if (text_lower[p[i]] != (uchar)prefix[i])
            return 0;
    return 1;
}

/* What parse_request reads of a request head, before any record is built: the method, the
 * target and version ranges, the header block (and its lower-cased copy, a bytes object), the
 * host and port (from an absolute or CONNECT target, else the Host header) and where an absolute
 * target's path starts. */
typedef struct {
    int method;                 /* index in methods[] */
    Py_ssize_t ts, te, vs, ve;  /* target p[ts:te]; version p[vs:ve] (vs == ve: none) */
    Head head;
    PyObject *low;              /* bytes: the header block lower-cased (new reference) */
    PyObject *host;             /* str (new reference) or NULL: None */
    long port;                  /* -1: None */
    int absolute;
    Py_ssize_t slash;           /* absolute form: the path's first byte ('/', '?' or '#') in the target, or -1 */
} Parsed;

static void parsed_clear(Parsed *parsed)
{
    Py_CLEAR(parsed->low);
    Py_CLEAR(parsed->host);
}

/* 1 and `out` filled (release it with parsed_clear), 0 when p[0:n] is no request head (parse_request
 * answers None), -1 on MemoryError. */
static int parse_head(const uchar *p, Py_ssize_t n, Parsed *out)
{
    out->low = out->host = NULL;
    out->port = -1;
    out->absolute = 0;
    out->slash = -1;
    /* the method: the bytes before the first space, within the first line */
    Py_ssize_t limit = n < METHOD_MAX + 1 ? n : METHOD_MAX + 1;
    Py_ssize_t sp = find_byte(p, 0, limit, ' ');
    if (sp <= 0)
        return 0;
    int method = match_method(p, sp);
    if (method < 0)
        return 0;
    Py_ssize_t newline = find_byte(p, sp, n, '\n');  /* the method and its space hold no '\n' */
    if (newline < 0)
        return 0;
    Py_ssize_t off = newline + 1;
    Py_ssize_t line_end = p[newline - 1] == '\r' ? newline - 1 : newline;

    /* target and version: rest = line[sp + 1:].strip(b" ") */
    Py_ssize_t ts = sp + 1, te = line_end;
    while (ts < te && p[ts] == ' ')
        ts++;
    while (te > ts && p[te - 1] == ' ')
        te--;
    Py_ssize_t vs = 0, ve = 0;
    Py_ssize_t last = rfind_byte(p, ts, te, ' ');
    if (last > ts && te - (last + 1) >= 5 && memcmp(p + last + 1, "HTTP/", 5) == 0) {
        vs = last + 1;
        ve = te;
        te = last;
        while (te > ts && p[te - 1] == ' ')
            te--;
    }
    if (te <= ts)
        return 0;
    out->method = method;
    out->ts = ts;
    out->te = te;
    out->vs = vs;
    out->ve = ve;

    header_block(p, n, off, &out->head);
    Py_ssize_t bsize = out->head.block_end - out->head.block_start;
    const uchar *blk = p + out->head.block_start;
    if ((out->low = PyBytes_FromStringAndSize(NULL, bsize)) == NULL)
        return -1;
    uchar *low = (uchar *)PyBytes_AS_STRING(out->low);
    for (Py_ssize_t i = 0; i < bsize; i++) {
        uchar c = blk[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (uchar)(c + 32) : c;
    }

    const uchar *t = p + ts;
    Py_ssize_t tsize = te - ts;
    if (method == CONNECT_INDEX) {
        if (split_host(t, 0, tsize, &out->host, &out->port) < 0)
            goto fail;
    } else {
        Py_ssize_t after = is_prefix_lower(t, tsize, "http://", 7) ? 7 : is_prefix_lower(t, tsize, "https://", 8) ? 8 : 0;
        if (after) {
            out->absolute = 1;
            for (Py_ssize_t i = after; i < tsize; i++)  /* the authority ends at the first '/', '?' or '#' */
                if (t[i] == '/' || t[i] == '?' || t[i] == '#') {
                    out->slash = i;
                    break;
                }
            if (split_host(t, after, out->slash >= 0 ? out->slash : tsize, &out->host, &out->port) < 0)
                goto fail;
        }
    }
    Py_ssize_t as, ae;
    if (out->host == NULL && find_header(blk, low, bsize, "host", 4, &as, &ae)) {
        if (split_host(blk, as, ae, &out->host, &out->port) < 0)
            goto fail;
    }
    return 1;
fail:
    parsed_clear(out);
    return -1;
}

/* The request's path (HttpRequest.path): "" for CONNECT, the absolute target's path ("/" when
 * none, a "/" put before a bare "?" or "#"), else the target itself (`target`, the str of it). */
static PyObject *request_path(const uchar *p, const Parsed *parsed, PyObject *target)
{
    if (parsed->method == CONNECT_INDEX)
        return Py_NewRef(empty_str);
    if (!parsed->absolute)
        return Py_NewRef(target);
    const uchar *t = p + parsed->ts;
    Py_ssize_t tsize = parsed->te - parsed->ts, slash = parsed->slash;
    if (slash < 0)
        return Py_NewRef(slash_str);
    if (t[slash] == '/')
        return latin1(t, slash, tsize);
    PyObject *tail = latin1(t, slash, tsize);
    if (tail == NULL)
        return NULL;
    PyObject *path = PyUnicode_Concat(slash_str, tail);
    Py_DECREF(tail);
    return path;
}

static PyObject *parse_request(PyObject *Py_UNUSED(module), PyObject *arg)
{
    if (record_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "core.accel._http.init(HttpRequest) was not called");
        return NULL;
    }
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "parse_request() takes bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const uchar *p = (const uchar *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    Parsed parsed;
    int status = parse_head(p, n, &parsed);
    if (status <= 0)
        return status < 0 ? NULL : Py_NewRef(Py_None);
    const Head *head = &parsed.head;
    Py_ssize_t bsize = head->block_end - head->block_start;
    const uchar *blk = p + head->block_start, *low = (const uchar *)PyBytes_AS_STRING(parsed.low);

    PyObject *fields[FIELDS] = {NULL};
    fields[0] = Py_NewRef(methods[parsed.method].text);
    if ((fields[1] = latin1(p, parsed.ts, parsed.te)) == NULL)
        goto fail;
    if ((fields[2] = request_path(p, &parsed, fields[1])) == NULL)
        goto fail;
    if ((fields[3] = version_str(p, parsed.vs, parsed.ve)) == NULL)
        goto fail;
    fields[4] = parsed.host != NULL ? Py_NewRef(parsed.host) : Py_NewRef(Py_None);
    if (parsed.port >= 0) {
        if ((fields[5] = PyLong_FromLong(parsed.port)) == NULL)
            goto fail;
    } else
        fields[5] = Py_NewRef(Py_None);
    fields[6] = Py_NewRef(parsed.absolute ? Py_True : Py_False);
    Py_ssize_t as, ae;
    if (find_header(blk, low, bsize, "user-agent", 10, &as, &ae)) {
        if ((fields[7] = latin1(blk, as, ae)) == NULL)
            goto fail;
    } else
        fields[7] = Py_NewRef(Py_None);
    if ((fields[8] = PyBytes_FromStringAndSize((const char *)p + head->body_start, n - head->body_start)) == NULL)
        goto fail;
    fields[9] = Py_NewRef(head->complete ? Py_True : Py_False);
    if ((fields[10] = PyBytes_FromStringAndSize((const char *)blk, bsize)) == NULL)
        goto fail;
    fields[11] = Py_NewRef(parsed.low);
    if ((fields[12] = PyList_New(0)) == NULL)
        goto fail;

    /* the record, built as tuple.__new__(HttpRequest, fields) would */
    PyTypeObject *type = (PyTypeObject *)record_type;
    PyObject *record = type->tp_alloc(type, FIELDS);
    if (record == NULL)
        goto fail;
#if PY_VERSION_HEX >= 0x030E0000
    ((PyTupleObject *)record)->ob_hash = -1;  /* tuples cache their hash from 3.14 on */
#endif
    for (int i = 0; i < FIELDS; i++)
        PyTuple_SET_ITEM(record, i, fields[i]);
    parsed_clear(&parsed);
    return record;

fail:
    parsed_clear(&parsed);
    for (int i = 0; i < FIELDS; i++)
        Py_XDECREF(fields[i]);
    return NULL;
}

/* ---- request_seen: a whole request head that reports nothing, handled in order ------------- */

#define GET_INDEX 0
#define HEAD_INDEX 2

/* The ASCII text of a str, or NULL when it is not an ASCII str. */
static const uchar *ascii_text(PyObject *s, Py_ssize_t *len)
{
    if (!PyUnicode_Check(s) || !PyUnicode_IS_ASCII(s))
        return NULL;
    *len = PyUnicode_GET_LENGTH(s);
    return (const uchar *)PyUnicode_DATA(s);
}

/* str.lower() of ASCII text[start:end] (a new str). */
static PyObject *ascii_lower(const uchar *text, Py_ssize_t start, Py_ssize_t end)
{
    PyObject *s = PyUnicode_New(end - start, 0x7F);
    if (s == NULL)
        return NULL;
    uchar *out = PyUnicode_1BYTE_DATA(s);
    for (Py_ssize_t i = start; i < end; i++)
        out[i - start] = (text[i] >= 'A' && text[i] <= 'Z') ? (uchar)(text[i] + 32) : text[i];
    return s;
}

static int has_byte(const uchar *text, Py_ssize_t len, uchar c)
{
    return find_byte(text, 0, len, c) >= 0;
}

/* 1 when the memoised answer for `key` is `want` (Py_None, Py_False), 0 when it is not, -1 on
 * error: memo.get(key), or when absent the Python function the memo belongs to (`compute(key)`,
 * which remembers its answer as it always does, so the memo ends as the Python path leaves it). */
static int memo_is(PyObject *memo, PyObject *compute, PyObject *key, PyObject *want)
{
    PyObject *value = PyDict_GetItemWithError(memo, key);
    if (value != NULL)
        return value == want;
    if (PyErr_Occurred() || (value = PyObject_CallOneArg(compute, key)) == NULL)
        return -1;
    int is = value == want;
    Py_DECREF(value);
    return is;
}

/* How WindowTable.observe (core/heuristics/state.py) would record `item` for `key`, decided
 * before anything changes: WEB_PYTHON when it may alert or must make room (left to Python). */
enum { WEB_ADD, WEB_REFRESH, WEB_PROMOTE, WEB_SET, WEB_PYTHON };

static int web_step(PyObject *table, PyObject *key, PyObject *item, long threshold, Py_ssize_t max_keys,
                    PyObject **items)
{
    *items = PyDict_GetItemWithError(table, key);
    if (*items == NULL) {
        if (PyErr_Occurred())
            return -1;
        return PyDict_GET_SIZE(table) >= max_keys || threshold < 1 ? WEB_PYTHON : WEB_ADD;
    }
    if (PyTuple_CheckExact(*items) && PyTuple_GET_SIZE(*items) == 2) {  /* one observation: (item, sec) */
        int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(*items, 0), item, Py_EQ);
        if (same < 0)
            return -1;
        return same ? WEB_REFRESH : 2 > threshold ? WEB_PYTHON : WEB_PROMOTE;
    }
    if (!PyDict_CheckExact(*items))
        return WEB_PYTHON;
    int known = PyDict_Contains(*items, item);
    if (known < 0)
        return -1;
    return PyDict_GET_SIZE(*items) + !known > threshold ? WEB_PYTHON : WEB_SET;
}

static int web_apply(int step, PyObject *table, PyObject *key, PyObject *item, PyObject *sec, PyObject *items)
{
    if (step == WEB_SET)
        return PyDict_SetItem(items, item, sec);
    if (step == WEB_PROMOTE) {
        PyObject *both = PyDict_New();
        if (both == NULL || PyDict_SetItem(both, PyTuple_GET_ITEM(items, 0), PyTuple_GET_ITEM(items, 1)) < 0
            || PyDict_SetItem(both, item, sec) < 0) {
            Py_XDECREF(both);
            return -1;
        }
        int status = PyDict_SetItem(table, key, both);
        Py_DECREF(both);
        return status;
    }
    PyObject *pair = PyTuple_Pack(2, step == WEB_REFRESH ? PyTuple_GET_ITEM(items, 0) : item, sec);
    if (pair == NULL)
        return -1;
    int status = PyDict_SetItem(table, key, pair);
    Py_DECREF(pair);
    return status;
}

/* 1 when HttpHeuristics.request (core/heuristics/http.py) provably reports nothing for this GET
 * or HEAD head (host: the lower-cased, non-empty ASCII host; path: the ASCII request.path),
 * with its web-scan step decided last in *web (applied by the caller: no Python code runs
 * between the two); 0 when Python must run it. */
static int heuristics_quiet(PyObject *heur, PyObject *host, PyObject *path, PyObject *agent, PyObject *d,
                            PyObject **web_key, PyObject **segment, PyObject **items, int *web)
{
    enum { USE_WEB, WEB_TABLE, WEB_THRESHOLD, WEB_KEYS, USE_UA, UA_CACHE, UA_TRAIL, USE_REQUESTS, MARKERS,
           REQUEST_GATE, USE_DOWNLOAD, EXTENSIONS, PATHS_GATE, HEUR_FIELDS };
    if (!PyTuple_Check(heur) || PyTuple_GET_SIZE(heur) != HEUR_FIELDS || !PyDict_Check(PyTuple_GET_ITEM(heur, WEB_TABLE))
        || !PyDict_Check(PyTuple_GET_ITEM(heur, UA_CACHE)) || !PyAnySet_Check(PyTuple_GET_ITEM(heur, EXTENSIONS))) {
        PyErr_SetString(PyExc_TypeError, "request_seen(): malformed heuristics state");
        return -1;
    }
    Py_ssize_t n, hn;
    const uchar *text = ascii_text(path, &n), *h = ascii_text(host, &hn);
    if (text == NULL || h == NULL || hn == 0)
        return 0;  /* (request_seen passes ASCII only: what Python lower-cases beyond ASCII stays there) */
    static const uchar slash[] = "/";
    if (n == 0) {  /* request.path or "/" */
        text = slash;
        n = 1;
    }
    *web = -1;
    if (agent != Py_None && PyObject_IsTrue(PyTuple_GET_ITEM(heur, USE_UA))) {  /* the UA verdict: no UA trail */
        int quiet = memo_is(PyTuple_GET_ITEM(heur, UA_CACHE), PyTuple_GET_ITEM(heur, UA_TRAIL), agent, Py_None);
        if (quiet <= 0)
            return quiet;
    }
    if (h[hn - 1] >= '0' && h[hn - 1] <= '9')  /* the iot-download check's bare-IPv4 hosts */
        return 0;
    Py_ssize_t plain = find_byte(text, 0, n, '?');
    if (plain < 0)
        plain = n;
    int requests = PyObject_IsTrue(PyTuple_GET_ITEM(heur, USE_REQUESTS));
    if (requests) {  /* the request battery on the path (no body: GET/HEAD heads only come here) */
        if (has_byte(text, n, '%') || has_byte(text, n, '+'))
            return 0;  /* the battery reads the URL-decoded path */
        PyObject *markers = PyTuple_GET_ITEM(heur, MARKERS), *gate = PyTuple_GET_ITEM(heur, REQUEST_GATE);
        if (markers != Py_None) {
            /* the battery reads `request.path or "/"` */
            PyObject *shown = PyUnicode_GET_LENGTH(path) ? Py_NewRef(path) : PyUnicode_FromString("/");
            if (shown == NULL)
                return -1;
            int misses = gate_misses(markers, shown);
            Py_DECREF(shown);
            if (misses <= 0) {
                if (misses < 0 || gate == Py_None)
                    return misses;
                PyObject *low = ascii_lower(text, 0, n);
                if (low == NULL)
                    return -1;
                misses = gate_misses(gate, low);
                Py_DECREF(low);
                if (misses <= 0)
                    return misses;
            }
        }
    }
    if (PyObject_IsTrue(PyTuple_GET_ITEM(heur, USE_DOWNLOAD)) && !has_byte(text + plain, n - plain, '=')) {
        Py_ssize_t start = rfind_byte(text, 0, plain, '/') + 1, dot = rfind_byte(text, start, plain, '.');
        if (dot > start && dot - start < 10) {  /* a short stem: the extension decides */
            PyObject *ext = ascii_lower(text, dot + 1, plain);
            if (ext == NULL)
                return -1;
            int listed = PySet_Contains(PyTuple_GET_ITEM(heur, EXTENSIONS), ext);
            Py_DECREF(ext);
            if (listed != 0)
                return listed < 0 ? -1 : 0;
        }
    }
    if (requests) {  /* the path-name families: canon(plain path) is its lower case when printable */
        PyObject *gate = PyTuple_GET_ITEM(heur, PATHS_GATE);
        if (gate == Py_None)
            return 0;
        if (gate != Py_False) {
            for (Py_ssize_t i = 0; i < plain; i++)
                if (text[i] < 0x20 || text[i] > 0x7E)
                    return 0;
            PyObject *low = ascii_lower(text, 0, plain);
            if (low == NULL)
                return -1;
            int misses = gate_misses(gate, low);
            Py_DECREF(low);
            if (misses <= 0)
                return misses;
        }
    }
    if (PyObject_IsTrue(PyTuple_GET_ITEM(heur, USE_WEB)) && text[0] == '/') {  /* last: only C runs until applied */
        Py_ssize_t end = 1;
        while (end < n && text[end] != '/' && text[end] != '?')
            end++;
        if ((*segment = PyUnicode_FromStringAndSize((const char *)text + 1, end - 1)) == NULL)
            return -1;
        PyUnicode_InternInPlace(segment);
        PyObject *src = PyTuple_GET_ITEM(d, 2), *dst = PyTuple_GET_ITEM(d, 3);
        if (!PyBytes_Check(src) || !PyBytes_Check(dst)) {
            PyErr_SetString(PyExc_TypeError, "request_seen(): the Decoded addresses must be bytes");
            return -1;
        }
        if ((*web_key = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(src) + PyBytes_GET_SIZE(dst))) == NULL)
            return -1;
        memcpy(PyBytes_AS_STRING(*web_key), PyBytes_AS_STRING(src), (size_t)PyBytes_GET_SIZE(src));
        memcpy(PyBytes_AS_STRING(*web_key) + PyBytes_GET_SIZE(src), PyBytes_AS_STRING(dst), (size_t)PyBytes_GET_SIZE(dst));
        long threshold = PyLong_AsLong(PyTuple_GET_ITEM(heur, WEB_THRESHOLD));
        Py_ssize_t max_keys = PyLong_AsSsize_t(PyTuple_GET_ITEM(heur, WEB_KEYS));
        if ((threshold == -1 || max_keys == -1) && PyErr_Occurred())
            return -1;
        *web = web_step(PyTuple_GET_ITEM(heur, WEB_TABLE), *web_key, *segment, threshold, max_keys, items);
        if (*web < 0 || *web == WEB_PYTHON)
            return *web < 0 ? -1 : 0;
    }
    return 1;
}

/* request_seen(d, sec, clean, state) -> bool
 *
 * The detector's handling of a client payload that starts an HTTP request (core/detect/detector.py
 * _tcp_payload, after its flow-table tests; d: the Decoded TCP record, its payload
 * buf[poff:pend] read in place), done in order with the live state when it provably reports
 * nothing. False: anything else; the Python path runs and finds the state as it would
 * have (see memo_is). True: done, with the Python path's effects: its memos filled as it fills
 * them, and the request's step in the web-scan window.
 *
 * state: (whitelisted_hosts, host_whitelisted, markers, has_marker, host_mark, path_markers_maybe,
 * agents, user_agent, check_host_domains, heuristics): the detector's host whitelist memo and its
 * function, the store's URL-marker memo and its function and HOST_MARK, its path prefilter, its
 * User-Agent memo and its function, CHECK_HOST_DOMAINS, and the HTTP heuristics' state (None: no
 * request heuristics; else HttpHeuristics.request_shortcut()). Handled only when: the payload
 * parses as one whole GET or HEAD head without a body, not in absolute form, with a non-empty
 * ASCII Host and an ASCII path; no domain check of the host (CHECK_HOST_DOMAINS off), its IP
 * lookups skipped (`clean`, or a host that does not start with a letter); the host whitelisted,
 * or no URL trail possible (a path without "//" or " " whose host has no URL trails and whose
 * markers miss the bloom); the User-Agent no `ua:` trail; and every request heuristic quiet
 * (heuristics_quiet) with a web-scan step that neither alerts nor needs room. The checks run in
 * the Python path's order, so a memo the Python path would fill before reporting is filled here
 * before handing over. */
static PyObject *request_seen(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "request_seen() takes 4 positional arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *d = args[0], *sec = args[1], *state = args[3];
    enum { HOSTS, HOST_WHITELISTED, MARKERS, HAS_MARKER, HOST_MARK, PATH_MAYBE, AGENTS, USER_AGENT, HOST_DOMAINS,
           HEURISTICS, FIELDS_ };
    if (!PyLong_Check(sec) || !PyTuple_Check(state)
        || PyTuple_GET_SIZE(state) != FIELDS_ || !PyDict_Check(PyTuple_GET_ITEM(state, HOSTS))
        || !PyDict_Check(PyTuple_GET_ITEM(state, MARKERS)) || !PyUnicode_Check(PyTuple_GET_ITEM(state, HOST_MARK))
        || !PyDict_Check(PyTuple_GET_ITEM(state, AGENTS))) {
        PyErr_SetString(PyExc_TypeError, "request_seen(d: Decoded, sec: int, clean, state: 10-tuple)");
        return NULL;
    }
    int clean = PyObject_IsTrue(args[2]);
    if (clean < 0)
        return NULL;
    Py_buffer view;
    const uchar *p;
    Py_ssize_t n;
    if (decoded_payload(d, &view, &p, &n) < 0)
        return NULL;
    Parsed parsed;
    int status = parse_head(p, n, &parsed);
    if (status <= 0) {
        PyBuffer_Release(&view);
        return status < 0 ? NULL : Py_NewRef(Py_False);
    }
    PyObject *result = NULL, *target_path = NULL, *agent = NULL, *web_key = NULL, *segment = NULL, *items = NULL;
    PyObject *host = parsed.host;  /* split_host lower-cased it */
    int web = -1, quiet = 0;
    Py_ssize_t hn;
    int ascii_target = 1;
    for (Py_ssize_t i = parsed.ts; i < parsed.te && ascii_target; i++)
        ascii_target = p[i] < 0x80;
    if ((parsed.method != GET_INDEX && parsed.method != HEAD_INDEX) || parsed.absolute || !parsed.head.complete
        || parsed.head.body_start != n || !ascii_target || host == NULL || ascii_text(host, &hn) == NULL || hn == 0
        || PyObject_IsTrue(PyTuple_GET_ITEM(state, HOST_DOMAINS)))
        goto done;
    const uchar *lh = PyUnicode_1BYTE_DATA(host);
    if (!clean && lh[0] >= 'a' && lh[0] <= 'z')
        goto done;  /* the IP lookups of a named host run in Python */
    /* request.path (the target: neither CONNECT nor absolute) and request.user_agent */
    if ((target_path = latin1(p, parsed.ts, parsed.te)) == NULL)
        goto fail;
    Py_ssize_t pn = parsed.te - parsed.ts, as, ae;
    const uchar *path = p + parsed.ts, *blk = p + parsed.head.block_start;
    if (find_header(blk, (const uchar *)PyBytes_AS_STRING(parsed.low), PyBytes_GET_SIZE(parsed.low), "user-agent", 10,
                    &as, &ae))
        agent = latin1(blk, as, ae);
    else
        agent = Py_NewRef(Py_None);
    if (agent == NULL)
        goto fail;
    int listed = memo_is(PyTuple_GET_ITEM(state, HOSTS), PyTuple_GET_ITEM(state, HOST_WHITELISTED), host, Py_True);
    if (listed < 0)
        goto fail;
    if (!listed && pn > 0 && path[0] == '/') {  /* the URL trails (UrlChecker.check) */
        if (find_sub(path, 0, pn, (const uchar *)"//", 2) >= 0 || has_byte(path, pn, ' '))
            goto done;
        PyObject *mark = PyUnicode_Concat(PyTuple_GET_ITEM(state, HOST_MARK), host);
        if (mark == NULL)
            goto fail;
        quiet = memo_is(PyTuple_GET_ITEM(state, MARKERS), PyTuple_GET_ITEM(state, HAS_MARKER), mark, Py_False);
        Py_DECREF(mark);
        if (quiet <= 0)
            goto check;
        PyObject *low = ascii_lower(path, 0, pn);
        if (low == NULL)
            goto fail;
        PyObject *maybe = PyObject_CallOneArg(PyTuple_GET_ITEM(state, PATH_MAYBE), low);
        Py_DECREF(low);
        if (maybe == NULL)
            goto fail;
        quiet = PyObject_Not(maybe);
        Py_DECREF(maybe);
        if (quiet <= 0)
            goto check;
    }
    if (PyUnicode_Check(agent) && PyUnicode_GET_LENGTH(agent) > 0) {  /* Detector: the exact `ua:` trails */
        quiet = memo_is(PyTuple_GET_ITEM(state, AGENTS), PyTuple_GET_ITEM(state, USER_AGENT), agent, Py_None);
        if (quiet <= 0)
            goto check;
    }
    PyObject *heur = PyTuple_GET_ITEM(state, HEURISTICS);
    if (heur != Py_None) {
        quiet = heuristics_quiet(heur, host, target_path, agent, d, &web_key, &segment, &items, &web);
        if (quiet <= 0)
            goto check;
        if (web >= 0 && web_apply(web, PyTuple_GET_ITEM(heur, 1), web_key, segment, sec, items) < 0)  /* WEB_TABLE */
            goto fail;
    }
    result = Py_NewRef(Py_True);
    goto out;
check:
    if (quiet < 0)
        goto fail;
done:
    result = Py_NewRef(Py_False);
    goto out;
fail:
    result = NULL;
out:
    parsed_clear(&parsed);
    PyBuffer_Release(&view);
    Py_XDECREF(target_path);
    Py_XDECREF(agent);
    Py_XDECREF(web_key);
    Py_XDECREF(segment);
    return result;
}

static PyObject *init(PyObject *Py_UNUSED(module), PyObject *arg)
{
    if (!PyType_Check(arg) || !PyType_IsSubtype((PyTypeObject *)arg, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "init() takes the HttpRequest class (a tuple subclass)");
        return NULL;
    }
    PyObject *names = PyObject_GetAttrString(arg, "_fields");
    if (names == NULL)
        return NULL;
    Py_ssize_t count = PyObject_Length(names);
    Py_DECREF(names);
    if (count < 0)
        return NULL;
    if (count != FIELDS) {
        PyErr_Format(PyExc_TypeError, "init(): the record type has %zd fields, expected %d", count, FIELDS);
        return NULL;
    }
    Py_INCREF(arg);
    Py_XSETREF(record_type, arg);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"init", init, METH_O, "init(record_type): remember the HttpRequest class."},
    {"parse_request", parse_request, METH_O,
     "parse_request(payload: bytes) -> HttpRequest | None (same as core.protocols.http)."},
    {"request_seen", (PyCFunction)(void (*)(void))request_seen, METH_FASTCALL,
     "request_seen(d, sec, clean, state) -> bool: an HTTP request head the detector's "
     "Python path would report nothing for, handled in order (see the source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "core.accel._http", "Compiled twin of core.protocols.http.parse_request.",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__http(void)
{
    build_tables();
    if (empty_str == NULL) {
        empty_str = PyUnicode_InternFromString("");
        slash_str = PyUnicode_InternFromString("/");
        http11_str = PyUnicode_InternFromString("HTTP/1.1");
        http10_str = PyUnicode_InternFromString("HTTP/1.0");
        if (!empty_str || !slash_str || !http11_str || !http10_str || gate_init() < 0)
            return NULL;
        for (int i = 0; i < METHOD_COUNT; i++)
            if ((methods[i].text = PyUnicode_InternFromString(methods[i].name)) == NULL)
                return NULL;
    }
    return PyModule_Create(&module_def);
}
