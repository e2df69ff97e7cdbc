/*
 * core.accel._recv: many datagrams per system call (recvmmsg) for the server's UDP intake.
 *
 * Where it sits: core/server/intake.py `_drain` takes the queued datagrams a batch at a time;
 * its pure-Python twin is core/server/intake.py `receive_py` (a loop of sock.recv(65535)). For
 * the same queue both return the same datagrams in the same order (tests/test_accel_recv.py).
 *
 * receive(fd, scratch) -> list[bytes]
 *   Up to min(len(scratch) // SLOT, MAX_MSGS) datagrams queued on socket `fd`, in order, each as
 *   recv(65535) returns it (a longer one cut to 65535 bytes); [] when none is queued (never
 *   waits). `scratch` is a writable buffer the caller owns and reuses (a bytearray). Errors are
 *   raised as recv raises them (OSError by errno); an interrupted call runs the signal handlers
 *   and is retried, as in recv.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define SLOT 65536
#define RECV_SIZE 65535
#define MAX_MSGS 64

static PyObject *
receive(PyObject *self, PyObject *args)
{
    (void)self;
    int fd;
    Py_buffer scratch;
    if (!PyArg_ParseTuple(args, "iw*", &fd, &scratch))
        return NULL;
    Py_ssize_t slots = scratch.len / SLOT;
    if (slots > MAX_MSGS)
        slots = MAX_MSGS;
    if (slots < 1) {
        PyBuffer_Release(&scratch);
        PyErr_SetString(PyExc_ValueError, "scratch holds no datagram slot");
        return NULL;
    }
    struct mmsghdr msgs[MAX_MSGS];
    struct iovec iov[MAX_MSGS];
    memset(msgs, 0, sizeof(msgs[0]) * (size_t)slots);
    for (Py_ssize_t i = 0; i < slots; i++) {
        iov[i].iov_base = (char *)scratch.buf + i * SLOT;
        iov[i].iov_len = RECV_SIZE;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int got, error;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        got = recvmmsg(fd, msgs, (unsigned int)slots, MSG_DONTWAIT, NULL);
        error = errno;
        Py_END_ALLOW_THREADS
        if (got >= 0 || error != EINTR)
            break;
        if (PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&scratch);
            return NULL;
        }
    }
    if (got < 0) {
        PyBuffer_Release(&scratch);
        if (error == EAGAIN || error == EWOULDBLOCK)
            return PyList_New(0);
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *out = PyList_New(got);
    for (int i = 0; out != NULL && i < got; i++) {
        PyObject *data = PyBytes_FromStringAndSize((const char *)scratch.buf + (Py_ssize_t)i * SLOT,
                                                   (Py_ssize_t)msgs[i].msg_len);
        if (data == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, data);
    }
    PyBuffer_Release(&scratch);
    return out;
}

static PyMethodDef methods[] = {
    {"receive", receive, METH_VARARGS, "receive(fd, scratch) -> list of the datagrams queued (recvmmsg)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_recv", "Batched datagram receive (recvmmsg).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__recv(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "SLOT", SLOT) < 0 || PyModule_AddIntConstant(m, "MAX_MSGS", MAX_MSGS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
