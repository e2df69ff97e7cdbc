/*
 * core.accel._decode: the batch pre-dispatch of core.detect.Pipeline.process_batch, in C.
 *
 * Where it sits: between capture and detection. For one capture batch (the buffer from pcapy-ng
 * next_batch and its (sec, usec, offset, caplen) uint32 records) it walks every packet and
 *  - skips bulk TCP exactly as the Python loop does (Ethernet + IPv4 with IHL 5, TCP, flags not
 *    a scan combination, no payload or a payload whose first byte starts nothing the sensor
 *    parses, neither port 53) while skipping is allowed;
 *  - decodes the common frames (Ethernet + IPv4 IHL 5 TCP/UDP/ICMP, Ethernet + IPv6 TCP/UDP
 *    without extension headers) into the same Decoded record core.decode.packet.Decoder.decode
 *    returns for them;
 *  - leaves every other frame to the Python decoder (d = None), which keeps its counters; tunnels
 *    are among them: UDP to a VXLAN/GENEVE port (the `tunnel_ports` of init) is handed back, and
 *    GRE, IP-in-IP, IPv6-in-IP and MPLS never reach the fast path, so the Python decoder opens
 *    every tunnel (core/decode/tunnel.py) and both paths see the same inner packets.
 *
 * scan(buf, meta, skip, last_sec[, ipset, port_marks]) -> (records, skipped)
 *   records: list of (sec, usec, i, d, flags), i = index of the packet's first meta word, d =
 *   Decoded or None ("decode it in Python"); flags bit 0 (bulk): the packet passes the static
 *   bulk test (the caller skips it when nothing is being tracked at that moment); bit 1 (clean):
 *   neither address can have an exact-IP or ip:port trail -- not in `ipset` (the store's frozenset
 *   of exact IP rows) and a clear slot hash(addr) & (len - 1) in `port_marks` (the store's
 *   ip:port prefilter), the same tests TrailStore.ip / ip_port start with; without an ipset no
 *   packet is clean. A record with i = -1 only
 *   reports that the packet clock moved to `sec` on a packet skipped here (the per-second tick).
 *   skip: whether bulk packets may be skipped here, in C, at the start of the batch. Because the
 *   whole batch is scanned before any packet is handled, C stops skipping at the first returned
 *   packet that may start flow tracking (a TCP payload starting a TLS handshake record, or a
 *   frame left to the Python decoder) and from there returns bulk packets flagged, so the caller
 *   decides on its live state exactly as the pure-Python loop does.
 * init(decoded_type, parsed_first, scan_flags[, tunnel_ports]): the Decoded class and the two byte
 *   sets (first payload bytes the sensor parses; TCP flag values of scans), from core/detect.py,
 *   and the UDP tunnel destination ports as big-endian 16-bit numbers (core/decode/tunnel.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static PyObject *decoded_type = NULL;
static unsigned char parsed_first[256];
static unsigned char scan_flags[256];
static unsigned char tunnel_ports[65536 / 8];

static PyObject *
decode_init(PyObject *self, PyObject *args)
{
    PyObject *type;
    Py_buffer first, flags, ports = {0};
    (void)self;
    if (!PyArg_ParseTuple(args, "O!y*y*|y*", &PyType_Type, &type, &first, &flags, &ports))
        return NULL;
    int odd_ports = ports.len % 2 != 0;
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type) || odd_ports) {
        PyBuffer_Release(&first);
        PyBuffer_Release(&flags);
        if (ports.obj != NULL)
            PyBuffer_Release(&ports);
        if (odd_ports) {
            PyErr_SetString(PyExc_ValueError, "tunnel_ports must hold 16-bit port numbers");
            return NULL;
        }
        PyErr_SetString(PyExc_TypeError, "decoded_type must be a tuple subclass");
        return NULL;
    }
    memset(parsed_first, 0, sizeof parsed_first);
    memset(scan_flags, 0, sizeof scan_flags);
    for (Py_ssize_t k = 0; k < first.len; k++)
        parsed_first[((unsigned char *)first.buf)[k]] = 1;
    for (Py_ssize_t k = 0; k < flags.len; k++)
        scan_flags[((unsigned char *)flags.buf)[k]] = 1;
    memset(tunnel_ports, 0, sizeof tunnel_ports);
    for (Py_ssize_t k = 0; k + 1 < ports.len; k += 2) {
        unsigned port = ((unsigned)((unsigned char *)ports.buf)[k] << 8) | ((unsigned char *)ports.buf)[k + 1];
        tunnel_ports[port >> 3] |= (unsigned char)(1u << (port & 7));
    }
    PyBuffer_Release(&first);
    PyBuffer_Release(&flags);
    if (ports.obj != NULL)
        PyBuffer_Release(&ports);
    Py_INCREF(type);
    Py_XSETREF(decoded_type, type);
    Py_RETURN_NONE;
}

static inline unsigned
u16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

/* 1 when UDP to this destination port is a tunnel the Python decoder opens */
static inline int
is_tunnel_port(unsigned port)
{
    return (tunnel_ports[port >> 3] >> (port & 7)) & 1;
}

/* Decoded(family, proto, src, dst, sport, dport, flags, buf, poff, pend) */
static PyObject *
make_decoded(int family, int proto, const unsigned char *src, const unsigned char *dst, Py_ssize_t alen,
             unsigned sport, unsigned dport, unsigned flags, PyObject *buf, Py_ssize_t poff, Py_ssize_t pend)
{
    PyTypeObject *type = (PyTypeObject *)decoded_type;
    PyObject *d = type->tp_alloc(type, 10);
    if (d == NULL)
        return NULL;
    PyObject *items[10];
    items[0] = PyLong_FromLong(family);
    items[1] = PyLong_FromLong(proto);
    items[2] = PyBytes_FromStringAndSize((const char *)src, alen);
    items[3] = PyBytes_FromStringAndSize((const char *)dst, alen);
    items[4] = PyLong_FromUnsignedLong(sport);
    items[5] = PyLong_FromUnsignedLong(dport);
    items[6] = PyLong_FromUnsignedLong(flags);
    Py_INCREF(buf);
    items[7] = buf;
    items[8] = PyLong_FromSsize_t(poff);
    items[9] = PyLong_FromSsize_t(pend);
    for (int k = 0; k < 10; k++) {
        if (items[k] == NULL) {
            for (int j = 0; j < 10; j++)
                Py_XDECREF(items[j]);
            Py_DECREF(d);
            return NULL;
        }
    }
    for (int k = 0; k < 10; k++)
        PyTuple_SET_ITEM(d, k, items[k]);
    return d;
}

/* The fast-path decode of the frame p[0:len] (buffer offset `off`): a new Decoded, Py_None
 * (new reference) when the Python decoder must look at it, or NULL on a Python error. */
static PyObject *
fast_decode(const unsigned char *p, Py_ssize_t off, Py_ssize_t len, PyObject *buf, int *handshake)
{
    if (len < 34)
        Py_RETURN_NONE;
    unsigned et = u16(p + 12);
    if (et == 0x0800 && p[14] == 0x45 && !(u16(p + 20) & 0x1FFF)) {
        Py_ssize_t end = len;
        Py_ssize_t ip_end = 14 + (Py_ssize_t)u16(p + 16);
        if (ip_end < end)
            end = ip_end;
        Py_ssize_t l4 = 34;
        unsigned proto = p[23];
        if (proto == 6) {
            if (l4 + 20 <= end) {
                unsigned doff = p[l4 + 12];
                Py_ssize_t poff = l4 + ((doff >> 4) << 2);
                if (doff >= 0x50 && poff <= end) {
                    *handshake = poff < end && p[poff] == 0x16;
                    return make_decoded(4, 6, p + 26, p + 30, 4, u16(p + l4), u16(p + l4 + 2), p[l4 + 13], buf,
                                        off + poff, off + end);
                }
            }
        } else if (proto == 17) {
            if (l4 + 8 <= end) {
                unsigned ulen = u16(p + l4 + 4);
                if (ulen >= 8 && !is_tunnel_port(u16(p + l4 + 2))) {
                    Py_ssize_t uend = l4 + (Py_ssize_t)ulen;
                    return make_decoded(4, 17, p + 26, p + 30, 4, u16(p + l4), u16(p + l4 + 2), 0, buf,
                                        off + l4 + 8, off + (uend < end ? uend : end));
                }
            }
        } else if (proto == 1) {
            /* the general path: total length >= IHL, then type/code/checksum must fit */
            if (u16(p + 16) >= 20 && l4 + 4 <= end)
                return make_decoded(4, 1, p + 26, p + 30, 4, 0, 0, p[l4], buf, off + l4 + 4, off + end);
        }
        Py_RETURN_NONE;
    }
    if (et == 0x86DD && len >= 54 && (p[14] >> 4) == 6) {
        unsigned nh = p[20];
        if (nh != 6 && nh != 17)
            Py_RETURN_NONE;
        Py_ssize_t end = len;
        Py_ssize_t plen = (Py_ssize_t)u16(p + 18);
        if (plen && 54 + plen < end)
            end = 54 + plen;
        Py_ssize_t l4 = 54;
        if (nh == 6) {
            if (l4 + 20 > end)
                Py_RETURN_NONE; /* truncated: counted by the Python decoder */
            unsigned doff = p[l4 + 12];
            if (doff < 0x50)
                Py_RETURN_NONE;
            Py_ssize_t poff = l4 + ((doff >> 4) << 2);
            if (poff > end)
                poff = end;
            *handshake = poff < end && p[poff] == 0x16;
            return make_decoded(6, 6, p + 22, p + 38, 16, u16(p + l4), u16(p + l4 + 2), p[l4 + 13], buf,
                                off + poff, off + end);
        }
        if (l4 + 8 > end || is_tunnel_port(u16(p + l4 + 2)))
            Py_RETURN_NONE;
        unsigned ulen = u16(p + l4 + 4);
        if (ulen) {
            if (ulen < 8)
                Py_RETURN_NONE;
            if (l4 + (Py_ssize_t)ulen < end)
                end = l4 + (Py_ssize_t)ulen;
        }
        return make_decoded(6, 17, p + 22, p + 38, 16, u16(p + l4), u16(p + l4 + 2), 0, buf, off + l4 + 8,
                            off + end);
    }
    Py_RETURN_NONE;
}

#define FLAG_BULK 1
#define FLAG_CLEAN 2

/* 1 when `addr` can have no exact-IP row (not in ipset) and no ip:port row (its slot in the
 * port marks, hash(addr) & (len - 1), is clear) -- the two prefilters of TrailStore.ip and
 * TrailStore.ip_port; 0 when it may; -1 on a Python error. */
static int
ip_clean(PyObject *addr, PyObject *ipset, const Py_buffer *marks)
{
    int in = PySet_Contains(ipset, addr);
    if (in != 0)
        return in < 0 ? -1 : 0;
    Py_hash_t h = PyObject_Hash(addr);
    if (h == -1)
        return -1;
    size_t slot = (size_t)h & (size_t)(marks->len - 1);
    return ((const unsigned char *)marks->buf)[slot] == 0;
}

/* Appends (sec, usec, i, d, flags), stealing the reference to d. `sec_obj` caches the int of the
 * current second (records of one batch mostly share it). */
static int
append_record(PyObject *records, PyObject **sec_obj, unsigned long sec, unsigned long usec, Py_ssize_t i,
              PyObject *d, int flags)
{
    if (*sec_obj == NULL || PyLong_AsUnsignedLong(*sec_obj) != sec) {
        Py_XDECREF(*sec_obj);
        *sec_obj = PyLong_FromUnsignedLong(sec);
        if (*sec_obj == NULL) {
            Py_DECREF(d);
            return -1;
        }
    }
    PyObject *record = PyTuple_New(5);
    PyObject *u = PyLong_FromUnsignedLong(usec), *n = PyLong_FromSsize_t(i), *f = PyLong_FromLong(flags);
    if (record == NULL || u == NULL || n == NULL || f == NULL) {
        Py_XDECREF(record);
        Py_XDECREF(u);
        Py_XDECREF(n);
        Py_XDECREF(f);
        Py_DECREF(d);
        return -1;
    }
    Py_INCREF(*sec_obj);
    PyTuple_SET_ITEM(record, 0, *sec_obj);
    PyTuple_SET_ITEM(record, 1, u);
    PyTuple_SET_ITEM(record, 2, n);
    PyTuple_SET_ITEM(record, 3, d);
    PyTuple_SET_ITEM(record, 4, f);
    int rc = PyList_Append(records, record);
    Py_DECREF(record);
    return rc;
}

static PyObject *
decode_scan(PyObject *self, PyObject *args)
{
    PyObject *bufobj, *metaobj, *ipset = Py_None, *marksobj = Py_None;
    int skip;
    unsigned long last_sec;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOpk|OO", &bufobj, &metaobj, &skip, &last_sec, &ipset, &marksobj))
        return NULL;
    if (decoded_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_decode.init() was not called");
        return NULL;
    }
    Py_buffer marks = {0};
    int use_ips = PyFrozenSet_Check(ipset) && marksobj != Py_None;
    if (use_ips) {
        if (PyObject_GetBuffer(marksobj, &marks, PyBUF_SIMPLE) < 0)
            return NULL;
        if (marks.len < 1 || (marks.len & (marks.len - 1))) {
            PyBuffer_Release(&marks);
            PyErr_SetString(PyExc_ValueError, "port marks must be a power-of-two sized buffer");
            return NULL;
        }
    }
    Py_buffer bview, mview;
    if (PyObject_GetBuffer(bufobj, &bview, PyBUF_SIMPLE) < 0) {
        if (use_ips)
            PyBuffer_Release(&marks);
        return NULL;
    }
    if (PyObject_GetBuffer(metaobj, &mview, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&bview);
        if (use_ips)
            PyBuffer_Release(&marks);
        return NULL;
    }
    PyObject *records = NULL;
    PyObject *sec_obj = NULL; /* the int of the current second, shared by its records */
    const char *fmt = mview.format != NULL ? mview.format : "B";
    char kind = fmt[0] != '\0' && fmt[1] != '\0' ? fmt[1] : fmt[0]; /* "I", or "=I" / "<I" / "@I" */
    if (mview.itemsize != 4 || mview.len % 16 || (kind != 'I' && kind != 'L')) {
        PyErr_SetString(PyExc_ValueError, "meta must hold 4 uint32 per packet");
        goto done;
    }
    records = PyList_New(0);
    if (records == NULL)
        goto done;
    const unsigned char *base = bview.buf;
    const uint32_t *meta = mview.buf;
    Py_ssize_t words = mview.len / 4;
    Py_ssize_t skipped = 0;
    for (Py_ssize_t i = 0; i < words; i += 4) {
        unsigned long sec = meta[i], usec = meta[i + 1];
        Py_ssize_t off = meta[i + 2], caplen = meta[i + 3];
        if (off > bview.len || caplen > bview.len - off) {
            PyErr_SetString(PyExc_ValueError, "meta record points outside the batch buffer");
            Py_CLEAR(records);
            goto done;
        }
        const unsigned char *p = base + off;
        int bulk = 0;
        if (caplen >= 54 && p[23] == 6 && p[14] == 0x45 && p[12] == 8 && p[13] == 0 && !scan_flags[p[47]]) {
            Py_ssize_t start = 34 + ((p[46] >> 4) << 2);
            if (start >= caplen || !parsed_first[p[start]])
                bulk = !(p[34] == 0 && p[35] == 53) && !(p[36] == 0 && p[37] == 53);
        }
        if (bulk && skip) {
            skipped++;
            if (sec != last_sec) {
                last_sec = sec;
                Py_INCREF(Py_None);
                if (append_record(records, &sec_obj, sec, usec, -1, Py_None, 0) < 0) {
                    Py_CLEAR(records);
                    goto done;
                }
            }
            continue;
        }
        int handshake = 0;
        PyObject *d = fast_decode(p, off, caplen, bufobj, &handshake);
        int clean = 0;
        if (d != NULL && d != Py_None && use_ips) {
            clean = ip_clean(PyTuple_GET_ITEM(d, 2), ipset, &marks);
            if (clean > 0)
                clean = ip_clean(PyTuple_GET_ITEM(d, 3), ipset, &marks);
            if (clean < 0) {
                Py_DECREF(d);
                d = NULL;
            }
        }
        if (d == NULL || append_record(records, &sec_obj, sec, usec, i, d, (bulk ? FLAG_BULK : 0) | (clean ? FLAG_CLEAN : 0)) < 0) {
            Py_CLEAR(records);
            goto done;
        }
        last_sec = sec;
        /* an odd frame (decoded in Python) or a TLS handshake record may start flow tracking */
        if (d == Py_None || handshake)
            skip = 0;
    }
done:
    Py_XDECREF(sec_obj);
    PyBuffer_Release(&bview);
    PyBuffer_Release(&mview);
    if (use_ips)
        PyBuffer_Release(&marks);
    if (records == NULL)
        return NULL;
    return Py_BuildValue("(Nn)", records, skipped);
}

static PyMethodDef methods[] = {
    {"init", decode_init, METH_VARARGS, "init(decoded_type, parsed_first, scan_flags[, tunnel_ports])"},
    {"scan", decode_scan, METH_VARARGS, "scan(buf, meta, skip, last_sec) -> (records, skipped)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_decode", "Batch pre-dispatch of the sensor pipeline (see core/accel).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__decode(void)
{
    return PyModule_Create(&module);
}
