"""The journal of events on their way to ClickHouse: appended by the intake, read by the writer.

Where it sits: between the intake's receive loop (intake.py, through chwriter.py's `StoreFeed`)
and the ClickHouse writer process (chwriter.py `run_writer`). The intake appends every flush of
accepted lines here (one write per day per flush, as it does for the day files), so it never
waits on ClickHouse and never competes with the writer for the interpreter; the writer reads the
journal in order, inserts batches, and records how far ClickHouse has accepted. When ClickHouse
is slow or down the journal simply grows, and the writer replays it in order when it is back;
across restarts it resumes from the recorded position. Nothing is acknowledged before ClickHouse
accepted it, so nothing is lost; a batch sent again after a lost answer is the same rows (the
store counts distinct events).

Files (in LOG_DIR/clickhouse-spool): `NNNNNNNNNNNN.journal`, a new one per intake start and every
ROTATE_BYTES; `position` (`<file number> <offset>`, replaced atomically after each accepted
batch); a fully read file older than the newest is deleted. A record is
`\\0<YYYY-MM-DD> <length>\\n` followed by `length` bytes of lines (lines never hold NUL: the
intake drops them), so a reader tells a record still being written (shorter than its length)
from a complete one. A batch ClickHouse refuses as unreadable goes to `rejected/` (kept for the
operator, never retried) and the position moves past it.
"""

from __future__ import annotations

import os
import re

ROTATE_BYTES = 64 << 20
READ_CHUNK = 8 << 20
NAME_RE = re.compile(r"(\d{12})\.journal")
HEAD_RE = re.compile(rb"\x00(\d{4}-\d\d-\d\d) (\d{1,10})\n")
REJECTED = "rejected"
POSITION = "position"

Record = tuple[str, bytes]      # (day, lines)


def journal_files(folder: str) -> list[int]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(NAME_RE.fullmatch, names) if m)


def path_of(folder: str, number: int) -> str:
    return os.path.join(folder, f"{number:012d}.journal")


class JournalWriter:
    """The append side (the intake process)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        numbers = journal_files(folder)
        self.number = (numbers[-1] if numbers else 0) + 1
        self.fd = -1
        self.size = 0

    def append(self, day: str, data: bytes) -> None:
        """One record (raises OSError when the disk refuses it)."""
        if self.fd < 0 or self.size >= ROTATE_BYTES:
            self._rotate()
        record = b"\x00%s %d\n%s" % (day.encode("ascii"), len(data), data)
        view = memoryview(record)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            # part of the record may be written: the next record starts a new file, so this one
            # stays the torn end of an older file (which the reader skips)
            os.close(self.fd)
            self.fd = -1
            self.number += 1
            raise
        self.size += len(record)

    def _rotate(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.number += 1
        self.fd = os.open(path_of(self.folder, self.number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class JournalReader:
    """The read side (the writer process): batches in order, and the accepted position."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.number, self.offset = self._load_position()

    def _load_position(self) -> tuple[int, int]:
        try:
            with open(os.path.join(self.folder, POSITION), encoding="ascii") as handle:
                number, offset = (int(x) for x in handle.read().split())
                return number, offset
        except (OSError, ValueError):
            return 0, 0

    def read(self, max_lines: int) -> tuple[list[Record], tuple[int, int]]:
        """Complete records after the accepted position, up to about max_lines lines, and the
        position after them (to `commit` once ClickHouse has them). The torn last record of an
        older file (the intake stopped mid-write) is skipped."""
        number, offset = self.number, self.offset
        records: list[Record] = []
        lines = 0
        numbers = [n for n in journal_files(self.folder) if n >= number]
        for candidate in numbers:
            if candidate > number:
                number, offset = candidate, 0
            path = path_of(self.folder, candidate)
            try:
                size = os.stat(path).st_size
                data = self._read(path, offset, READ_CHUNK)
            except OSError:
                continue
            pos = 0
            while lines < max_lines:
                head = HEAD_RE.match(data, pos)
                if head is None:
                    break
                end = head.end() + int(head.group(2))
                if end > len(data) and pos == 0 and len(data) == READ_CHUNK:
                    data = self._read(path, offset, end)           # one record larger than a read
                if end > len(data):
                    break
                chunk = data[head.end():end]
                records.append((head.group(1).decode("ascii"), chunk))
                lines += chunk.count(b"\n")
                pos = end
            at_end = offset + len(data) >= size
            offset += pos
            if lines >= max_lines or candidate == numbers[-1] or not at_end:
                break
        return records, (number, offset)

    @staticmethod
    def _read(path: str, offset: int, size: int) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    def commit(self, position: tuple[int, int]) -> None:
        """ClickHouse has everything before `position`: record it, delete older journal files."""
        number, offset = position
        temp = os.path.join(self.folder, POSITION + ".tmp")
        with open(temp, "w", encoding="ascii") as handle:
            handle.write(f"{number} {offset}\n")
        os.replace(temp, os.path.join(self.folder, POSITION))
        self.number, self.offset = number, offset
        for old in journal_files(self.folder):
            if old < number:
                try:
                    os.unlink(path_of(self.folder, old))
                except OSError:
                    pass

    def reject(self, rows: bytes, position: tuple[int, int]) -> None:
        """Keep a batch ClickHouse cannot read in rejected/ and move past it."""
        folder = os.path.join(self.folder, REJECTED)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{self.number:012d}-{self.offset}.tsv"), "wb") as handle:
            handle.write(rows)
        self.commit(position)

    def pending(self) -> bool:
        """Anything after the accepted position (a complete record or not)."""
        for number in journal_files(self.folder):
            if number > self.number:
                return True
            if number == self.number:
                try:
                    if os.stat(path_of(self.folder, number)).st_size > self.offset:
                        return True
                except OSError:
                    pass
        return False
