/*
 * gate.h: the one call a compiled detector path makes of a literal gate (core/trails/literals.py
 * Gate: the compiled _literals.Gate, or its regex twin), for _dns.c (the regex trails' proofs)
 * and _http.c (the request heuristics' gates): does gate.search(text) find nothing?
 * Call gate_init() once (module init) before gate_misses().
 */
#ifndef MALTRAIL_GATE_H
#define MALTRAIL_GATE_H

#include <Python.h>

static PyObject *gate_search_name = NULL; /* "search", interned once at import */

static int
gate_init(void)
{
    if (gate_search_name == NULL)
        gate_search_name = PyUnicode_InternFromString("search");
    return gate_search_name == NULL ? -1 : 0;
}

/* 1 when gate.search(text) finds nothing (None), 0 when it finds something, -1 on error. */
static int
gate_misses(PyObject *gate, PyObject *text)
{
    PyObject *found = PyObject_CallMethodOneArg(gate, gate_search_name, text);
    if (found == NULL)
        return -1;
    int misses = found == Py_None;
    Py_DECREF(found);
    return misses;
}

#endif
