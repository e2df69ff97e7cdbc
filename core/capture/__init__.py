"""Capture stage: packet sources that feed the pipeline with batches of raw frames.

Where it sits: **capture** -> decode -> protocols -> detect. `source.PacketSource` is the contract;
`offline.OfflineSource` replays pcap/pcapng files (-r). Live capture (interfaces, BPF filter,
fanout workers) belongs in `core/capture/live.py` with the same contract, so detection never
needs to know where packets come from.
"""

from core.capture.source import Batch, CaptureError, PacketSource, iter_meta

__all__ = ["Batch", "CaptureError", "PacketSource", "iter_meta"]
