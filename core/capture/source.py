"""The PacketSource contract between capture and the pipeline.

Where it sits: capture -> pipeline. A source is an iterable of batches

    (linktype, buf, meta)

- `linktype`: the pcap DLT of every frame in this batch (it may change between batches, e.g. when
  several -r files have different link types; build one `Decoder` per link type).
- `buf`: bytes holding the frames of the batch back to back, exactly as pcapy-ng `next_batch`
  returns them.
- `meta`: a flat sequence of native uint32, four per frame: `sec, usec, offset, caplen`
  (frame i is `buf[meta[4*i+2] : meta[4*i+2] + meta[4*i+3]]`, captured at sec + usec/1e6).
  It is a `memoryview` cast to "I" (zero copy over next_batch's meta) or an `array("I")`;
  `len(meta) // 4` frames. `iter_meta(meta)` walks it as tuples.

plus `stats() -> dict[str, int]` (counters such as packets, bytes, batches, files, truncated;
live sources add recv/drop/ifdrop) and `close()` (idempotent; stops iteration).

Implementations: `core/capture/offline.py` (pcap/pcapng files). `core/capture/live.py`
(interfaces through pcapy-ng open_live/activate, BPF filter, fanout) implements the same
Protocol, so sensor.py can hand either to `Detector.process_batch` unchanged.

Problems that make a source unusable (missing file, not a capture file, unknown interface) raise
`CaptureError` with a one-line message that the CLI prints before exiting non-zero.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

Meta = memoryview | array
Batch = tuple[int, bytes, Meta]

META_FIELDS = 4  # sec, usec, offset, caplen


class CaptureError(Exception):
    """A capture source that cannot be opened or read; str() is the one line shown to the operator."""


@runtime_checkable
class PacketSource(Protocol):
    def __iter__(self) -> Iterator[Batch]: ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...


_META4 = struct.Struct("=4I")


def iter_meta(meta: Meta) -> Iterator[tuple[int, int, int, int]]:
    """(sec, usec, offset, caplen) per frame of a batch."""
    return _META4.iter_unpack(meta)
