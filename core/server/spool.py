"""An ordered on-disk spool of event batches waiting for the event store.

Where it sits: the ClickHouse writer (core/server/clickhouse.py, in the intake process) pushes a
batch here when ClickHouse is slow or down, and while anything is spooled every later batch goes
here too, so batches reach ClickHouse in the order they were received. When ClickHouse answers
again the writer replays the oldest batch first and drops each file only after ClickHouse has
accepted it. Nothing is lost across a server restart either: the files stay in the folder and
the next start replays them.

One file per batch, `NNNNNNNNNNNN.tsv` (a sequence number), written to a temporary name,
fsynced and renamed, so a crash never leaves a half-written batch under a spool name. A batch
ClickHouse refuses as unreadable moves to `rejected/` (kept for the operator, never retried), so it
cannot hold every later batch back.
"""

from __future__ import annotations

import os
import re

NAME_RE = re.compile(r"(\d{12})\.tsv")
REJECTED = "rejected"


class Spool:
    """Batches (bytes) in a folder, oldest first."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith(".tmp"):          # an interrupted push: never renamed, never acknowledged
                os.unlink(os.path.join(folder, name))
        names = self.names()
        self.next_seq = int(names[-1][:12]) + 1 if names else 1

    def names(self) -> list[str]:
        return sorted(name for name in os.listdir(self.folder) if NAME_RE.fullmatch(name))

    def __len__(self) -> int:
        return len(self.names())

    def push(self, data: bytes, rejected: bool = False) -> None:
        """Append one batch (raises OSError when the disk refuses it); `rejected`: straight to
        rejected/."""
        name = f"{self.next_seq:012d}.tsv"
        self.next_seq += 1
        folder = self.folder
        if rejected:
            folder = os.path.join(self.folder, REJECTED)
            os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, os.path.join(folder, name))

    def oldest(self) -> tuple[str, bytes] | None:
        """(name, batch) of the oldest spooled batch, or None when the spool is empty."""
        names = self.names()
        if not names:
            return None
        with open(os.path.join(self.folder, names[0]), "rb") as handle:
            return names[0], handle.read()

    def drop(self, name: str) -> None:
        """Forget a batch the store has accepted."""
        os.unlink(os.path.join(self.folder, name))

    def reject(self, name: str) -> None:
        """Set a batch aside in rejected/ (ClickHouse cannot read it; never retried)."""
        os.makedirs(os.path.join(self.folder, REJECTED), exist_ok=True)
        os.replace(os.path.join(self.folder, name), os.path.join(self.folder, REJECTED, name))

    def size(self) -> int:
        """Bytes waiting."""
        total = 0
        for name in self.names():
            try:
                total += os.stat(os.path.join(self.folder, name)).st_size
            except OSError:
                pass
        return total
