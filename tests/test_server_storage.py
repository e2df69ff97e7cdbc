"""core/server/storage.py in process on real files: segments of a day range, byte ranges across
day files (and a file that shrinks under a reader), whole-line iteration across read chunks,
exact and estimated line counts, the addresses of a stored line, cleared.txt and the days present."""

from __future__ import annotations

import datetime
import os

from core.events.dayfile import day_path
from core.server.storage import (
    CHUNK,
    Storage,
    count_lines,
    estimate_lines,
    iter_lines,
    iter_lines_reverse_days,
    line_addresses,
    read_range,
)

D1, D2, D3 = datetime.date(2024, 5, 1), datetime.date(2024, 5, 2), datetime.date(2024, 5, 3)


def _write(log_dir: str, day: datetime.date, data: bytes) -> str:
    path = day_path(log_dir, day)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def test_segments_skip_missing_and_empty_days_and_freeze_sizes(tmp_path):
    log_dir = str(tmp_path)
    _write(log_dir, D1, b"a\nb\n")
    _write(log_dir, D2, b"")
    storage = Storage(log_dir)
    segments = storage.segments([D1, D2, D3])
    assert [(os.path.basename(s.path), s.size) for s in segments] == [("2024-05-01.log", 4)]
    with open(day_path(log_dir, D1), "ab") as handle:       # a later append is not part of the answer
        handle.write(b"c\n")
    assert b"".join(read_range(segments, 0, segments[0].size - 1)) == b"a\nb\n"


def test_byte_ranges_span_day_files(tmp_path):
    log_dir = str(tmp_path)
    first, second, third = b"0123456789", b"abcdef", b"XYZ"
    for day, data in ((D1, first), (D2, second), (D3, third)):
        _write(log_dir, day, data)
    segments = Storage(log_dir).segments([D1, D2, D3])
    whole = first + second + third
    for a in range(len(whole)):
        for b in range(a, len(whole)):
            assert b"".join(read_range(segments, a, b)) == whole[a:b + 1], (a, b)


def test_a_file_that_shrinks_is_padded_to_the_promised_length(tmp_path):
    log_dir = str(tmp_path)
    path = _write(log_dir, D1, b"line one\nline two\n")
    segments = Storage(log_dir).segments([D1])
    os.truncate(path, 5)
    data = b"".join(read_range(segments, 0, segments[0].size - 1))
    assert data == b"line " + b"\n" * 13


def test_iter_lines_across_read_chunks_and_a_partial_last_line(tmp_path):
    log_dir = str(tmp_path)
    long_line = b"x" * (CHUNK + 17) + b"\n"                  # straddles a chunk boundary
    lines = [b"first\n", long_line] + [b"%d\n" % n for n in range(50000)]
    _write(log_dir, D1, b"".join(lines) + b"partial")
    _write(log_dir, D2, b"next day\n")
    segments = Storage(log_dir).segments([D1, D2])
    assert list(iter_lines(segments)) == lines + [b"partial\n", b"next day\n"]
    newest_first = [(day, line) for day, line in iter_lines_reverse_days(Storage(log_dir), [D1, D2])]
    assert newest_first[0] == ("2024-05-02", b"next day\n") and newest_first[1] == ("2024-05-01", b"first\n")


def test_line_counts(tmp_path):
    log_dir = str(tmp_path)
    path = _write(log_dir, D1, b"a\n" * 1000 + b"tail")
    size = os.path.getsize(path)
    assert count_lines(path, size) == 1001
    assert count_lines(path, 10) == 5
    assert count_lines(path, 0) == 0
    line = b'"2024-05-01 00:00:00.000000" s 10.0.0.1 1 1.2.3.4 2 TCP IP 1.2.3.4 x y\n'
    big = _write(log_dir, D2, line * 200000)
    estimate = estimate_lines(big, os.path.getsize(big))
    assert estimate % 100 == 0 and abs(estimate - 200000) <= 200000 * 0.01
    small = _write(log_dir, D3, b"no newline at all")
    assert estimate_lines(small, os.path.getsize(small)) == 1


def test_line_addresses():
    assert line_addresses(b'"2024-05-01 00:00:00.000000" s1 10.0.0.1 1234 1.2.3.4 80 TCP IP x y z\n') \
        == ("10.0.0.1", "1.2.3.4")
    assert line_addresses(b'"2024-05-01 00:00:00.000000" "my ""sensor"" 2" 2001:db8::5 - 2001:db8::6 - UDP DNS '
                          b'x y z\n') == ("2001:db8::5", "2001:db8::6")
    assert line_addresses(b"not an event line\n") is None
    assert line_addresses(b'"2024-05-01 00:00:00" s1\n') is None


def test_cleared_marks_and_days_present(tmp_path):
    log_dir = str(tmp_path)
    storage = Storage(log_dir)
    assert storage.cleared() == {} and storage.cleared_mtime() == 0.0
    with open(os.path.join(log_dir, "cleared.txt"), "w") as handle:
        handle.write("# remediated hosts\n10.0.0.1\n\n2001:db8::1 2024-05-01 12:00:00  # noted\n"
                     "not-an-ip 2024-01-01 00:00:00\n   203.0.113.9\n")
    assert storage.cleared() == {"10.0.0.1": "", "2001:db8::1": "2024-05-01 12:00:00", "203.0.113.9": ""}
    assert storage.cleared_mtime() > 0
    for name in ("2024-05-03.log", "2024-05-01.log", "error.log", "2024-05-02.log.gz", "notes.txt"):
        open(os.path.join(log_dir, name), "w").close()
    assert storage.days_present() == ["2024-05-01", "2024-05-03"]
    assert Storage(os.path.join(log_dir, "missing")).days_present() == []
