/*
 * decoded.h: a Decoded record's payload read where it lies (core/decode/packet.py Decoded: buf,
 * poff, pend are its fields 7, 8 and 9), for the compiled detector paths that take the record
 * itself (_dns.c datagram, _http.c request_seen) instead of a copy of the payload.
 */
#ifndef MALTRAIL_DECODED_H
#define MALTRAIL_DECODED_H

#include <Python.h>

#define DECODED_FIELDS 10

/* 0 with *payload = buf[poff:pend] and *size its length, `view` held (release it with
 * PyBuffer_Release); -1 with an exception: not a 10-field tuple (TypeError), a buf without the
 * buffer protocol, offsets outside it (ValueError). */
static int
decoded_payload(PyObject *d, Py_buffer *view, const unsigned char **payload, Py_ssize_t *size)
{
    if (!PyTuple_Check(d) || PyTuple_GET_SIZE(d) != DECODED_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "a Decoded record (a 10-field tuple) was expected");
        return -1;
    }
    Py_ssize_t poff = PyLong_AsSsize_t(PyTuple_GET_ITEM(d, 8)), pend = PyLong_AsSsize_t(PyTuple_GET_ITEM(d, 9));
    if (PyErr_Occurred() || PyObject_GetBuffer(PyTuple_GET_ITEM(d, 7), view, PyBUF_SIMPLE) < 0)
        return -1;
    if (poff < 0 || pend < poff || pend > view->len) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "the payload offsets of a Decoded record are outside its buffer");
        return -1;
    }
    *payload = (const unsigned char *)view->buf + poff;
    *size = pend - poff;
    return 0;
}

#endif
