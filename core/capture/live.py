"""Live capture: pcapy-ng handles on MONITOR_INTERFACE, as a PacketSource.

Where it sits: the first stage of the live sensor (sensor.py, or each capture worker of
core/capture/workers.py). It yields batches `(linktype, buf, meta)` exactly like the offline
source (meta: 4 native uint32 per packet: sec, usec, offset, caplen, from pcapy-ng next_batch),
plus an empty batch whenever the read timeout passes without traffic, so the caller can do its
housekeeping (signals, metrics, time-driven flushes) on an idle link.

Handles are opened with pcap_create + set_snaplen / set_promisc / set_timeout / set_buffer_size +
activate, then the CAPTURE_FILTER BPF program. Several interfaces mean several handles, read in
turn through select() on their selectable fds. Every failure a user can cause (unknown interface,
missing privileges, a filter that does not compile) becomes a CaptureError with one line that
says what to do.
"""

from __future__ import annotations

import array
import os
import select
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pcapy

from core.config import Config

CAP_NET_RAW = 13
CAP_NET_ADMIN = 12
MAX_KERNEL_RING = 256 << 20
DEFAULT_KERNEL_RING = 64 << 20
BATCH = 512

Batch = tuple[int, bytes, Any]


class CaptureError(Exception):
    """A capture problem with a one-line explanation for the operator."""


@dataclass
class CaptureSettings:
    """What a live handle needs, resolved from the configuration."""

    interfaces: list[str]
    snaplen: int = 2000
    timeout_ms: int = 100
    buffer_size: int = DEFAULT_KERNEL_RING
    bpf: str | None = None
    promisc: bool = True

    @classmethod
    def from_config(cls, config: Config) -> CaptureSettings:
        return cls(
            interfaces=split_interfaces(config.MONITOR_INTERFACE),
            snaplen=config.CAPTURE_SNAPLEN,
            # Immediate mode is emulated with the shortest read timeout pcapy-ng offers.
            timeout_ms=1 if config.CAPTURE_IMMEDIATE else config.CAPTURE_TIMEOUT,
            buffer_size=kernel_ring_size(config),
            bpf=(config.CAPTURE_FILTER or "").strip() or None,
        )


def kernel_ring_size(config: Config) -> int:
    """CAPTURE_BUFFER_SIZE when set, else CAPTURE_BUFFER capped at 256MB, else 64MB."""
    explicit = config.CAPTURE_BUFFER_SIZE
    if explicit:
        return int(explicit)
    derived = config.CAPTURE_BUFFER
    if derived:
        return int(min(max(int(derived), 1 << 20), MAX_KERNEL_RING))
    return DEFAULT_KERNEL_RING


def split_interfaces(spec: str | None) -> list[str]:
    names = [part.strip() for part in (spec or "any").split(",") if part.strip()]
    return names or ["any"]


def available_interfaces() -> list[str]:
    try:
        return list(pcapy.findalldevs())
    except pcapy.PcapError:
        return []


def capabilities() -> int | None:
    """The effective capability mask of this process (None when it cannot be read)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def can_capture() -> bool:
    """CAP_NET_RAW is in the effective set. uid 0 alone is not enough: a container or a unit may run
    as root with its capabilities dropped. Where the mask cannot be read, root is taken to have it."""
    caps = capabilities()
    if caps is None:
        return os.geteuid() == 0
    return bool(caps & (1 << CAP_NET_RAW))


PRIVILEGE_HINT = ("live capture needs root or the CAP_NET_RAW capability (and CAP_NET_ADMIN for "
                  "promiscuous mode): run with sudo, or use maltrail-sensor.service which grants them")


def check_interfaces(names: list[str]) -> None:
    """Raise CaptureError naming the unknown interfaces and listing the available ones."""
    known = available_interfaces()
    if not known:
        return  # findalldevs failed (no privileges, or no devices): activate() will explain
    unknown = [name for name in names if name not in known and not name.startswith("netmap:")]
    if unknown:
        raise CaptureError(f"unknown interface {', '.join(unknown)} in MONITOR_INTERFACE; available: "
                           + ", ".join(known))


def check_filter(bpf: str | None, linktype: int = pcapy.DLT_EN10MB, snaplen: int = 2000) -> None:
    """Raise CaptureError when the CAPTURE_FILTER expression does not compile."""
    if not bpf:
        return
    try:
        pcapy.compile(linktype, snaplen, bpf, 1, 0)
    except pcapy.PcapError as ex:
        raise CaptureError(f"CAPTURE_FILTER does not compile: {ex} (filter: {bpf})") from None


def _explain(name: str, ex: Exception) -> CaptureError:
    text = str(ex)
    low = text.lower()
    if ("permission" in low or "operation not permitted" in low or "eperm" in low
            or "not-yet-activated" in low):  # activate() failed quietly: the usual cause is privileges
        return CaptureError(f"cannot capture on {name}: {text}; {PRIVILEGE_HINT}")
    if "no such device" in low or "doesn't exist" in low or "not exist" in low:
        known = available_interfaces()
        return CaptureError(f"unknown interface {name}: {text}; available: {', '.join(known) or '(none)'}")
    return CaptureError(f"cannot capture on {name}: {text}")


def open_handle(name: str, settings: CaptureSettings) -> Any:
    """One activated pcapy-ng handle with the filter applied."""
    if not can_capture():
        raise CaptureError(f"cannot capture on {name}: this process lacks CAP_NET_RAW; {PRIVILEGE_HINT}")
    try:
        handle = pcapy.create(name)
        handle.set_snaplen(settings.snaplen)
        handle.set_promisc(1 if settings.promisc else 0)
        handle.set_timeout(settings.timeout_ms)
        handle.set_buffer_size(settings.buffer_size)
        handle.activate()
    except pcapy.PcapError as ex:
        raise _explain(name, ex) from None
    if settings.bpf:
        try:
            handle.setfilter(settings.bpf)
        except pcapy.PcapError as ex:
            handle.close()
            if "not-yet-activated" in str(ex):  # the filter is fine: the handle never opened
                raise _explain(name, ex) from None
            raise CaptureError(f"CAPTURE_FILTER rejected on {name}: {ex} (filter: {settings.bpf})") from None
    return handle


class LiveSource:
    """Batches from one or more live interfaces. `stop()` (e.g. from a signal handler) ends the
    iteration within one read timeout; `stats()` sums the kernel counters of every handle.

    `on_open(index, name, handle)` runs after each handle is activated and filtered (the workers
    join their fanout group there)."""

    def __init__(self, settings: CaptureSettings,
                 on_open: Callable[[int, str, Any], None] | None = None) -> None:
        check_filter(settings.bpf, snaplen=settings.snaplen)
        check_interfaces(settings.interfaces)
        self.settings = settings
        self.names = list(settings.interfaces)
        self.handles: list[Any] = []
        self._stopping = False
        try:
            for index, name in enumerate(self.names):
                handle = open_handle(name, settings)
                self.handles.append(handle)
                if on_open is not None:
                    on_open(index, name, handle)
        except BaseException:
            self.close()
            raise
        self.linktypes = [handle.datalink() for handle in self.handles]

    def stop(self) -> None:
        self._stopping = True

    def __iter__(self) -> Iterator[Batch]:
        # Non-blocking handles behind select(): pcapy-ng's blocking next_batch does not return on
        # the read timeout, and select() also serves several interfaces from one loop.
        empty = array.array("I")
        for handle in self.handles:
            handle.setnonblock(1)
        fds = {handle.getfd(): index for index, handle in enumerate(self.handles)}
        timeout = self.settings.timeout_ms / 1000.0
        while not self._stopping:
            try:
                ready, _, _ = select.select(list(fds), [], [], timeout)
            except InterruptedError:
                ready = []
            got = False
            for fd in ready:
                index = fds[fd]
                while not self._stopping:
                    buf, meta = self._read(index, self.handles[index])
                    if not meta:
                        break
                    got = True
                    yield self.linktypes[index], buf, meta
            if not got:
                yield self.linktypes[0] if self.linktypes else 1, b"", empty

    def _read(self, index: int, handle: Any) -> tuple[bytes, Any]:
        try:
            return handle.next_batch(BATCH)
        except pcapy.PcapError as ex:
            if self._stopping:
                return b"", None
            raise CaptureError(f"capture on {self.names[index]} failed: {ex}") from None

    def stats(self) -> dict[str, int]:
        """Kernel counters summed over the handles: received, dropped (ring full), ifdropped."""
        total = {"received": 0, "dropped": 0, "ifdropped": 0}
        for handle in self.handles:
            try:
                received, dropped, ifdropped = handle.stats()
            except pcapy.PcapError:
                continue
            total["received"] += received
            total["dropped"] += dropped
            total["ifdropped"] += ifdropped
        return total

    def close(self) -> None:
        self._stopping = True
        for handle in self.handles:
            try:
                handle.close()
            except pcapy.PcapError:
                pass
        self.handles = []
