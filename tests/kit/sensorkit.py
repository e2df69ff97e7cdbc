"""SensorKit: the production sensor (core/assemble.build_sensor) over a small trail set, in memory.

Where it sits: test-only. A test builds frames with tests/kit/pcapgen.py and feeds them here; they
go through exactly what sensor.py runs (whitelist and ignore filters, condense, throttle,
heuristics as configured), and the event lines land in a memory sink:

    kit = SensorKit([("66.66.66.66", "malware (test)", "(static)")], folder=str(tmp_path))
    lines = kit.feed(g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.tcp(40000, 443))))
    kit.close()                       # flushes condensed/throttled events (returns their lines)
    kit.events                        # every Event written, in order

Configuration keys are keyword arguments (`USE_HEURISTICS=True`, `EVENT_THROTTLE_MODE="off"`),
read exactly as maltrail.conf values would be; `whitelist=[...]` entries are written to a
USER_WHITELIST file (added to the bundled list, as in production); `plugins=[...]` names plugins
to load (default: the PLUGINS key, as in production).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

from core.assemble import Sensor, build_sensor
from core.capture.offline import DEFAULT_BATCH, OfflineSource
from core.config import Config, load_config
from core.events.event import Event
from core.events.sinks import MemorySink
from core.trails.store import TrailStore

T0 = 1_700_000_000
ETHERNET = 1
Rows = Iterable[tuple[str, str, str]]


def conf_text(value: object) -> str:
    """A keyword value as it would be written in maltrail.conf."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SensorKit:
    """See the module docstring. `trails`: a TrailStore, a trails.csv path, or (trail, info,
    reference) rows; `folder`: where the index, the whitelist file and LOG_DIR go (a temporary
    folder removed by `close()` when not given)."""

    def __init__(self, trails: TrailStore | str | Rows = (), *, folder: str | None = None,
                 whitelist: Iterable[str] = (), plugins: Iterable[str] | None = None, **conf: object) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sensorkit-")
            folder = self._tmp.name
        self.folder = folder
        overrides = {"LOG_DIR": self.folder, "SENSOR_NAME": "kit"}
        entries = list(whitelist)
        if entries:
            path = os.path.join(self.folder, "kit-whitelist.txt")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("\n".join(entries) + "\n")
            overrides["USER_WHITELIST"] = path
        overrides.update({key: conf_text(value) for key, value in conf.items()})
        self.config: Config = load_config(overrides=overrides)
        self.store = self._store(trails)
        self.sink = MemorySink()
        self.sensor: Sensor = build_sensor(self.config, self.store, sinks=[self.sink],
                                           plugins=None if plugins is None else list(plugins))
        self.detector = self.sensor.detector
        self.closed = False

    def _store(self, trails: TrailStore | str | Rows) -> TrailStore:
        if isinstance(trails, TrailStore):
            return trails
        if isinstance(trails, str):
            return TrailStore.open(trails, index_dir=self.folder)
        folder = os.path.join(self.folder, "trails")
        os.makedirs(folder, exist_ok=True)
        return TrailStore.from_rows(list(trails), folder)

    # --- feeding ----------------------------------------------------------------------------------

    def _since(self, mark: int) -> list[str]:
        return self.sink.lines[mark:]

    def feed(self, frame: bytes, ts: float = T0, linktype: int = ETHERNET) -> list[str]:
        """One packet at packet time `ts`; the lines written while handling it."""
        mark = len(self.sink.lines)
        sec = int(ts)
        self.sensor.process(linktype, sec, round((ts - sec) * 1e6), frame)
        return self._since(mark)

    def feed_all(self, packets: Iterable[tuple[float, bytes]], linktype: int = ETHERNET) -> list[str]:
        """(ts, frame) pairs in order; the lines written meanwhile."""
        mark = len(self.sink.lines)
        for ts, frame in packets:
            self.feed(frame, ts, linktype)
        return self._since(mark)

    def feed_pcap(self, *paths: str, batch_size: int = DEFAULT_BATCH, snaplen: int = 65535) -> list[str]:
        """Capture files through the offline capture source in batches (sensor.py's -r path)."""
        mark = len(self.sink.lines)
        source = OfflineSource(list(paths), snaplen=snaplen, batch_size=batch_size)
        try:
            for linktype, buf, meta in source:
                self.sensor.process_batch(linktype, buf, meta)
        finally:
            source.close()
        return self._since(mark)

    def close(self) -> list[str]:
        """Flush the event stages and close the sinks (once); the lines the flush wrote."""
        mark = len(self.sink.lines)
        if not self.closed:
            self.closed = True
            self.sensor.close()
            if self._tmp is not None:
                self._tmp.cleanup()
        return self._since(mark)

    def replay(self, packets: Iterable[tuple[float, bytes]], linktype: int = ETHERNET) -> list[Event]:
        """Feed every packet, close, and return every event written (what a whole run logs)."""
        self.feed_all(packets, linktype)
        self.close()
        return self.events

    # --- results ----------------------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        return self.sink.events

    @property
    def lines(self) -> list[str]:
        return self.sink.lines

    @property
    def errors(self) -> dict[str, str]:
        """The first traceback of each kind of per-packet error (empty when none)."""
        return self.detector.first_errors

    def __enter__(self) -> SensorKit:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
