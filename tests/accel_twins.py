"""Shared by the tests that compare a compiled accelerator with its Python specification
(tests/test_accel_http.py, tests/test_accel_dns.py, and the detector paths of
tests/test_accel_dns_query.py and tests/test_accel_http_request.py)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
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


def digest_each_batch(sensor: Any, snapshot: Callable[[], object]) -> list[int]:
    """A digest of `snapshot()` after every batch `sensor.process_batch` handles from now on (the
    state two replays must share at each step, not only at the end)."""
    digests: list[int] = []
    process_batch = sensor.process_batch

    def watched(*args: object) -> None:
        process_batch(*args)
        digests.append(hash(repr(snapshot())))

    sensor.process_batch = watched
    return digests


def counting(function: Callable[..., int], answers: int) -> tuple[Callable[..., int], list[int]]:
    """`function` wrapped to count its answers (ints below `answers`): (wrapper, counts)."""
    counts = [0] * answers

    def counted(*args: object) -> int:
        result = function(*args)
        counts[result] += 1
        return result

    return counted, counts
