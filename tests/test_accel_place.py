"""The compiled loops of the trail index build (core/accel/_build.c: the common-line parse and the
placement) against their Python specifications (core/trails/build.py `_Part.feed_lines`,
`_Grid._region_py`): whole index files built both ways are byte-identical (serial and two-process
builds, duplicates, keys crowding the region boundary, odd and malformed lines of every kind),
and both placement loops give the same table, bloom, fix-ups and put-aside keys on crafted streams with
equal hashes for different keys, duplicate keys and probes running off a region."""

from __future__ import annotations

import csv
import random
import zlib
from array import array

import pytest

from core.accel import load
from core.trails import build
from core.trails.index import HEADER_SIZE, RECORD_HEAD, RECORDS_PAD

pytestmark = pytest.mark.skipif(load("_build") is None, reason="core/accel/_build.c is not built "
                                "(run tools/build_accel.py)")


def rows_of_every_kind(rng: random.Random) -> list[tuple[str, str, str]]:
    rows = []
    for i in range(4000):
        info = f"family {i % 23} (malware)"
        rows.append((f"dup-{i % 900}.example", info, "(static)"))  # duplicates, across the two-process split
        rows.append((f"10.{i % 7}.{i % 250}.{i % 200}:{1 + i % 900}", info, "(static)"))
        rows.append((f"site{rng.randrange(10 ** 6)}.test/p/{i}.php", info, "(static)"))
        if i % 400 == 0:
            rows.append((rf"rx{i}[0-9]+\.example\.com", info, "(static)"))
            rows.append((f"198.51.{i % 256}.{i % 200}", info, "(static)"))
    return rows


def crowding_rows() -> list[tuple[str, str, str]]:
    crowd, i = [], 0
    while len(crowd) < 20:
        name = f"k{i}.example"
        if zlib.crc32(name.encode()) & 127 in (61, 62, 63, 64):
            crowd.append(name)
        i += 1
    rows = [(name, "first", "(static)") for name in crowd] + [(name, "second", "(static)") for name in crowd[::3]]
    return rows + [(f"filler-{j}.example", "filler", "(static)") for j in range(40 - len(rows))]


ODD_LINES = [
    b"\xef\xbb\xbfFirst.Example,malware (test),(static)",  # a BOM, capitals
    b"crlf.example,malware (test),(static)\r", b"", b"   ", b"no-comma-at-all", b"a,b", b"x,y,z,w",
    b'"quoted.example",malware (test),(static)', b'q.example,"mal, ware",(static)',
    b"caf\xc3\xa9.example,malware (test),(static)", b"bad\xff.example,malware (test),(static)",
    b"1.2.3.4,malware (test),(static)", b"1.2.3.4:80,c2 (test),(static)", b"1.2.3.4:8.0,c2 (test),(static)",
    b"1.2.3.4:0,c2 (test),(static)", b"1.2.3.4:70000,c2 (test),(static)", b"1.2.3.4:065535,c2 (test),(static)",
    b"01.2.3.4:80,c2 (test),(static)", b"1.2.3:80,c2 (test),(static)", b"1.2.3.4::80,c2 (test),(static)",
    b"1.2.3.4:,c2 (test),(static)", b"256.1.1.1:80,c2 (test),(static)", b"[2001:db8::1]:443,c2 (test),(static)",
    b"host.example:8080,c2 (test),(static)", b"Site.Example/Path/X.php?A=1,malware (test),(static)",
    b"/just/a/path,malware (test),(static)", b"10.0.0.1/,malware (test),(static)",
    b"ends-with-digit9,malware (test),(static)", b"9.9.9.9.9,malware (test),(static)", b"1.2.3.4.,x (test),(static)",
    b"under_score.example,malware (test),(static)", b"space here.example,malware (test),(static)",
    b",empty key,(static)", b"k" * 70000 + b",too long (test),(static)",
    b"new-pair.example,info " + "\u00e9".encode() + b",(static)", b"bad-pair.example,info \xff,(static)",
    b"dup.example,first,(static)", b"DUP.example,second,(static)", b"2001:db8::5,malware (test),(static)",
    rb"rx[0-9]+\.example\.com,malware (test),(static)", b"*.wild.example,malware (test),(static)",
    b"ua:curl/7.1,bot (test),(static)", b"UA:Evil/1.0 (Loader; x),bot (test),(static)", b"ua:nos,bot (test),(static)",
    b'"ua:Mozilla/5.0 (X11, Linux) Evil/2",bot (test),(static)', b"ua:caf\xc3\xa9/1,bot (test),(static)",
]


@pytest.mark.parametrize("kind", ["every-kind", "crowding", "odd-lines"])
def test_index_files_are_byte_identical(tmp_path, monkeypatch, kind):
    path = tmp_path / "trails.csv"
    if kind == "odd-lines":
        rng = random.Random(9)
        lines = [rng.choice(ODD_LINES) if rng.random() < 0.3 else f"d{n}.example,family {n % 5},(static)".encode()
                 for n in range(3000)]
        path.write_bytes(ODD_LINES[0] + b"\n" + b"\n".join(lines) + b"\nlast.example,no newline,(static)")
    else:
        rows = rows_of_every_kind(random.Random(4)) if kind == "every-kind" else crowding_rows()
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    bodies = {}
    for pure in ("1", "0"):
        monkeypatch.setenv("MALTRAIL_PURE_PYTHON", pure)
        for min_bytes in (1 << 40, 0):  # serial, two processes
            out = tmp_path / f"{pure}-{min_bytes}.idx"
            build.build_index(str(path), str(out), parallel_min_bytes=min_bytes)
            bodies[(pure, min_bytes)] = out.read_bytes()[HEADER_SIZE:]
    assert bodies[("1", 0)] == bodies[("0", 0)]
    assert bodies[("1", 1 << 40)] == bodies[("0", 1 << 40)]


def crafted_grid(rng: random.Random) -> build._Grid:
    """A 64-slot grid over records whose hashes are chosen, not computed: many keys share a hash
    (some are the same key: duplicates; some are not: collisions), and homes crowd both region
    ends so that lower probes run past the middle and upper ones towards the end."""
    bits = 6
    keys = [f"key-{n}".encode() for n in range(40)]
    chunks, streams = [(0, bytearray(RECORDS_PAD))], []
    base = RECORDS_PAD
    for _ in range(2):  # two parts, as the two-process parse gives
        records, hashes, offsets = bytearray(), array("I"), array("I")
        for _ in range(30):
            key = rng.choice(keys)
            home = rng.choice((28, 29, 30, 31, 60, 61, 62, 63, 5))
            h = (rng.choice((1, 2)) << 8 | home) if key != keys[0] else home  # few hashes: equal for different keys
            hashes.append(h)
            offsets.append(len(records))
            records += RECORD_HEAD.pack(rng.randrange(50), len(key)) + key
        chunks.append((base, records))
        streams.append((hashes, offsets, base))
        base += len(records)
    return build._Grid(bits, chunks, streams)


def test_place_matches_its_specification():
    accel = load("_build")
    spilled_seen = fixups_seen = 0
    for seed in range(40):
        results = []
        for compiled in (False, True):
            grid = crafted_grid(random.Random(seed))
            out = []
            for upper in (False, True):
                if compiled:
                    placed, fixups, spilled, overflow = accel.place(grid.streams, grid.chunks, grid.table, grid.bloom,
                                                                    grid.mask, grid.shift, grid.half,
                                                                    build.BLOOM_MIX, upper)
                    assert not overflow
                else:
                    placed, fixups, spilled = grid._region_py(upper)
                out.append((placed, list(map(tuple, fixups)), list(map(tuple, spilled))))
            results.append((out, bytes(grid.table), bytes(grid.bloom), [bytes(c) for _, c in grid.chunks]))
        assert results[0] == results[1], seed
        spilled_seen += bool(results[0][0][0][2])
        fixups_seen += bool(results[0][0][0][1] or results[0][0][1][1])
    assert spilled_seen and fixups_seen  # the crafted streams reach both rare paths


def test_overflow_and_bad_arguments_are_reported():
    accel = load("_build")
    grid = crafted_grid(random.Random(1))
    grid.table = memoryview(bytearray(8 * 66)).cast("I")  # hardly any room past the region end
    _, _, _, overflow = accel.place(grid.streams, grid.chunks, grid.table, grid.bloom, grid.mask, grid.shift,
                                    grid.half, build.BLOOM_MIX, True)
    assert overflow
    with pytest.raises(ValueError):
        accel.place(grid.streams, grid.chunks, bytearray(7), grid.bloom, grid.mask, grid.shift, grid.half,
                    build.BLOOM_MIX, False)
    with pytest.raises(ValueError):
        accel.place(grid.streams, [(0, bytearray(8))], grid.table, grid.bloom, grid.mask, grid.shift, grid.half,
                    build.BLOOM_MIX, False)  # records missing where the table points


def test_remap_matches_its_specification():
    """The pair-id rewrite of the helper's part: C and Python give the same records, and a bad
    offset or pair id is an error, not a write outside the records."""
    accel = load("_build")
    rng = random.Random(11)
    for _ in range(20):
        records, offsets = bytearray(), array("I")
        for _ in range(rng.randrange(1, 300)):
            key = bytes(rng.randrange(97, 123) for _ in range(rng.randrange(1, 20)))
            offsets.append(len(records))
            records += RECORD_HEAD.pack(rng.randrange(64), len(key)) + key
        remap = [rng.randrange(1 << 32) for _ in range(64)]
        python, compiled = bytearray(records), bytearray(records)
        build._remap_py(python, offsets, remap)
        accel.remap(compiled, offsets, array("I", remap))
        assert compiled == python != records
    records = bytearray(RECORD_HEAD.pack(5, 1) + b"k")
    with pytest.raises(ValueError):
        accel.remap(records, array("I", [4]), array("I", range(8)))  # the head does not fit
    with pytest.raises(ValueError):
        accel.remap(records, array("I", [0]), array("I", range(5)))  # pair 5 has no entry
    with pytest.raises(TypeError):
        accel.remap(bytes(records), array("I", [0]), array("I", range(8)))  # not writable
