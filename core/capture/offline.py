"""Offline capture: replays pcap/pcapng files (sensor -r FILE [FILE ...]) as a PacketSource.

Where it sits: capture -> pipeline. Files are read in the order given, through pcapy-ng
`open_offline` + `next_batch`, and share one pipeline state (the caller keeps one pipeline for the
whole replay). Packets keep their own capture timestamps (OFFLINE_TIMESTAMPS pcap, the default), or
get the wall clock at read time (OFFLINE_TIMESTAMPS wallclock, the original Python sensor's way).
Frames longer than `snaplen` are cut to it, as a live capture with that snap length would.
Nothing here touches the network.

Every path is checked when the source is built, so a missing, unreadable or non-capture file is a
`CaptureError` before any packet is processed. A file that ends inside a record (a capture cut
short) is not fatal: every complete packet before the cut is delivered, the error is counted in
`stats()["file_errors"]` and kept in `errors`, and replay continues with the next file.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import pcapy

from core.capture.source import Batch, CaptureError, Meta

DEFAULT_BATCH = 512
MAX_KEPT_ERRORS = 100


def _open(path: str) -> Any:
    """pcapy reader for `path`, or CaptureError with a one-line reason."""
    if path != "-":
        if not os.path.exists(path):
            raise CaptureError(f"capture file not found: {path}")
        if os.path.isdir(path):
            raise CaptureError(f"capture file is a directory: {path}")
        if not os.access(path, os.R_OK):
            raise CaptureError(f"capture file not readable (permission denied): {path}")
    try:
        return pcapy.open_offline(path)
    except pcapy.PcapError as ex:
        reason = str(ex).replace(path + ": ", "")
        raise CaptureError(f"not a readable pcap/pcapng file: {path} ({reason})") from None


class OfflineSource:
    """PacketSource over capture files, in order. See core/capture/source.py for the batch format."""

    def __init__(self, paths: Sequence[str], snaplen: int = 65535, batch_size: int = DEFAULT_BATCH,
                 timestamps: str = "pcap") -> None:
        if not paths:
            raise CaptureError("no capture file given")
        if timestamps not in ("pcap", "wallclock"):
            raise CaptureError(f"unknown timestamp mode {timestamps!r} (pcap or wallclock)")
        self.paths = list(paths)
        self.snaplen = snaplen
        self.batch_size = batch_size
        self.wallclock = timestamps == "wallclock"
        self.errors: list[str] = []
        self.linktypes: dict[str, int] = {}
        self._counters = {"files": 0, "packets": 0, "bytes": 0, "batches": 0, "truncated": 0,
                          "file_errors": 0}
        self._closed = False
        self._gen: Generator[Batch, None, None] | None = None
        for path in self.paths:
            if path != "-":  # stdin can be opened only once
                reader = _open(path)
                self.linktypes[path] = reader.datalink()
                reader.close()

    def __iter__(self) -> Iterator[Batch]:
        if self._gen is None:
            self._gen = self._batches()
        return self._gen

    def stats(self) -> dict[str, int]:
        return dict(self._counters)

    def close(self) -> None:
        """Stop the replay; the file being read is closed (now, or by the reading loop if it is running)."""
        self._closed = True
        if self._gen is not None:
            try:
                self._gen.close()
            except ValueError:  # generator running in another thread: it sees _closed and stops
                pass

    # --- reading ----------------------------------------------------------------------------------

    def _batches(self) -> Generator[Batch, None, None]:
        for path in self.paths:
            if self._closed:
                return
            yield from self._read_file(path)
            self._counters["files"] += 1

    def _read_file(self, path: str) -> Generator[Batch, None, None]:
        reader = _open(path)
        try:
            linktype = reader.datalink()
            delivered = 0
            while not self._closed:
                try:
                    buf, raw_meta = reader.next_batch(self.batch_size)
                except pcapy.PcapError as ex:
                    salvaged = self._salvage(path, delivered)
                    if salvaged is not None:
                        yield (linktype, *self._account(*salvaged))
                    self._file_error(path, str(ex))
                    return
                if not raw_meta:
                    return
                delivered += len(raw_meta) // 16
                yield (linktype, *self._account(buf, memoryview(raw_meta).cast("I")))
        finally:
            reader.close()

    def _account(self, buf: bytes, meta: Meta) -> tuple[bytes, Meta]:
        """Apply snaplen and the timestamp mode to one batch's meta and count it."""
        caplens = meta[3::4]
        counters = self._counters
        counters["batches"] += 1
        counters["packets"] += len(caplens)
        if self.wallclock or max(caplens) > self.snaplen:
            meta = array("I", meta)
            snaplen = self.snaplen
            now = time.time()
            sec, usec = int(now), int((now % 1) * 1_000_000)
            for i in range(0, len(meta), 4):
                if meta[i + 3] > snaplen:
                    meta[i + 3] = snaplen
                    counters["truncated"] += 1
                if self.wallclock:
                    meta[i], meta[i + 1] = sec, usec
            caplens = meta[3::4]
        counters["bytes"] += sum(caplens)
        return buf, meta

    def _salvage(self, path: str, skip: int) -> tuple[bytes, array] | None:
        """The complete packets of the batch that hit a read error, read one by one from a fresh handle."""
        reader = _open(path)
        try:
            while skip > 0:  # these were delivered already
                _, raw_meta = reader.next_batch(min(skip, self.batch_size))
                skip -= len(raw_meta) // 16
            chunks: list[bytes] = []
            meta = array("I")
            offset = 0
            while True:
                try:
                    header, data = reader.next()
                except pcapy.PcapError:
                    break
                if header is None:
                    break
                sec, usec = header.getts()
                meta.extend((sec, usec, offset, len(data)))
                chunks.append(data)
                offset += len(data)
        finally:
            reader.close()
        return (b"".join(chunks), meta) if chunks else None

    def _file_error(self, path: str, message: str) -> None:
        self._counters["file_errors"] += 1
        line = f"{path}: {message}"
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(line)
        import logging  # a damaged file only: not a start-up import

        logging.getLogger(__name__).warning("capture file damaged, continuing with the next one: %s", line)
