"""Walk every row of the real-size trail set (../shared/bench/trails.csv.gz) through the trail store:
each row must be found with its own info and reference (the last row wins for duplicate keys).
Skipped when the set is absent; in CI it is present."""

from __future__ import annotations

import csv
import gzip
import os
import shutil
import socket

import pytest

from core.trails.index import classify
from core.trails.store import Trail, TrailStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_SET = os.environ.get("MALTRAIL_BENCH_TRAILS",
                          os.path.join(os.path.dirname(ROOT), "shared", "bench", "trails.csv.gz"))

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(FULL_SET), reason=f"{FULL_SET} absent")]


def _fast_lookup(store: TrailStore, kind: str, value: bytes | str) -> Trail | None:
    """The hot-path lookup a sensor would use for this key shape."""
    if kind == "text":
        assert isinstance(value, str)
        return store.get(value)
    if kind == "regex":
        return store.lookup_key(str(value))
    assert isinstance(value, bytes)
    if value[0] == 0xFF:
        return store.ip(value[1:])
    return store.ip_port(value[1:-2], int.from_bytes(value[-2:], "big"))


def test_every_row_of_the_full_set(tmp_path):
    csv_path = tmp_path / "trails.csv"
    with gzip.open(FULL_SET, "rb") as src, open(csv_path, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    store = TrailStore.open(str(csv_path))
    try:
        assert store.did_build and store.skipped == 0
        pending: dict[object, list[int]] = {}   # rows overridden (so far) by a later duplicate
        rows = 0
        shapes = dict.fromkeys(("text", "regex", "ip", "ipport"), 0)
        with open(csv_path, newline="", encoding="utf-8") as f:
            for number, (key, info, ref) in enumerate(csv.reader(f)):
                rows += 1
                kind, value = classify(key)
                shape = kind if kind != "bin" else ("ip" if value[0] == 0xFF else "ipport")
                shapes[shape] += 1
                own = Trail(info, ref)
                found = store.lookup_key(key)
                assert found is not None, (number, key)
                assert _fast_lookup(store, kind, value) == found, (number, key)
                norm = (kind, value)
                if found == own:
                    pending.pop(norm, None)  # an earlier duplicate was overridden by this (later) row
                else:
                    pending.setdefault(norm, []).append(number)
        assert not pending, f"rows whose own values are not returned and no later duplicate explains: {pending}"
        assert rows == 1_597_030 or rows > 1_000_000
        assert len(store) <= rows
        assert min(shapes.values()) > 0, shapes
        # regex trails are all active (the original kept only 100)
        assert store.regex_count() == shapes["regex"]
        assert store.match_regex("ql12345.pw") is not None
        # v6 rows in the original's non-RFC-5952 spelling answer to the packed form
        assert store.ip_port(socket.inet_pton(socket.AF_INET6, "2001:41d0:404:200::7f9"), 443) is not None
    finally:
        store.close()
