"""The compiled URL-trail prefilter (core/accel/_url.c) against its Python specification.

`markers(path)` must list exactly the markers of core.detect.urls.candidate_markers, and
`maybe(...)` must answer exactly what two bloom-bit tests per marker answer in Python (so a
request it stops could never have hit a `/path` trail).
"""

from __future__ import annotations

import random
import zlib

import pytest

from core.accel import load
from core.detect.urls import candidate_markers
from core.trails import index as ix
from core.trails.store import TrailStore

_url = load("_url")
pytestmark = pytest.mark.skipif(_url is None, reason="core/accel/_url.c is not built (run tools/build_accel.py)")

ALPHABET = "/?=&ab.%é-_"


def random_paths(count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        yield "/" + "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 16)))


def test_markers_equal_candidate_markers():
    fixed = ["/", "//", "/a/", "/a//", "/a/b/c?x=1&y/z=2", "/?q", "/a?b/c&d=e/f", "/a=b", "/é/ü?x/y"]
    for path in fixed + list(random_paths(100_000, 1)):
        expected = {m.encode() for m in candidate_markers(path, "", ix.url_marker)}
        assert set(_url.markers(path)) == expected, path


def python_maybe(mm, offset, shift, path):
    for marker in candidate_markers(path, "", ix.url_marker):
        h = zlib.crc32(marker.encode())
        first, second = h >> shift, (h * ix.BLOOM_MIX & 0xFFFFFFFF) >> shift
        if mm[offset + (first >> 3)] >> (first & 7) & 1 and mm[offset + (second >> 3)] >> (second & 7) & 1:
            return True
    return False


def test_maybe_equals_python_bloom_test_and_never_misses_a_trail(tmp_path):
    rng = random.Random(2)
    paths = list(random_paths(3_000, 3))
    rows = [(p, "malware (test)", "(static)") for p in rng.sample(paths, 300) if p != "/"]
    store = TrailStore.from_rows(rows, str(tmp_path))
    view = store._view
    offset = view.header.sections[ix.BLOOM][0]
    shift = ix.bloom_shift(view.header.table_bits)
    answers = []
    for path in paths + list(random_paths(20_000, 4)):
        fast = store.path_markers_maybe(path)
        assert fast == python_maybe(view.mm, offset, shift, path), path
        answers.append(fast)
    for path, _, _ in rows:
        assert store.path_markers_maybe(path)  # a listed path is always a "maybe"
    assert not all(answers)  # the prefilter does stop requests


def test_odd_arguments_answer_maybe(tmp_path):
    store = TrailStore.from_rows([("/x/y", "malware (test)", "(static)")], str(tmp_path))
    assert store.path_markers_maybe("") is True
    assert store.path_markers_maybe("relative/path") is True
    assert store.path_markers_maybe("/\ud800") is True  # not encodable: the full path decides
    with pytest.raises(ValueError):
        _url.markers("no-slash")
