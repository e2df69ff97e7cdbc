"""The compiled bloom prefilters (core/accel/_url.c) against their Python specifications.

`markers(path)` must list exactly the markers of core.detect.urls.candidate_markers, and
`maybe(...)` must answer exactly what two bloom-bit tests per marker answer in Python (so a
request it stops could never have hit a `/path` trail). `suffixes(...)` must answer exactly
what core/trails/view.py suffixes_maybe_py answers (so the domain walk it shortens never skips a
listed parent).
"""

from __future__ import annotations

import random
import zlib

import pytest

from core.accel import load
from core.detect.urls import candidate_markers
from core.trails import index as ix
from core.trails.store import TrailStore
from core.trails.view import MAX_SUFFIXES, suffixes_maybe_py

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


LABELS = ["a", "b", "xn--80ak6aa92e", "evil", "c2", "é", "com", "net", "-", "_x", ""]


def random_names(count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        yield ".".join(rng.choice(LABELS) for _ in range(rng.randrange(1, 7)))


def bloom_of(store):
    view = store._view
    return view.mm, view.header.sections[ix.BLOOM][0], ix.bloom_shift(view.header.table_bits)


def test_suffixes_equal_the_python_twin_and_keep_every_listed_parent(tmp_path):
    rng = random.Random(5)
    listed = sorted({name for name in random_names(2_000, 6) if name})[:400]
    store = TrailStore.from_rows([(name, "malware (test)", "(static)") for name in listed], str(tmp_path))
    mm, offset, shift = bloom_of(store)
    masks = []
    names = list(random_names(30_000, 7)) + [f"{rng.choice(LABELS)}.{name}" for name in listed]
    for name in names + ["", ".", "a.", ".a", "a..b", "A.B"]:
        mask = _url.suffixes(mm, offset, shift, ix.BLOOM_MIX, name)
        assert mask == suffixes_maybe_py(mm, offset, shift, ix.BLOOM_MIX, name), name
        assert store.domain_suffixes(name) == mask
        masks.append(mask)
        starts = [0] + [i + 1 for i, char in enumerate(name) if char == "."]
        for k, start in enumerate(starts):
            if name[start:] in listed:
                assert mask >> k & 1, (name, k)  # a listed candidate always passes
    assert masks.count(0) > len(masks) // 2  # the prefilter does spare lookups


def test_suffixes_odd_names(tmp_path):
    store = TrailStore.from_rows([("evil.com", "malware (test)", "(static)")], str(tmp_path))
    mm, offset, shift = bloom_of(store)
    for suffixes in (_url.suffixes, suffixes_maybe_py):
        assert suffixes(mm, offset, shift, ix.BLOOM_MIX, None) == 0  # not a str: nothing to look up
        assert suffixes(mm, offset, shift, ix.BLOOM_MIX, "a.\ud800.com") == 0  # not encodable
        assert suffixes(mm, offset, shift, ix.BLOOM_MIX, "x." * MAX_SUFFIXES + "com") == -1  # every bit
        longest = "x." * (MAX_SUFFIXES - 2) + "evil.com"  # exactly MAX_SUFFIXES candidates
        mask = suffixes(mm, offset, shift, ix.BLOOM_MIX, longest)
        assert 0 <= mask < 1 << MAX_SUFFIXES and mask >> (MAX_SUFFIXES - 2) & 1  # evil.com: candidate 61
        # a bloom shorter than its shift implies: every candidate passes, none is wrongly dropped
        assert suffixes(b"\x00" * 8, 0, 0, ix.BLOOM_MIX, "a.b.c") == 0b111
        for outside in (-1, 9):  # an offset outside the buffer: an error, never a read beside it
            with pytest.raises(ValueError):
                suffixes(b"\x00" * 8, outside, 0, ix.BLOOM_MIX, "a.b.c")
    with pytest.raises(ValueError):
        _url.maybe(b"\x00" * 8, -1, 0, ix.BLOOM_MIX, "/a/b")
