/*
 * portcount.h: the port-scan windows' counting (core/heuristics/scan.py `count` over a
 * core/heuristics/state.py WindowTable), for the packets the batch walk of _decode.c ends in C.
 *
 * Where it sits: included by _decode.c only. A port_counter is read from the heuristics' spec
 * tuple (table, threshold, max_keys, handed_back_ports, next_tick: ScanHeuristics.syn_shortcut /
 * udp_shortcut). count_port does what `count` does for the cases that cannot alert: a new key
 * (the int sec << 16 | port), the same single port again, a second port (the dict of
 * WindowTable.promote, thresholds of 2 and more), a dict that stays within the threshold. Keys
 * whose packets went to Python in this batch are remembered in a bitmap (hand_back) and never
 * counted here after that, so each key's updates keep packet order.
 */
#ifndef MALTRAIL_PORTCOUNT_H
#define MALTRAIL_PORTCOUNT_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#define KEY_BITS 4096 /* per-batch bitmap of keys handed back to Python (false hits only cost speed) */

/* The per-batch key bitmap slot of a Decoded record's key src + dst (FNV-1a of the bytes). */
static unsigned
key_slot(PyObject *d)
{
    uint32_t h = 2166136261u;
    for (int k = 2; k <= 3; k++) {
        PyObject *addr = PyTuple_GET_ITEM(d, k);
        const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(addr);
        for (Py_ssize_t j = 0; j < PyBytes_GET_SIZE(addr); j++)
            h = (h ^ b[j]) * 16777619u;
    }
    return h & (KEY_BITS - 1);
}

typedef struct {
    PyObject *table;    /* key (src + dst bytes) -> int sec << 16 | port, or a richer entry */
    PyObject *handback; /* destination ports always handed to Python (a set) */
    long threshold;
    Py_ssize_t max_keys;
    long long next_tick; /* packet second of the heuristics' next expiry (-1: not scheduled yet) */
    int on;             /* 0 once a frame was left to the Python decoder */
    unsigned char handed[KEY_BITS / 8];
} port_counter;

/* table[key] = sec << 16 | port: 1, or -1 on a Python error */
static int
set_packed(PyObject *table, PyObject *key, unsigned long sec, long port)
{
    PyObject *value = PyLong_FromLongLong((long long)sec << 16 | port);
    int rc = value == NULL || PyDict_SetItem(table, key, value) < 0 ? -1 : 1;
    Py_XDECREF(value);
    return rc;
}

/* items[item] = sec: 1, or -1 on a Python error */
static int
set_sec(PyObject *items, PyObject *item, unsigned long sec)
{
    PyObject *value = PyLong_FromUnsignedLong(sec);
    int rc = value == NULL || PyDict_SetItem(items, item, value) < 0 ? -1 : 1;
    Py_XDECREF(value);
    return rc;
}

/* table[key] = {single & 0xFFFF: single >> 16, item: sec} (WindowTable.promote): 1, or -1 */
static int
promote(PyObject *table, PyObject *key, long long single, unsigned long sec, PyObject *item)
{
    PyObject *items = PyDict_New(), *first = PyLong_FromLongLong(single & 0xFFFF);
    PyObject *first_sec = PyLong_FromLongLong(single >> 16);
    int rc = items == NULL || first == NULL || first_sec == NULL || PyDict_SetItem(items, first, first_sec) < 0
             || set_sec(items, item, sec) < 0 || PyDict_SetItem(table, key, items) < 0 ? -1 : 1;
    Py_XDECREF(items);
    Py_XDECREF(first);
    Py_XDECREF(first_sec);
    return rc;
}

/* The spec tuple of a table into *c (on = 1, no key handed back yet): 0, or -1 with TypeError. */
static int
port_counter_parse(PyObject *spec, port_counter *c)
{
    if (!PyArg_ParseTuple(spec, "O!lnO!L", &PyDict_Type, &c->table, &c->threshold, &c->max_keys,
                          &PyFrozenSet_Type, &c->handback, &c->next_tick))
        return -1;
    c->on = 1;
    memset(c->handed, 0, sizeof c->handed);
    return 0;
}

/* record d's key went to Python in this batch */
static void
hand_back(port_counter *c, PyObject *d)
{
    unsigned slot = key_slot(d);
    c->handed[slot >> 3] |= (unsigned char)(1u << (slot & 7));
}

static int
handed(const port_counter *c, PyObject *d)
{
    unsigned slot = key_slot(d);
    return c->handed[slot >> 3] >> (slot & 7) & 1;
}

/* Count the destination port of record d (key src + dst) at `sec` as scan.py's `count` would,
 * when that cannot alert: 1 when counted, 0 when the packet must go to the Python hook, -1 on a
 * Python error. `batch`: packets in this batch; while the table holds fewer than
 * max_keys - batch keys, no add of this batch (here or in Python) can reach the cap, so no
 * sweep (core/heuristics/state.py _make_room) runs between updates made out of packet order. */
static int
count_port(port_counter *c, PyObject *d, unsigned long sec, Py_ssize_t batch)
{
    if (handed(c, d))
        return 0;
    if (c->threshold < 1 || PyDict_GET_SIZE(c->table) + batch >= c->max_keys)
        return 0; /* an add of this batch could reach the cap: its sweep must see the packet order */
    PyObject *dport = PyTuple_GET_ITEM(d, 5);
    int handback = PySet_Contains(c->handback, dport);
    if (handback != 0)
        return handback < 0 ? -1 : 0;
    long port = PyLong_AsLong(dport);
    PyObject *src = PyTuple_GET_ITEM(d, 2), *dst = PyTuple_GET_ITEM(d, 3);
    Py_ssize_t ns = PyBytes_GET_SIZE(src), nd = PyBytes_GET_SIZE(dst);
    PyObject *key = PyBytes_FromStringAndSize(NULL, ns + nd);
    if (key == NULL)
        return -1;
    memcpy(PyBytes_AS_STRING(key), PyBytes_AS_STRING(src), (size_t)ns);
    memcpy(PyBytes_AS_STRING(key) + ns, PyBytes_AS_STRING(dst), (size_t)nd);
    int rc = 0;
    PyObject *items = PyDict_GetItemWithError(c->table, key);
    if (items == NULL) { /* a new key: its single observation */
        rc = PyErr_Occurred() ? -1 : set_packed(c->table, key, sec, port);
    } else if (PyLong_CheckExact(items)) {
        long long v = PyLong_AsLongLong(items);
        if (v == -1 && PyErr_Occurred())
            rc = -1;
        else if ((v & 0xFFFF) == port) /* the same single port seen again */
            rc = set_packed(c->table, key, sec, port);
        else if (c->threshold >= 2) /* a second port: the dict {first: its sec, port: sec}, 2 <= threshold */
            rc = promote(c->table, key, v, sec, dport);
    } else if (PyDict_CheckExact(items)) { /* items[port] = sec while that keeps it within the threshold */
        int has = PyDict_Contains(items, dport);
        if (has < 0)
            rc = -1;
        else if (PyDict_GET_SIZE(items) + !has <= c->threshold)
            rc = set_sec(items, dport, sec);
    }
    Py_DECREF(key);
    return rc;
}


#endif
