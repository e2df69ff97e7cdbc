"""Shared by the tests that compare a compiled accelerator with its Python specification
(tests/test_accel_http.py, tests/test_accel_dns.py)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def load_twin(name: str, *record_types: type) -> ModuleType | None:
    """core.accel.<name>, imported directly (so the comparison runs even under MALTRAIL_PURE_PYTHON=1,
    where the parser modules do not initialise it) and given its record classes; None when not built."""
    try:
        module = importlib.import_module(f"core.accel.{name}")
    except ImportError:
        return None
    module.init(*record_types)
    return module


def assert_same_record(c: Any, p: Any, where: str) -> None:
    """The compiled result `c` equals the Python result `p`, with the same record class and the same
    type in every field; a tuple of records (DNS answers) is compared record by record."""
    if p is None:
        assert c is None, where
        return
    assert type(c) is type(p), where
    assert c == p, (where, c, p)
    for field, cv, pv in zip(type(p)._fields, c, p, strict=True):
        assert type(cv) is type(pv), (field, where)
        if type(pv) is tuple:
            for cr, pr in zip(cv, pv, strict=True):
                assert_same_record(cr, pr, where)
