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

#include "crc32.h"
#include "decoded.h"
#include "gate.h"

#define MAX_ANSWERS 32
#define MAX_QUESTIONS 8
#define MAX_POINTER_JUMPS 32
#define MAX_NAME_OCTETS 255

#define TYPE_NS 2
#define TYPE_CNAME 5
#define TYPE_PTR 12
#define TYPE_DNAME 39
#define TYPE_AAAA 28
#define CLASS_IN 1

static PyTypeObject *message_type = NULL;
static PyTypeObject *answer_type = NULL;
/* interned method names, made once at import */
static PyObject *move_to_end = NULL, *popitem = NULL;
static PyObject *last_udp = NULL, *generation_str = NULL;  /* attribute names */

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

/* str of text[start:end] (latin-1), in its canonical form (ASCII when no byte is >= 0x80). */
static PyObject *
text_str(const dns_name *name, Py_ssize_t start, Py_ssize_t end)
{
    int high = 0;
    for (Py_ssize_t i = start; i < end && name->high && !high; i++)
        high = name->text[i] >= 0x80;
    PyObject *s = PyUnicode_New(end - start, high ? 0xFF : 0x7F);
    if (s != NULL && end > start)
        memcpy(PyUnicode_1BYTE_DATA(s), name->text + start, (size_t)(end - start));
    return s;
}

/* The whole name as a str (the DnsMessage's qname, an answer's owner or target). */
static PyObject *
name_str(const dns_name *name)
{
    return text_str(name, 0, name->len);
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

/* Last index of '.' in text[0:end), or -1 (str.rfind(".", 0, end)). */
static Py_ssize_t
rfind_dot(const unsigned char *text, Py_ssize_t end)
{
    while (--end >= 0)
        if (text[end] == '.')
            return end;
    return -1;
}

/* ".intranet." in text (ignored_query's second test). */
static int
has_intranet(const dns_name *name)
{
    static const char needle[] = ".intranet.";
    for (Py_ssize_t i = 0; i + 10 <= name->len; i++)
        if (name->text[i] == '.' && memcmp(name->text + i, needle, 10) == 0)
            return 1;
    return 0;
}

/* What DnsHeuristics.query does to the exhaustion table for one name, decided before anything
 * changes: nothing (a prefix already counted, or fewer than three labels), one of four changes
 * that keep the count under the threshold, or a step left to Python (a base in its hold, a full
 * table, a threshold reached, an entry of unexpected shape). */
enum { EX_NONE, EX_CREATE, EX_RESET, EX_PAIR, EX_ADD, EX_PYTHON };

static int
exhaustion_step(PyObject *state, PyObject *sec, const dns_name *name, Py_ssize_t last,
                PyObject **base, PyObject **prefix, PyObject **entry)
{
    if (state == Py_None)
        return EX_NONE;  /* no exhaustion window: dns_query never floods */
    if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != 4 || !PyDict_Check(PyTuple_GET_ITEM(state, 0))) {
        PyErr_SetString(PyExc_TypeError, "query_seen(): exhaustion must be None or (table, threshold, max_keys, window)");
        return -1;
    }
    PyObject *table = PyTuple_GET_ITEM(state, 0);
    long threshold = PyLong_AsLong(PyTuple_GET_ITEM(state, 1));
    Py_ssize_t max_keys = PyLong_AsSsize_t(PyTuple_GET_ITEM(state, 2));
    if ((threshold == -1 || max_keys == -1) && PyErr_Occurred())
        return -1;
    Py_ssize_t cut = last < 0 ? -1 : rfind_dot(name->text, last);
    if (cut < 0)
        return EX_NONE;  /* fewer than three labels */
    if (last - cut <= 4) {  /* a second-level label of <= 3 characters: three labels kept when there are 4+ */
        Py_ssize_t third = rfind_dot(name->text, cut);
        if (third >= 0)
            cut = third;
    }
    if ((*base = text_str(name, cut + 1, name->len)) == NULL || (*prefix = text_str(name, 0, cut)) == NULL)
        return -1;
    *entry = PyDict_GetItemWithError(table, *base);
    if (*entry == NULL) {
        if (PyErr_Occurred())
            return -1;
        /* a full table is swept (and may refuse) in Python; a count of 1 may already alert */
        return PyDict_GET_SIZE(table) >= max_keys || 1 >= threshold ? EX_PYTHON : EX_CREATE;
    }
    if (!PyList_CheckExact(*entry) || PyList_GET_SIZE(*entry) != 3)
        return EX_PYTHON;
    int over = PyObject_RichCompareBool(sec, PyList_GET_ITEM(*entry, 0), Py_GE);
    if (over < 0)
        return -1;
    if (over)  /* the window (or the hold) is over: a new window with this prefix */
        return 1 >= threshold ? EX_PYTHON : EX_RESET;
    int exhausted = PyObject_IsTrue(PyList_GET_ITEM(*entry, 2));
    if (exhausted < 0)
        return -1;
    if (exhausted)
        return EX_PYTHON;  /* flooded: the name's own trail is looked up in Python */
    PyObject *prefixes = PyList_GET_ITEM(*entry, 1);
    if (PyUnicode_CheckExact(prefixes)) {
        int same = PyUnicode_Compare(prefixes, *prefix);
        if (same == -1 && PyErr_Occurred())
            return -1;
        return same == 0 ? EX_NONE : 2 >= threshold ? EX_PYTHON : EX_PAIR;
    }
    if (!PySet_CheckExact(prefixes))
        return EX_PYTHON;
    int counted = PySet_Contains(prefixes, *prefix);
    if (counted < 0)
        return -1;
    return counted ? EX_NONE : PySet_GET_SIZE(prefixes) + 1 >= threshold ? EX_PYTHON : EX_ADD;
}

static int
exhaustion_apply(int step, PyObject *state, PyObject *sec, PyObject *base, PyObject *prefix, PyObject *entry)
{
    if (step == EX_CREATE || step == EX_RESET) {
        PyObject *deadline = PyNumber_Add(sec, PyTuple_GET_ITEM(state, 3));
        if (deadline == NULL)
            return -1;
        if (step == EX_RESET) {
            PyList_SetItem(entry, 0, deadline);  /* steals deadline */
            PyList_SetItem(entry, 1, Py_NewRef(prefix));
            PyList_SetItem(entry, 2, Py_NewRef(Py_False));
            return 0;
        }
        PyObject *created = PyList_New(3);
        if (created == NULL) {
            Py_DECREF(deadline);
            return -1;
        }
        PyList_SET_ITEM(created, 0, deadline);
        PyList_SET_ITEM(created, 1, Py_NewRef(prefix));
        PyList_SET_ITEM(created, 2, Py_NewRef(Py_False));
        int status = PyDict_SetItem(PyTuple_GET_ITEM(state, 0), base, created);
        Py_DECREF(created);
        return status;
    }
    if (step == EX_PAIR) {  /* the first prefix becomes a set of two */
        PyObject *both = PySet_New(NULL);
        if (both == NULL || PySet_Add(both, PyList_GET_ITEM(entry, 1)) < 0 || PySet_Add(both, prefix) < 0) {
            Py_XDECREF(both);
            return -1;
        }
        return PyList_SetItem(entry, 1, both);
    }
    if (step == EX_ADD)
        return PySet_Add(PyList_GET_ITEM(entry, 1), prefix);
    return 0;
}

/* 1 when a suffix of the name at a label boundary (the name itself, then after each '.') is in
 * `domains` (Whitelist.listed_suffix), 0 when none is, -1 on error. */
static int
listed_suffix(const dns_name *name, PyObject *domains)
{
    for (Py_ssize_t start = 0; start <= name->len;) {
        PyObject *suffix = text_str(name, start, name->len);
        if (suffix == NULL)
            return -1;
        int listed = PySet_Contains(domains, suffix);
        Py_DECREF(suffix);
        if (listed != 0)
            return listed;
        while (start < name->len && name->text[start] != '.')
            start++;
        start++;  /* past the '.', or past the end: done */
    }
    return 0;
}

/* 1 when the proof of a regex-trail group (core/trails/regex.py _Group.proof) shows that no
 * trail of it can match the name or a suffix of it: False (no member), or a gate whose search
 * finds none of its literals in the name; 0 when only the patterns can tell; -1 on error. */
static int
regex_excluded(PyObject *proof, PyObject *qname)
{
    if (proof == Py_False)
        return 1;
    if (proof == Py_True)
        return 0;
    return gate_misses(proof, qname);
}

/* 1 when the domain check's walk (DomainChecker.check of a name not in its cache) provably
 * answers None: the name is in its checked form (ASCII, nothing outside [a-z0-9_-] in a label,
 * so _normal leaves it and VALID_DNS_NAME matches) and not numeric, and either a suffix is
 * whitelisted or every step of _lookup misses: no ".ip-adress.com" or ".onion." form, no suffix
 * through the trail bloom (`suffixes`: TrailStore.domain_suffixes), a first label of at most 24
 * characters (the long-domain heuristic answers None), no regex trail by the proofs. 0 when the
 * Python walk must run, -1 on error. */
static int
walk_misses(const dns_name *name, Py_ssize_t last, PyObject *qname, PyObject *whitelist,
            PyObject *suffixes, PyObject *proofs)
{
    static const char ip_adress[] = ".ip-adress.com";
    const unsigned char *text = name->text;
    Py_ssize_t n = name->len, first = -1;
    int numeric = 1;

    if (name->high || name->bad)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        numeric &= (text[i] >= '0' && text[i] <= '9') || text[i] == '.';
        if (text[i] == '.' && first < 0)
            first = i;
        if (text[i] == '.' && i + 7 <= n && memcmp(text + i, ".onion.", 7) == 0)
            return 0;
    }
    if (numeric)
        return 0;  /* never cached (check returns None first) */
    if (whitelist != Py_None) {
        int listed = listed_suffix(name, whitelist);
        if (listed != 0)
            return listed;
    }
    if (n >= 14 && memcmp(text + n - 14, ip_adress, 14) == 0)
        return 0;
    PyObject *maybe = PyObject_CallOneArg(suffixes, qname);
    if (maybe == NULL)
        return -1;
    long bits = PyLong_AsLong(maybe);
    Py_DECREF(maybe);
    if (bits == -1 && PyErr_Occurred())
        return -1;
    if (bits != 0 || first > 24)
        return 0;
    if (!PyTuple_Check(proofs) || PyTuple_GET_SIZE(proofs) != 2 || !PyDict_Check(PyTuple_GET_ITEM(proofs, 0))) {
        PyErr_SetString(PyExc_TypeError, "query_seen(): regex proofs must be (dict, proof)");
        return -1;
    }
    PyObject *tld = text_str(name, last + 1, n);
    if (tld == NULL)
        return -1;
    PyObject *bucket = PyDict_GetItemWithError(PyTuple_GET_ITEM(proofs, 0), tld);
    Py_DECREF(tld);
    if (bucket == NULL && PyErr_Occurred())
        return -1;
    if (bucket != NULL) {
        int excluded = regex_excluded(bucket, qname);
        if (excluded <= 0)
            return excluded;
    }
    return regex_excluded(PyTuple_GET_ITEM(proofs, 1), qname);
}

/* query_core: the whole of the detector's handling of a UDP DNS query that reports nothing, done
 * in order with the live state (core/detect/detector.py _udp, through datagram() below). 0: the
 * payload is anything else, nothing changed, the Python path runs; -1: an error. Otherwise the
 * query is done, with the Python path's effects: its step in the exhaustion window applied as
 * DnsHeuristics.query would, and the domain check's cache as DomainChecker.check leaves it: 1,
 * the name was a cached miss, moved to the cache's end (the caller counts the hit); 2, the name
 * was not cached and the walk provably misses (walk_misses): cached as a miss; 3, the same and
 * the cache's oldest entry was evicted (the caller counts it).
 *
 * state[0:7]: (cache, ignored, exhaustion, cache_entries, whitelist, suffixes, proofs): the
 * domain check's cache (an OrderedDict) and its size, ignored_query's suffix set, the exhaustion
 * window (None: no window; else (table, threshold, max_keys, window) of core/heuristics/dns.py),
 * the whitelist's domain set (or None), TrailStore.domain_suffixes and TrailStore.regex_proofs().
 * Handled only when: a query (QR 0) that parse() reads, a non-empty name not skipped by
 * ignored_query, its IP lookups skipped (`clean`, PTR/AAAA, a class other than IN), a cached
 * miss or a walk that misses, and an exhaustion step that cannot alert or flood: none, a new or
 * renewed window, or a prefix added below the threshold. */
static int
query_core(const unsigned char *msg, Py_ssize_t end, PyObject *sec, int clean, PyObject *const *state)
{
    PyObject *cache = state[0], *ignored = state[1], *exhaustion = state[2], *whitelist = state[4];
    Py_ssize_t cache_entries = PyLong_AsSsize_t(state[3]);
    if (cache_entries == -1 && PyErr_Occurred())
        return -1;
    if (!PyDict_Check(cache) || !PyAnySet_Check(ignored) || (whitelist != Py_None && !PyAnySet_Check(whitelist))) {
        PyErr_SetString(PyExc_TypeError, "query_seen(): state holds (dict, set, exhaustion, int, set | None, ...)");
        return -1;
    }
    dns_name name;
    if (end < 12 || (u16(msg + 2) & 0x8000) || u16(msg + 4) == 0 || !read_name(msg, 12, end, &name, 1)
        || name.after + 4 > end || name.len == 0)
        return 0;
    unsigned qtype = u16(msg + name.after), qclass = u16(msg + name.after + 2);
    if (!clean && qtype != TYPE_PTR && qtype != TYPE_AAAA && qclass == CLASS_IN)
        return 0;  /* the query's IP lookups run in Python */
    Py_ssize_t last = rfind_dot(name.text, name.len);
    if (has_intranet(&name))
        return 0;
    PyObject *tld = text_str(&name, last + 1, name.len);
    if (tld == NULL)
        return -1;
    int skipped = PySet_Contains(ignored, tld);
    Py_DECREF(tld);
    if (skipped != 0)
        return skipped < 0 ? -1 : 0;

    PyObject *qname = name_str(&name), *base = NULL, *prefix = NULL, *entry = NULL;
    int result = -1;
    if (qname == NULL)
        return -1;
    PyObject *cached = PyDict_GetItemWithError(cache, qname);
    int outcome = 1;
    if (cached == NULL) {  /* not cached: the walk must provably miss */
        if (PyErr_Occurred())
            goto done;
        int missed = walk_misses(&name, last, qname, whitelist, state[5], state[6]);
        if (missed <= 0) {
            result = missed;
            goto done;
        }
        outcome = 2;
    } else if (cached != Py_None) {  /* a hit to report: the Python path */
        result = 0;
        goto done;
    }
    int step = exhaustion_step(exhaustion, sec, &name, last, &base, &prefix, &entry);
    if (step < 0)
        goto done;
    if (step == EX_PYTHON) {
        result = 0;
        goto done;
    }
    if (exhaustion_apply(step, exhaustion, sec, base, prefix, entry) < 0)
        goto done;
    if (outcome == 1) {
        PyObject *moved = PyObject_CallMethodOneArg(cache, move_to_end, qname);
        if (moved == NULL)
            goto done;
        Py_DECREF(moved);
    } else if (cache_entries > 0) {  /* DomainChecker._remember */
        if (PyObject_SetItem(cache, qname, Py_None) < 0)
            goto done;
        if (PyDict_GET_SIZE(cache) > cache_entries) {
            PyObject *oldest = PyObject_CallMethodOneArg(cache, popitem, Py_False);
            if (oldest == NULL)
                goto done;
            Py_DECREF(oldest);
            outcome = 3;
        }
    }
    result = outcome;
done:
    Py_DECREF(qname);
    Py_XDECREF(base);
    Py_XDECREF(prefix);
    return result;
}

#define QUERY_STATE 7

/* query_seen(payload, sec, clean, state) -> 0 | 1 | 2 | 3: query_core on a payload (tests). */
static PyObject *
dns_query_seen(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "query_seen() takes 4 positional arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *payload = args[0], *sec = args[1], *state = args[3];
    if (!PyBytes_Check(payload) || !PyLong_Check(sec) || !PyTuple_Check(state) || PyTuple_GET_SIZE(state) != QUERY_STATE) {
        PyErr_SetString(PyExc_TypeError, "query_seen(payload: bytes, sec: int, clean, state: 7-tuple)");
        return NULL;
    }
    int clean = PyObject_IsTrue(args[2]);
    if (clean < 0)
        return NULL;
    int done = query_core((const unsigned char *)PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload), sec, clean,
                          &PyTuple_GET_ITEM(state, 0));
    return done < 0 ? NULL : PyLong_FromLong(done);
}

/* datagram(d, sec, clean, owner, state) -> 0 | 1 | 2 | 3 | 4
 *
 * The start of the detector's handling of a UDP datagram (core/detect/detector.py _udp, whose
 * Python lines are the specification): its duplicate test, then a DNS query that reports
 * nothing. The key (sec, src, dst, sport, dport, zlib.crc32 of the payload's first 512 bytes) is
 * compared with owner._last_udp: 1, the same datagram again (nothing else to do); otherwise it
 * becomes owner._last_udp and, for a datagram from or to port 53, query_core runs when `state`
 * is (store, generation, *the query_seen state) and the store is still at that generation (the
 * state was made when the domain check's cache belonged to it; a store swapped for another
 * drops the state): 2, 3 or 4 for its answers 1, 2 or 3. 0: the rest of _udp runs in Python (the
 * key already set).
 * d: a Decoded UDP record (buf supports the buffer protocol; poff <= pend within it). */
static PyObject *
dns_datagram(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "datagram() takes 5 positional arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *d = args[0], *sec = args[1], *owner = args[3], *state = args[4];
    if (!PyLong_Check(sec)
        || (state != Py_None && (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != QUERY_STATE + 2))) {
        PyErr_SetString(PyExc_TypeError, "datagram(d: Decoded, sec: int, clean, owner, state: 9-tuple | None)");
        return NULL;
    }
    int clean = PyObject_IsTrue(args[2]);
    if (clean < 0)
        return NULL;
    Py_buffer view;
    const unsigned char *payload;
    Py_ssize_t size;
    if (decoded_payload(d, &view, &payload, &size) < 0)
        return NULL;
    PyObject *result = NULL, *key = NULL, *crc = NULL, *last = NULL;
    long sport = PyLong_AsLong(PyTuple_GET_ITEM(d, 4)), dport = PyLong_AsLong(PyTuple_GET_ITEM(d, 5));
    if (PyErr_Occurred())
        goto out;
    crc = PyLong_FromUnsignedLong(crc32_feed(0xFFFFFFFFu, payload, (size_t)(size <= 512 ? size : 512)) ^ 0xFFFFFFFFu);
    if (crc == NULL)
        goto out;
    key = PyTuple_Pack(6, sec, PyTuple_GET_ITEM(d, 2), PyTuple_GET_ITEM(d, 3), PyTuple_GET_ITEM(d, 4),
                       PyTuple_GET_ITEM(d, 5), crc);
    if (key == NULL || (last = PyObject_GetAttr(owner, last_udp)) == NULL)
        goto out;
    int repeat = PyObject_RichCompareBool(key, last, Py_EQ);
    if (repeat != 0) {
        result = repeat < 0 ? NULL : PyLong_FromLong(1);
        goto out;
    }
    if (PyObject_SetAttr(owner, last_udp, key) < 0)
        goto out;
    int done = 0;
    if (state != Py_None && (dport == 53 || sport == 53)) {
        PyObject *current = PyObject_GetAttr(PyTuple_GET_ITEM(state, 0), generation_str);
        int fresh = current != NULL ? PyObject_RichCompareBool(current, PyTuple_GET_ITEM(state, 1), Py_EQ) : -1;
        Py_XDECREF(current);
        if (fresh < 0)
            goto out;
        if (fresh && (done = query_core(payload, size, sec, clean, &PyTuple_GET_ITEM(state, 2))) < 0)
            goto out;
    }
    result = PyLong_FromLong(done ? done + 1 : 0);
out:
    PyBuffer_Release(&view);
    Py_XDECREF(crc);
    Py_XDECREF(key);
    Py_XDECREF(last);
    return result;
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
    {"datagram", (PyCFunction)(void (*)(void))dns_datagram, METH_FASTCALL,
     "datagram(d, sec, clean, owner, state) -> 0..4: the detector's duplicate-datagram test, then "
     "query_seen for a DNS query (see the source)."},
    {"query_seen", (PyCFunction)(void (*)(void))dns_query_seen, METH_FASTCALL,
     "query_seen(payload, sec, clean, state) -> 0 | 1 | 2 | 3: a DNS query the detector's "
     "Python path would report nothing for, handled in order (see the source)."},
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
    move_to_end = PyUnicode_InternFromString("move_to_end");
    popitem = PyUnicode_InternFromString("popitem");
    last_udp = PyUnicode_InternFromString("_last_udp");
    generation_str = PyUnicode_InternFromString("generation");
    if (move_to_end == NULL || popitem == NULL || last_udp == NULL || generation_str == NULL || gate_init() < 0)
        return NULL;
    crc32_init();
    return PyModule_Create(&module);
}
