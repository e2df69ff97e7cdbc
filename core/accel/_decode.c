/*
 * core.accel._decode: the batch pre-dispatch of core.detect.Pipeline.process_batch, in C.
 *
 * Where it sits: between capture and detection. For one capture batch (the buffer from pcapy-ng
 * next_batch and its (sec, usec, offset, caplen) uint32 records) it walks every packet and
 *  - skips bulk TCP exactly as the Python loop does (Ethernet + IPv4 with IHL 5, TCP, flags not
 *    a scan combination, no payload or a payload whose first byte starts nothing the sensor
 *    parses, neither port 53) while skipping is allowed, and applies the same test to every TCP
 *    record it decodes (core.detect.bulk_record: IPv6, and packets carried by a tunnel);
 *  - decodes the common frames (Ethernet + IPv4 IHL 5 TCP/UDP/ICMP, Ethernet + IPv6 TCP/UDP
 *    without extension headers, the same under up to four VLAN tags; with linktype 113 or 276,
 *    the Linux cooked captures of the "any" interface, the same behind their headers) into the
 *    same Decoded record core.decode.packet.Decoder.decode returns for them;
 *  - with a `counters` dict, opens one tunnel level the way core/decode/tunnel.py does (VXLAN and
 *    GENEVE on the init ports, GRE, GRE-TEB, ERSPAN I/II/III, IP-in-IP, IPv6-in-IP, MPLS carrying
 *    IP) when the frame is plain Ethernet + IPv4 IHL 5 / IPv6 or Ethernet + MPLS and the carried
 *    packet is Ethernet (no tag) + IPv4 IHL 5 / IPv6 TCP or UDP (not to a tunnel port), or IPv4
 *    ICMP; it returns the carried packet's record and adds 1 to counters["decap_<kind>"], as the
 *    Python decoder does. Any other tunnel (nested, malformed, unusual) is handed back whole;
 *  - leaves every other frame to the Python decoder (d = None), which keeps its counters.
 *
 * scan(buf, meta, skip, last_sec[, ip_marks, port_marks[, counters[, syns[, udps, last_udp[, linktype]]]]])
 *   -> (records, skipped, ended)
 *   records: list of (sec, usec, i, d, flags), i = index of the packet's first meta word, d =
 *   Decoded or None ("decode it in Python"); flags bit 0 (bulk): the packet passes the static
 *   bulk test (the caller skips it when nothing is being tracked at that moment); bit 1 (clean):
 *   neither address can have an exact-IP or ip:port trail -- one of the two bits of its slot
 *   hash(addr) & (len - 1) clear both in `ip_marks` (the store's exact-IP prefilter) and in
 *   `port_marks` (its ip:port prefilter; core/trails/view.py), the same tests TrailStore.ip /
 *   ip_port start with; without ip_marks no packet is clean (an ICMP packet that would be clean
 *   is not returned: the detector has nothing to do for it). A record with i = -1 only
 *   reports that the packet clock moved to `sec` on a packet skipped here (the per-second tick).
 *   skipped: bulk packets skipped here. ended: bytes, the native uint32 meta indices of the
 *   packets whose handling ended here without being bulk (clean ICMP, SYNs and datagrams counted
 *   here, repeated datagrams).
 *   skip: whether bulk packets may be skipped here, in C, at the start of the batch. Because the
 *   whole batch is scanned before any packet is handled, C stops skipping at the first returned
 *   packet that may start flow tracking (a TCP payload starting a TLS handshake record, or a
 *   frame left to the Python decoder) and from there returns bulk packets flagged, so the caller
 *   decides on its live state exactly as the pure-Python loop does.
 * syns (optional): (table, threshold, max_keys, handed_back_ports, next_tick) of the port-scan window
 *   (core/heuristics/scan.py ScanHeuristics.syn_shortcut). A clean TCP SYN without payload, to a
 *   port not in handed_back_ports, whose key src + dst is absent from `table` or holds that one
 *   port as its single observation (the int sec << 16 | port), or whose count stays within the
 *   threshold (a second port: the dict of WindowTable.promote, for thresholds of 2 and more; a
 *   dict that does not grow past the threshold) is counted here -- exactly what scan.py's
 *   `count` does in those cases, none of which can alert -- and not returned. It is not counted
 *   here when the table could reach max_keys during this batch (a sweep at the cap drops
 *   single observations, so it must run in packet order), from the first packet of the batch at
 *   or after next_tick on (the heuristics' expiry runs there, and every update after it must
 *   follow it; none while next_tick is -1), when threshold < 1, when an
 *   earlier record of the batch with a scan flag combination had the same key (C cannot see the
 *   Python side's updates, so a key's later SYNs follow it there, in order), or after a frame
 *   left to the Python decoder (its key is unknown). The next record returned after SYNs counted
 *   here carries flag bit 2 (syn gap): the caller forgets its last-SYN duplicate key, as handling
 *   those SYNs would have replaced it; a batch ending with counted SYNs ends with a clock-only
 *   record carrying it.
 * udps, last_udp (optional): the UDP-scan window's spec (ScanHeuristics.udp_shortcut, read as
 *   for syns) and the detector's duplicate-datagram key (_last_udp) when the batch starts. The
 *   walk follows that key from datagram to datagram as the detector's _udp does: a UDP record
 *   equal to the datagram before it is ended here (the detector ignores it); a clean one that is
 *   not DNS (port 53) nor a QUIC long header, whose only effect would be its port count (or
 *   none, for a reply from a service port to an ephemeral one), is counted and ended here under
 *   the rules of syns. Before the next UDP record returned after datagrams ended here (or a frame
 *   left to the Python decoder, where the walk loses the key and stops, or the expiry point, or
 *   the batch's end) comes a clock-only record with flag bit 3 (udp last) and, in place of the
 *   Decoded, the key of the last datagram: the caller makes it its _last_udp.
 * init(decoded_type, parsed_first, scan_flags[, vxlan_ports, geneve_ports]): the Decoded class and
 *   the two byte sets (first payload bytes the sensor parses; TCP flag values of scans), from
 *   core/detect.py, and the VXLAN and GENEVE UDP destination ports as big-endian 16-bit numbers
 *   (core/decode/tunnel.py); UDP to these ports is never decoded as plain UDP here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "crc32.h"
#include "portcount.h"

static PyObject *decoded_type = NULL;
static unsigned char parsed_first[256];
static unsigned char scan_flags[256];
static unsigned char vxlan_ports[65536 / 8];
static unsigned char geneve_ports[65536 / 8];

/* decapsulation kinds, named as the Python decoder's counters */
enum { K_VXLAN, K_GENEVE, K_GRE, K_GRE_TEB, K_ERSPAN1, K_ERSPAN2, K_ERSPAN3, K_IPIP, K_IPV6IP, K_MPLS, N_KINDS };
static const char *const kind_keys[N_KINDS] = {
    "decap_vxlan", "decap_geneve", "decap_gre", "decap_gre_teb", "decap_erspan1", "decap_erspan2",
    "decap_erspan3", "decap_ip_in_ip", "decap_ipv6_in_ip", "decap_mpls",
};
static PyObject *kind_names[N_KINDS];

static void
set_ports(unsigned char *bitmap, const Py_buffer *ports)
{
    memset(bitmap, 0, 65536 / 8);
    for (Py_ssize_t k = 0; k + 1 < ports->len; k += 2) {
        unsigned port = ((unsigned)((unsigned char *)ports->buf)[k] << 8) | ((unsigned char *)ports->buf)[k + 1];
        bitmap[port >> 3] |= (unsigned char)(1u << (port & 7));
    }
}

static PyObject *
decode_init(PyObject *self, PyObject *args)
{
    PyObject *type;
    Py_buffer first, flags, vports = {0}, gports = {0};
    (void)self;
    if (!PyArg_ParseTuple(args, "O!y*y*|y*y*", &PyType_Type, &type, &first, &flags, &vports, &gports))
        return NULL;
    int odd_ports = vports.len % 2 != 0 || gports.len % 2 != 0;
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type) || odd_ports) {
        PyBuffer_Release(&first);
        PyBuffer_Release(&flags);
        if (vports.obj != NULL)
            PyBuffer_Release(&vports);
        if (gports.obj != NULL)
            PyBuffer_Release(&gports);
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
    set_ports(vxlan_ports, &vports);
    set_ports(geneve_ports, &gports);
    PyBuffer_Release(&first);
    PyBuffer_Release(&flags);
    if (vports.obj != NULL)
        PyBuffer_Release(&vports);
    if (gports.obj != NULL)
        PyBuffer_Release(&gports);
    for (int k = 0; k < N_KINDS; k++) {
        if (kind_names[k] == NULL && (kind_names[k] = PyUnicode_InternFromString(kind_keys[k])) == NULL)
            return NULL;
    }
    Py_INCREF(type);
    Py_XSETREF(decoded_type, type);
    Py_RETURN_NONE;
}

static inline unsigned
u16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static inline int
port_in(const unsigned char *bitmap, unsigned port)
{
    return (bitmap[port >> 3] >> (port & 7)) & 1;
}

/* 1 when UDP to this destination port is a tunnel the decoder opens */
static inline int
is_tunnel_port(unsigned port)
{
    return port_in(vxlan_ports, port) | port_in(geneve_ports, port);
}

/* core.detect.bulk_record on a TCP record of frame p: provably no event */
static inline int
record_bulk(const unsigned char *p, Py_ssize_t poff, Py_ssize_t pend, unsigned flags, unsigned sport, unsigned dport)
{
    return !scan_flags[flags] && (poff >= pend || !parsed_first[p[poff]]) && sport != 53 && dport != 53;
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

/* A packet carried by a tunnel, its IP header at p[ip], bounded by `end`, decoded with the
 * general-path rules of the Python decoder (core/decode/packet.py _ipv4/_ipv6/_transport) for
 * the cases handled here: IPv4 IHL 5 (not a later fragment) TCP/UDP/ICMP, IPv6 without extension
 * headers TCP/UDP. Py_None for anything else (the Python decoder decodes the whole frame again). */
static PyObject *
decode_carried_ip(const unsigned char *p, Py_ssize_t off, Py_ssize_t ip, Py_ssize_t end, PyObject *buf,
                  int *handshake, int *rbulk)
{
    int family;
    unsigned proto;
    Py_ssize_t l4, alen;
    const unsigned char *src, *dst;
    if ((p[ip] >> 4) == 4) {
        if (ip + 20 > end || p[ip] != 0x45 || (u16(p + ip + 6) & 0x1FFF))
            Py_RETURN_NONE;
        Py_ssize_t tl = (Py_ssize_t)u16(p + ip + 2);
        if (tl < 20)
            Py_RETURN_NONE;
        if (ip + tl < end)
            end = ip + tl;
        family = 4, proto = p[ip + 9], l4 = ip + 20, alen = 4, src = p + ip + 12, dst = p + ip + 16;
        if (l4 > end)
            Py_RETURN_NONE;
    } else {
        if (ip + 40 > end)
            Py_RETURN_NONE;
        Py_ssize_t plen = (Py_ssize_t)u16(p + ip + 4);
        if (plen && ip + 40 + plen < end)
            end = ip + 40 + plen;
        family = 6, proto = p[ip + 6], l4 = ip + 40, alen = 16, src = p + ip + 8, dst = p + ip + 24;
    }
    if (proto == 6) {
        if (l4 + 20 > end || p[l4 + 12] < 0x50)
            Py_RETURN_NONE;
        Py_ssize_t poff = l4 + ((p[l4 + 12] >> 4) << 2);
        if (poff > end)
            poff = end;
        unsigned sport = u16(p + l4), dport = u16(p + l4 + 2), flags = p[l4 + 13];
        *handshake = poff < end && p[poff] == 0x16;
        *rbulk = record_bulk(p, poff, end, flags, sport, dport);
        return make_decoded(family, 6, src, dst, alen, sport, dport, flags, buf, off + poff, off + end);
    }
    if (proto == 17) {
        if (l4 + 8 > end)
            Py_RETURN_NONE;
        unsigned ulen = u16(p + l4 + 4), dport = u16(p + l4 + 2);
        if (ulen < 8 || is_tunnel_port(dport))
            Py_RETURN_NONE;
        if (l4 + (Py_ssize_t)ulen < end)
            end = l4 + (Py_ssize_t)ulen;
        return make_decoded(family, 17, src, dst, alen, u16(p + l4), dport, 0, buf, off + l4 + 8, off + end);
    }
    if (proto == 1 && family == 4 && l4 + 4 <= end)
        return make_decoded(4, 1, src, dst, 4, 0, 0, p[l4], buf, off + l4 + 4, off + end);
    Py_RETURN_NONE;
}

#define CARRIES_ETHERNET 1
#define MAX_VLAN_DEPTH 4 /* core/decode/link.py MAX_VLAN_DEPTH */
#define LINKTYPE_ETHERNET 1
#define LINKTYPE_LINUX_SLL 113
#define LINKTYPE_LINUX_SLL2 276
#define CARRIES_IP 2

/* One tunnel level of frame p (core/decode/tunnel.py): `proto` 17 (UDP to a tunnel port), 4, 41,
 * 47 at l4, or 0 for an MPLS stack at l4; `end` bounds the tunnel payload. The carried packet's
 * record (and counters["decap_<kind>"] + 1), Py_None to hand the frame back, NULL on error. */
static PyObject *
decode_tunnel(const unsigned char *p, Py_ssize_t off, Py_ssize_t l4, Py_ssize_t end, unsigned proto,
              PyObject *buf, int *handshake, int *rbulk, PyObject *counters)
{
    int kind, what = CARRIES_IP;
    unsigned want = 0; /* required IP version (0: any) */
    Py_ssize_t inner;
    if (proto == 17) {
        if (l4 + 8 > end || u16(p + l4 + 4) < 8)
            Py_RETURN_NONE;
        Py_ssize_t uend = l4 + (Py_ssize_t)u16(p + l4 + 4), pos = l4 + 8;
        if (uend < end)
            end = uend;
        if (pos + 8 > end)
            Py_RETURN_NONE;
        if (port_in(vxlan_ports, u16(p + l4 + 2))) {
            if (!(p[pos] & 0x08))
                Py_RETURN_NONE;
            kind = K_VXLAN, what = CARRIES_ETHERNET, inner = pos + 8;
        } else {
            if (p[pos] >> 6)
                Py_RETURN_NONE;
            inner = pos + 8 + ((p[pos] & 0x3F) << 2);
            unsigned type = u16(p + pos + 2);
            kind = K_GENEVE;
            if (inner > end)
                Py_RETURN_NONE;
            if (type == 0x6558)
                what = CARRIES_ETHERNET;
            else if (type == 0x0800 || type == 0x86DD)
                want = type == 0x0800 ? 4 : 6;
            else
                Py_RETURN_NONE;
        }
    } else if (proto == 4 || proto == 41) {
        kind = proto == 4 ? K_IPIP : K_IPV6IP, want = proto == 4 ? 4 : 6, inner = l4;
    } else if (proto == 47) {
        if (l4 + 4 > end || (p[l4] & 0x4C) || (p[l4 + 1] & 0x07))
            Py_RETURN_NONE;
        unsigned flags = p[l4], type = u16(p + l4 + 2);
        Py_ssize_t start = l4 + 4 + ((flags & 0x80) ? 4 : 0) + ((flags & 0x20) ? 4 : 0) + ((flags & 0x10) ? 4 : 0);
        if (start > end)
            Py_RETURN_NONE;
        if (type == 0x88BE) {
            if (!(flags & 0x10)) {
                kind = K_ERSPAN1, what = CARRIES_ETHERNET, inner = start;
            } else {
                if (start + 8 > end || (p[start] >> 4) != 1)
                    Py_RETURN_NONE;
                kind = K_ERSPAN2, what = CARRIES_ETHERNET, inner = start + 8;
            }
        } else if (type == 0x22EB) {
            if (start + 12 > end || (p[start] >> 4) != 2)
                Py_RETURN_NONE;
            unsigned frame_type = (p[start + 10] >> 2) & 0x1F;
            inner = start + ((p[start + 11] & 1) ? 20 : 12);
            if (inner > end || (frame_type != 0 && frame_type != 2))
                Py_RETURN_NONE;
            kind = K_ERSPAN3, what = frame_type == 0 ? CARRIES_ETHERNET : CARRIES_IP;
        } else if (type == 0x0800 || type == 0x86DD) {
            kind = K_GRE, want = type == 0x0800 ? 4 : 6, inner = start;
        } else if (type == 0x6558) {
            kind = K_GRE_TEB, what = CARRIES_ETHERNET, inner = start;
        } else {
            Py_RETURN_NONE;
        }
    } else { /* MPLS label stack to the bottom of stack, IP under it */
        Py_ssize_t pos = l4;
        int labels = 0, bottom = 0;
        while (!bottom) {
            if (labels++ == 8 || pos + 4 > end) /* core/decode/tunnel.py MAX_MPLS_LABELS */
                Py_RETURN_NONE;
            bottom = p[pos + 2] & 1;
            pos += 4;
        }
        if (pos >= end || ((p[pos] >> 4) != 4 && (p[pos] >> 4) != 6))
            Py_RETURN_NONE;
        kind = K_MPLS, inner = pos;
    }
    Py_ssize_t ip = inner;
    if (what == CARRIES_ETHERNET) {
        if (inner + 14 > end)
            Py_RETURN_NONE;
        unsigned type = u16(p + inner + 12);
        if (type != 0x0800 && type != 0x86DD)
            Py_RETURN_NONE;
        ip = inner + 14;
    }
    if (ip >= end)
        Py_RETURN_NONE;
    unsigned version = p[ip] >> 4;
    if ((version != 4 && version != 6) || (want && version != want))
        Py_RETURN_NONE;
    PyObject *d = decode_carried_ip(p, off, ip, end, buf, handshake, rbulk);
    if (d == NULL || d == Py_None)
        return d;
    PyObject *key = kind_names[kind];
    PyObject *count = PyDict_GetItemWithError(counters, key);
    long n = count != NULL ? PyLong_AsLong(count) : 0;
    PyObject *next = PyErr_Occurred() ? NULL : PyLong_FromLong(n + 1);
    if (next == NULL || PyDict_SetItem(counters, key, next) < 0) {
        Py_XDECREF(next);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(next);
    return d;
}

/* The frame p[0:len] whose payload of type `et` starts at p[pos] (core/decode/link.py
 * after_ethertype): up to MAX_VLAN_DEPTH 802.1Q / 802.1ad / QinQ tags, then IPv4 or IPv6 decoded
 * by the general path's rules (decode_carried_ip); Py_None for anything else (PPPoE, SNAP, MPLS,
 * deeper stacks, other types: the Python decoder reads and counts those). */
static PyObject *
ip_after_ethertype(const unsigned char *p, Py_ssize_t off, Py_ssize_t len, unsigned et, Py_ssize_t pos,
                   PyObject *buf, int *handshake, int *rbulk)
{
    for (int depth = 1; et == 0x8100 || et == 0x88A8 || et == 0x9100; depth++) {
        if (depth > MAX_VLAN_DEPTH || pos + 4 > len)
            Py_RETURN_NONE;
        et = u16(p + pos + 2);
        pos += 4;
    }
    if ((et != 0x0800 && et != 0x86DD) || pos >= len || ((p[pos] >> 4) != 4 && (p[pos] >> 4) != 6))
        Py_RETURN_NONE;
    return decode_carried_ip(p, off, pos, len, buf, handshake, rbulk);
}

/* A frame of Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 113: the protocol at bytes 14-15, the
 * payload at 16) or v2 (LINKTYPE_LINUX_SLL2, 276: the protocol at bytes 0-1, the payload at 20),
 * what a capture on the "any" interface delivers: ip_after_ethertype, as core/decode/link.py
 * linux_sll / linux_sll2 and the general path read it. */
static PyObject *
cooked_decode(const unsigned char *p, Py_ssize_t off, Py_ssize_t len, int linktype, PyObject *buf, int *handshake,
              int *rbulk)
{
    Py_ssize_t head = linktype == LINKTYPE_LINUX_SLL ? 16 : 20;
    if (len < head)
        Py_RETURN_NONE;
    unsigned et = linktype == LINKTYPE_LINUX_SLL ? u16(p + 14) : u16(p);
    return ip_after_ethertype(p, off, len, et, head, buf, handshake, rbulk);
}

/* The fast-path decode of the frame p[0:len] (buffer offset `off`): a new Decoded, Py_None
 * (new reference) when the Python decoder must look at it, or NULL on a Python error.
 * *rbulk: the record is TCP and passes core.detect.bulk_record. With `counters` (a dict, else
 * NULL) one tunnel level is opened (decode_tunnel). */
static PyObject *
fast_decode(const unsigned char *p, Py_ssize_t off, Py_ssize_t len, PyObject *buf, int *handshake, int *rbulk,
            PyObject *counters)
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
                    *rbulk = record_bulk(p, poff, end, p[l4 + 13], u16(p + l4), u16(p + l4 + 2));
                    return make_decoded(4, 6, p + 26, p + 30, 4, u16(p + l4), u16(p + l4 + 2), p[l4 + 13], buf,
                                        off + poff, off + end);
                }
            }
        } else if (proto == 17) {
            if (l4 + 8 <= end) {
                unsigned ulen = u16(p + l4 + 4);
                if (is_tunnel_port(u16(p + l4 + 2))) {
                    if (counters != NULL && u16(p + 16) >= 20)
                        return decode_tunnel(p, off, l4, end, 17, buf, handshake, rbulk, counters);
                } else if (ulen >= 8) {
                    Py_ssize_t uend = l4 + (Py_ssize_t)ulen;
                    return make_decoded(4, 17, p + 26, p + 30, 4, u16(p + l4), u16(p + l4 + 2), 0, buf,
                                        off + l4 + 8, off + (uend < end ? uend : end));
                }
            }
        } else if (proto == 1) {
            /* the general path: total length >= IHL, then type/code/checksum must fit */
            if (u16(p + 16) >= 20 && l4 + 4 <= end)
                return make_decoded(4, 1, p + 26, p + 30, 4, 0, 0, p[l4], buf, off + l4 + 4, off + end);
        } else if ((proto == 4 || proto == 41 || proto == 47) && counters != NULL && u16(p + 16) >= 20
                   && l4 <= end) {
            return decode_tunnel(p, off, l4, end, proto, buf, handshake, rbulk, counters);
        }
        Py_RETURN_NONE;
    }
    if ((et == 0x8847 || et == 0x8848) && counters != NULL)
        return decode_tunnel(p, off, 14, len, 0, buf, handshake, rbulk, counters);
    if (et == 0x8100 || et == 0x88A8 || et == 0x9100)
        return ip_after_ethertype(p, off, len, et, 14, buf, handshake, rbulk);
    if (et == 0x86DD && len >= 54 && (p[14] >> 4) == 6) {
        unsigned nh = p[20];
        Py_ssize_t end = len;
        Py_ssize_t plen = (Py_ssize_t)u16(p + 18);
        if (plen && 54 + plen < end)
            end = 54 + plen;
        Py_ssize_t l4 = 54;
        if ((nh == 4 || nh == 41 || nh == 47) && counters != NULL)
            return decode_tunnel(p, off, l4, end, nh, buf, handshake, rbulk, counters);
        if (nh != 6 && nh != 17)
            Py_RETURN_NONE;
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
            *rbulk = record_bulk(p, poff, end, p[l4 + 13], u16(p + l4), u16(p + l4 + 2));
            return make_decoded(6, 6, p + 22, p + 38, 16, u16(p + l4), u16(p + l4 + 2), p[l4 + 13], buf,
                                off + poff, off + end);
        }
        if (l4 + 8 > end)
            Py_RETURN_NONE;
        if (is_tunnel_port(u16(p + l4 + 2))) {
            if (counters != NULL)
                return decode_tunnel(p, off, l4, end, 17, buf, handshake, rbulk, counters);
            Py_RETURN_NONE;
        }
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

/* core/trails/view.py PORT_MARK_BITS: entry i is the (i % 28)th pair of distinct bits of a byte,
 * pairs in the order (0,1), (0,2) .. (0,7), (1,2) .. (6,7); filled by fill_port_mark_bits(). */
static unsigned char port_mark_bits[64];

static void
fill_port_mark_bits(void)
{
    unsigned char pairs[28];
    int n = 0;
    for (int a = 0; a < 8; a++)
        for (int b = a + 1; b < 8; b++)
            pairs[n++] = (unsigned char)(1u << a | 1u << b);
    for (int i = 0; i < 64; i++)
        port_mark_bits[i] = pairs[i % 28];
}

#define FLAG_BULK 1
#define FLAG_CLEAN 2
#define FLAG_SYN_GAP 4
#define FLAG_UDP_LAST 8
#define SYN 0x02

/* 1 when `addr` can have no exact-IP row and no ip:port row (in both prefilters its slot, one of
 * its two bits, is clear) -- the two prefilters of TrailStore.ip and TrailStore.ip_port; 0 when
 * it may; -1 on a Python error. */
static int
ip_clean(PyObject *addr, const Py_buffer *ip_marks, const Py_buffer *port_marks)
{
    Py_hash_t h = PyObject_Hash(addr);
    if (h == -1)
        return -1;
    /* both bits of the slot's pair (core/trails/view.py PORT_MARK_BITS), picked by hash bits 32-37 */
    unsigned char pair = port_mark_bits[((unsigned long long)(long long)h >> 32) & 63];  /* Python's h >> 32 & 63 */
    size_t slot = (size_t)h & (size_t)(ip_marks->len - 1);
    if ((((const unsigned char *)ip_marks->buf)[slot] & pair) == pair)
        return 0;
    slot = (size_t)h & (size_t)(port_marks->len - 1);
    return (((const unsigned char *)port_marks->buf)[slot] & pair) != pair;
}

/* The buffer of a prefilter's marks: a power-of-two sized byte buffer (0 when it is), else -1
 * with ValueError. */
static int
marks_buffer(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    if (view->len < 1 || (view->len & (view->len - 1))) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "prefilter marks must be a power-of-two sized buffer");
        return -1;
    }
    return 0;
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

/* port_marks(addresses, width, marks): an address prefilter of core/trails/view.py (exact-IP or
 * ip:port; port_marks_py, its specification) for `addresses`, packed addresses of `width` bytes
 * back to back: for each, the bit pair PORT_MARK_BITS[hash >> 32 & 63] is OR-ed into slot
 * hash & (len(marks) - 1), hash being Python's hash() of the address as bytes. */
static PyObject *
decode_port_marks(PyObject *self, PyObject *args)
{
    Py_buffer blob, marks;
    Py_ssize_t width;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nw*", &blob, &width, &marks))
        return NULL;
    PyObject *result = NULL;
    if (width <= 0 || blob.len % width != 0 || marks.len < 1 || (marks.len & (marks.len - 1))) {
        PyErr_SetString(PyExc_ValueError, "port_marks: whole addresses and a power-of-two sized buffer");
        goto done;
    }
    unsigned char *bits = (unsigned char *)marks.buf;
    size_t mask = (size_t)marks.len - 1;
    for (Py_ssize_t off = 0; off < blob.len; off += width) {
        PyObject *addr = PyBytes_FromStringAndSize((const char *)blob.buf + off, width);
        if (addr == NULL)
            goto done;
        Py_hash_t h = PyObject_Hash(addr);
        Py_DECREF(addr);
        if (h == -1)
            goto done;
        bits[(size_t)h & mask] |= port_mark_bits[((unsigned long long)(long long)h >> 32) & 63];
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&blob);
    PyBuffer_Release(&marks);
    return result;
}

/* A packet whose handling ends in C: a clock-only record (index -1, carrying a pending syn gap)
   when it is the first of a new second, so the Python side still advances its packet clock. -1
   on failure. */
static int
done_here(PyObject *records, PyObject **sec_obj, unsigned long sec, unsigned long usec, unsigned long *last_sec,
          int *gap)
{
    if (sec == *last_sec)
        return 0;
    *last_sec = sec;
    Py_INCREF(Py_None);
    int flags = *gap ? FLAG_SYN_GAP : 0;
    *gap = 0;
    return append_record(records, sec_obj, sec, usec, -1, Py_None, flags);
}

/* A bulk packet skipped in C: counted, then done_here. */
static int
skip_packet(PyObject *records, PyObject **sec_obj, unsigned long sec, unsigned long usec,
            unsigned long *last_sec, Py_ssize_t *skipped, int *gap)
{
    (*skipped)++;
    return done_here(records, sec_obj, sec, usec, last_sec, gap);
}

/* Appends meta index i to the growable array *ended: 0, or -1 (MemoryError). */
static int
note_ended(uint32_t **ended, Py_ssize_t *n, Py_ssize_t *cap, Py_ssize_t i)
{
    if (*n == *cap) {
        Py_ssize_t grown = *cap ? 2 * *cap : 64;
        uint32_t *bigger = PyMem_Realloc(*ended, (size_t)grown * sizeof **ended);
        if (bigger == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *ended = bigger, *cap = grown;
    }
    (*ended)[(*n)++] = (uint32_t)i;
    return 0;
}

/* TCP record with a scan flag combination (SYN, NULL, FIN, XMAS), the packets scan.py counts */
static int
scan_record(PyObject *d)
{
    return PyLong_AsLong(PyTuple_GET_ITEM(d, 1)) == 6 && scan_flags[PyLong_AsLong(PyTuple_GET_ITEM(d, 6)) & 0xFF];
}

/* 1 when the clean record d was a SYN counted here (see the module doc), 0 when it goes to
 * Python, -1 on a Python error. */
static int
count_syn(port_counter *c, PyObject *d, unsigned long sec, Py_ssize_t batch)
{
    if (PyLong_AsLong(PyTuple_GET_ITEM(d, 1)) != 6 || PyLong_AsLong(PyTuple_GET_ITEM(d, 6)) != SYN
        || PyLong_AsSsize_t(PyTuple_GET_ITEM(d, 8)) != PyLong_AsSsize_t(PyTuple_GET_ITEM(d, 9)))
        return 0;
    return count_port(c, d, sec, batch);
}

/* The detector's duplicate-datagram key of a UDP record (core/detect/detector.py _udp):
 * (sec, src, dst, sport, dport, zlib.crc32 of the payload's first 512 bytes). */
typedef struct {
    int valid;
    unsigned long sec;
    unsigned char src[16], dst[16];
    Py_ssize_t alen;
    long sport, dport;
    uint32_t crc;
} udp_key;

static void
udp_key_of(PyObject *d, const unsigned char *base, unsigned long sec, udp_key *k)
{
    PyObject *src = PyTuple_GET_ITEM(d, 2), *dst = PyTuple_GET_ITEM(d, 3);
    Py_ssize_t poff = PyLong_AsSsize_t(PyTuple_GET_ITEM(d, 8)), pend = PyLong_AsSsize_t(PyTuple_GET_ITEM(d, 9));
    Py_ssize_t n = pend > poff ? (pend - poff < 512 ? pend - poff : 512) : 0;
    k->valid = 1;
    k->sec = sec;
    k->alen = PyBytes_GET_SIZE(src);
    memcpy(k->src, PyBytes_AS_STRING(src), (size_t)k->alen);
    memcpy(k->dst, PyBytes_AS_STRING(dst), (size_t)k->alen);
    k->sport = PyLong_AsLong(PyTuple_GET_ITEM(d, 4));
    k->dport = PyLong_AsLong(PyTuple_GET_ITEM(d, 5));
    k->crc = crc32_feed(0xFFFFFFFFu, base + poff, (size_t)n) ^ 0xFFFFFFFFu;
}

static int
udp_key_equal(const udp_key *a, const udp_key *b)
{
    return a->sec == b->sec && a->alen == b->alen && a->sport == b->sport && a->dport == b->dport
           && a->crc == b->crc && !memcmp(a->src, b->src, (size_t)a->alen) && !memcmp(a->dst, b->dst, (size_t)a->alen);
}

/* The detector's _last_udp (a key tuple, or anything else: no key) into *k. */
static void
udp_key_from(PyObject *obj, udp_key *k)
{
    k->valid = 0;
    if (!PyTuple_CheckExact(obj) || PyTuple_GET_SIZE(obj) != 6)
        return;
    PyObject *src = PyTuple_GET_ITEM(obj, 1), *dst = PyTuple_GET_ITEM(obj, 2);
    if (!PyBytes_CheckExact(src) || !PyBytes_CheckExact(dst) || PyBytes_GET_SIZE(src) != PyBytes_GET_SIZE(dst)
        || (PyBytes_GET_SIZE(src) != 4 && PyBytes_GET_SIZE(src) != 16))
        return;
    for (int j = 0; j < 6; j++)
        if (j != 1 && j != 2 && !PyLong_CheckExact(PyTuple_GET_ITEM(obj, j)))
            return;
    k->sec = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(obj, 0));
    k->sport = PyLong_AsLong(PyTuple_GET_ITEM(obj, 3));
    k->dport = PyLong_AsLong(PyTuple_GET_ITEM(obj, 4));
    k->crc = (uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(obj, 5));
    if (PyErr_Occurred()) { /* out of range: never equal to a datagram's key */
        PyErr_Clear();
        return;
    }
    k->alen = PyBytes_GET_SIZE(src);
    memcpy(k->src, PyBytes_AS_STRING(src), (size_t)k->alen);
    memcpy(k->dst, PyBytes_AS_STRING(dst), (size_t)k->alen);
    k->valid = 1;
}

/* A clock-only record at the current packet second carrying key k as the detector's _last_udp
 * (flag UDP_LAST): the datagram ended here last comes before the next one Python handles. */
static int
udp_last_record(PyObject *records, PyObject **sec_obj, unsigned long sec, const udp_key *k, int *pending)
{
    *pending = 0;
    PyObject *key = Py_BuildValue("(ky#y#llk)", k->sec, (const char *)k->src, k->alen, (const char *)k->dst, k->alen,
                                  k->sport, k->dport, (unsigned long)k->crc);
    if (key == NULL)
        return -1;
    return append_record(records, sec_obj, sec, 0, -1, key, FLAG_UDP_LAST);
}

/* 1 when the clean UDP record d ends here (the detector's _udp would only count its port, or
 * not even that), 0 when it goes to Python, -1 on a Python error: not DNS (port 53), not a QUIC
 * long header (the Initial parser), a reply from a service port to an ephemeral one (nothing
 * counted), else count_port. */
static int
count_udp(port_counter *c, PyObject *d, const unsigned char *base, unsigned long sec, Py_ssize_t batch)
{
    long sport = PyLong_AsLong(PyTuple_GET_ITEM(d, 4)), dport = PyLong_AsLong(PyTuple_GET_ITEM(d, 5));
    Py_ssize_t poff = PyLong_AsSsize_t(PyTuple_GET_ITEM(d, 8)), pend = PyLong_AsSsize_t(PyTuple_GET_ITEM(d, 9));
    if (sport == 53 || dport == 53 || (pend - poff > 20 && (base[poff] & 0xC0) == 0xC0))
        return 0;
    if (sport < 1024 && dport >= 1024)
        return 1;
    return count_port(c, d, sec, batch);
}

static PyObject *
decode_scan(PyObject *self, PyObject *args)
{
    PyObject *bufobj, *metaobj, *ipobj = Py_None, *marksobj = Py_None, *counters = Py_None, *synobj = Py_None;
    PyObject *udpobj = Py_None, *lastobj = Py_None;
    int skip, linktype = LINKTYPE_ETHERNET;
    unsigned long last_sec;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOpk|OOOOOOi", &bufobj, &metaobj, &skip, &last_sec, &ipobj, &marksobj, &counters,
                          &synobj, &udpobj, &lastobj, &linktype))
        return NULL;
    if (linktype != LINKTYPE_ETHERNET && linktype != LINKTYPE_LINUX_SLL && linktype != LINKTYPE_LINUX_SLL2) {
        PyErr_SetString(PyExc_ValueError, "linktype must be 1 (Ethernet), 113 (Linux SLL) or 276 (Linux SLL2)");
        return NULL;
    }
    int ethernet = linktype == LINKTYPE_ETHERNET;
    if (counters != Py_None && !PyDict_CheckExact(counters)) {
        PyErr_SetString(PyExc_TypeError, "counters must be a dict");
        return NULL;
    }
    port_counter syns, udps;
    syns.on = udps.on = 0;
    if ((synobj != Py_None && port_counter_parse(synobj, &syns) < 0)
        || (udpobj != Py_None && port_counter_parse(udpobj, &udps) < 0))
        return NULL;
    udp_key prev; /* the key of the last UDP datagram before this packet (the detector's _last_udp) */
    udp_key_from(lastobj, &prev);
    int udp_pending = 0; /* prev was ended here: the Python side has not seen it yet */
    int gap = 0; /* SYNs were counted here since the last returned record */
    uint32_t *ended = NULL; /* meta indices of the packets whose handling ended here (not bulk) */
    Py_ssize_t n_ended = 0, ended_cap = 0;
    if (decoded_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_decode.init() was not called");
        return NULL;
    }
    Py_buffer ip_marks = {0}, marks = {0};
    int use_ips = ipobj != Py_None && marksobj != Py_None;
    if (use_ips) {
        if (marks_buffer(ipobj, &ip_marks) < 0)
            return NULL;
        if (marks_buffer(marksobj, &marks) < 0) {
            PyBuffer_Release(&ip_marks);
            return NULL;
        }
    }
    Py_buffer bview, mview;
    if (PyObject_GetBuffer(bufobj, &bview, PyBUF_SIMPLE) < 0) {
        if (use_ips) {
            PyBuffer_Release(&ip_marks);
            PyBuffer_Release(&marks);
        }
        return NULL;
    }
    if (PyObject_GetBuffer(metaobj, &mview, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&bview);
        if (use_ips) {
            PyBuffer_Release(&ip_marks);
            PyBuffer_Release(&marks);
        }
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
        if (syns.on && (syns.next_tick < 0 || (long long)sec >= syns.next_tick))
            syns.on = 0; /* the heuristics' expiry runs at this packet: from here on, packet order */
        if (udps.on && (udps.next_tick < 0 || (long long)sec >= udps.next_tick)) {
            udps.on = 0;
            if (udp_pending && udp_last_record(records, &sec_obj, last_sec, &prev, &udp_pending) < 0) {
                Py_CLEAR(records);
                goto done;
            }
        }
        const unsigned char *p = base + off;
        int bulk = 0;
        if (ethernet && caplen >= 54 && p[23] == 6 && p[14] == 0x45 && p[12] == 8 && p[13] == 0 && !scan_flags[p[47]]) {
            Py_ssize_t start = 34 + ((p[46] >> 4) << 2);
            if (start >= caplen || !parsed_first[p[start]])
                bulk = !(p[34] == 0 && p[35] == 53) && !(p[36] == 0 && p[37] == 53);
        }
        if (bulk && skip) {
            if (skip_packet(records, &sec_obj, sec, usec, &last_sec, &skipped, &gap) < 0) {
                Py_CLEAR(records);
                goto done;
            }
            continue;
        }
        int handshake = 0, rbulk = 0;
        PyObject *d = ethernet ? fast_decode(p, off, caplen, bufobj, &handshake, &rbulk, counters == Py_None ? NULL : counters)
                               : cooked_decode(p, off, caplen, linktype, bufobj, &handshake, &rbulk);
        if (d != NULL && d != Py_None && rbulk && !bulk) {
            /* a decoded TCP record that provably cannot produce an event (IPv6, carried by a tunnel) */
            if (skip) {
                Py_DECREF(d);
                if (skip_packet(records, &sec_obj, sec, usec, &last_sec, &skipped, &gap) < 0) {
                    Py_CLEAR(records);
                    goto done;
                }
                continue;
            }
            bulk = 1;
        }
        int clean = 0;
        if (d != NULL && d != Py_None && use_ips) {
            clean = ip_clean(PyTuple_GET_ITEM(d, 2), &ip_marks, &marks);
            if (clean > 0)
                clean = ip_clean(PyTuple_GET_ITEM(d, 3), &ip_marks, &marks);
            if (clean < 0) {
                Py_DECREF(d);
                d = NULL;
            }
        }
        /* ICMP between clean addresses: the detector looks up an echo request's addresses only */
        int ended_here = clean > 0 && PyLong_AsLong(PyTuple_GET_ITEM(d, 1)) == 1;
        if (!ended_here && d != NULL && udps.on) {
            udp_key key;
            int to_python = 0; /* a datagram (or maybe one) goes to Python: it must see the last key */
            if (d == Py_None) { /* a frame the Python decoder reads may be UDP: the chain is lost */
                to_python = 1;
                udps.on = 0;
            } else if (PyLong_AsLong(PyTuple_GET_ITEM(d, 1)) == 17) {
                udp_key_of(d, base, sec, &key);
                if (prev.valid && udp_key_equal(&key, &prev)) {
                    ended_here = 1; /* the same datagram again: the detector ignores it */
                } else {
                    int counted = clean > 0 ? count_udp(&udps, d, base, sec, words / 4) : 0;
                    if (counted < 0)
                        Py_CLEAR(d);
                    else if (counted)
                        ended_here = 1, prev = key, udp_pending = 1;
                    else
                        to_python = 1;
                }
            }
            if (to_python && udp_pending && udp_last_record(records, &sec_obj, last_sec, &prev, &udp_pending) < 0) {
                Py_DECREF(d);
                Py_CLEAR(records);
                goto done;
            }
            if (to_python && d != Py_None) {
                hand_back(&udps, d);
                prev = key;
            }
        }
        if (!ended_here && d != NULL && syns.on) {
            if (d == Py_None) {
                syns.on = 0;
            } else {
                int counted = clean > 0 ? count_syn(&syns, d, sec, words / 4) : 0;
                if (counted < 0)
                    Py_CLEAR(d);
                else if (counted)
                    ended_here = 1, gap = 1;
                else if (scan_record(d))
                    hand_back(&syns, d);
            }
        }
        if (ended_here) { /* the packet's handling ends here: counted, not returned */
            Py_DECREF(d);
            if (note_ended(&ended, &n_ended, &ended_cap, i) < 0
                || done_here(records, &sec_obj, sec, usec, &last_sec, &gap) < 0) {
                Py_CLEAR(records);
                goto done;
            }
            continue;
        }
        int flags = (bulk ? FLAG_BULK : 0) | (clean ? FLAG_CLEAN : 0) | (gap ? FLAG_SYN_GAP : 0);
        gap = 0;
        if (d == NULL || append_record(records, &sec_obj, sec, usec, i, d, flags) < 0) {
            Py_CLEAR(records);
            goto done;
        }
        last_sec = sec;
        /* an odd frame (decoded in Python) or a TLS handshake record may start flow tracking */
        if (d == Py_None || handshake)
            skip = 0;
    }
    if (udp_pending && records != NULL && udp_last_record(records, &sec_obj, last_sec, &prev, &udp_pending) < 0)
        Py_CLEAR(records);
    if (gap && records != NULL) { /* the batch ends with SYNs counted here */
        Py_INCREF(Py_None);
        if (append_record(records, &sec_obj, last_sec, 0, -1, Py_None, FLAG_SYN_GAP) < 0)
            Py_CLEAR(records);
    }
done:
    Py_XDECREF(sec_obj);
    PyBuffer_Release(&bview);
    PyBuffer_Release(&mview);
    if (use_ips) {
        PyBuffer_Release(&ip_marks);
        PyBuffer_Release(&marks);
    }
    PyObject *result = NULL;
    if (records != NULL)
        result = Py_BuildValue("(Nny#)", records, skipped, ended != NULL ? (const char *)ended : "",
                               n_ended * (Py_ssize_t)sizeof *ended);
    PyMem_Free(ended);
    return result;
}

static PyMethodDef methods[] = {
    {"init", decode_init, METH_VARARGS, "init(decoded_type, parsed_first, scan_flags[, vxlan_ports, geneve_ports])"},
    {"port_marks", decode_port_marks, METH_VARARGS, "port_marks(addresses, width, marks) -> None"},
    {"scan", decode_scan, METH_VARARGS,
     "scan(buf, meta, skip, last_sec[, ip_marks, port_marks[, counters[, syns[, udps, last_udp[, linktype]]]]]) -> (records, skipped, ended)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_decode", "Batch pre-dispatch of the sensor pipeline (see core/accel).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__decode(void)
{
    crc32_init();
    fill_port_mark_bits();
    return PyModule_Create(&module);
}
