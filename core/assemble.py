"""Composition root: the one place where a sensor's detection and event path are wired.

Where it sits: between configuration and capture. sensor.py (offline replay and every live capture
worker, core/capture/workers.py), the self-test (core/ops/preflight.py), the retention bench
(bench/retention.py) and the tests (tests/kit/) all build their sensor with `build_sensor`, so
what they run is the production path:

    whitelist (bundled + USER_WHITELIST)
    events: filters (whitelist, IGNORE_EVENTS_REGEX, ignore tuples) → condense → throttle
            → sinks → plugins                                      (core/events/)
    heuristics: USE_HEURISTICS / DISABLED_HEURISTICS, emitting into `events` (core/heuristics/)
    detector: per-packet orchestration over the trail store      (core/detect/detector.py)

Every build failure a configuration can cause (unreadable whitelist or ignore list, unknown
plugin or heuristic name) is raised as one `AssemblyError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.config import Config, ConfigError
from core.detect.detector import Detector
from core.events.filters import build_event_stages
from core.events.observables import ObservableSink, ObservableStore, meta_path
from core.events.pipeline import EventPipeline
from core.events.plugins import PluginError, PluginRunner, load_plugins, plugin_names
from core.events.remote import build_remote_sinks
from core.events.sinks import ConsoleSink, LogFileSink, Sink, UdpSink
from core.heuristics import Heuristics
from core.heuristics.engine import build_heuristics
from core.trails.store import TrailStore
from core.trails.whitelist import Whitelist


class AssemblyError(Exception):
    """The sensor cannot be built from this configuration (one-line reason)."""


@dataclass
class Sensor:
    """One capture stream's detection and event path, as `build_sensor` wired it."""

    detector: Detector
    events: EventPipeline
    heuristics: Heuristics
    whitelist: Whitelist

    def process_batch(self, linktype: int, buf: bytes, meta: Any) -> None:
        """A capture batch (see core/capture/source.py) through detection into the events."""
        self.detector.process_batch(linktype, buf, meta)

    def process(self, linktype: int, sec: int, usec: int, frame: bytes) -> None:
        """One packet (the self-test and the tests)."""
        self.detector.process(linktype, sec, usec, frame)

    def close(self) -> None:
        """Flush the condensed and throttled events and close the sinks."""
        self.events.close()


# Builds one sensor from a configuration and a trail store (one per capture worker).
SensorFactory = Callable[[Config, TrailStore], Sensor]


def configured_sinks(config: Config, console: bool = False) -> list[Sink]:
    """The sinks the configuration asks for: daily log files (and the observables store,
    USE_CONDENSED_STORAGE, when no LOG_SERVER gets the events), LOG_SERVER, the console (`--console`,
    or when no other local or remote destination is set), SYSLOG_SERVER and LOGSTASH_SERVER."""
    sinks: list[Sink] = []
    if not config.DISABLE_LOCAL_LOG_STORAGE:
        sinks.append(LogFileSink(config.LOG_DIR))
    if config.LOG_SERVER:
        signer = None
        if config.UDP_KEY:
            from core.events.signing import Signer

            signer = Signer(config.UDP_KEY)
        sinks.append(UdpSink(config.LOG_SERVER, signer=signer))
    if config.USE_CONDENSED_STORAGE and not config.DISABLE_LOCAL_LOG_STORAGE and not config.LOG_SERVER:
        sinks.append(ObservableSink(ObservableStore(meta_path(config.LOG_DIR))))  # else the server's intake
    if console or (config.DISABLE_LOCAL_LOG_STORAGE and not config.LOG_SERVER and not config.SYSLOG_SERVER):
        sinks.append(ConsoleSink())
    sinks.extend(build_remote_sinks(config))
    return sinks


def build_sensor(config: Config, store: TrailStore, *, sinks: Sequence[Sink] | None = None,
                 plugins: Sequence[str] | None = None) -> Sensor:
    """The sensor for `config` over `store`.

    `sinks`: where event lines go (None = `configured_sinks(config)`). `plugins`: plugin names to
    load (None = the PLUGINS key; empty = none). Raises AssemblyError."""
    try:
        whitelist = Whitelist.load(config)
    except OSError as ex:
        raise AssemblyError(f"USER_WHITELIST {ex.filename}: {ex.strerror}") from None
    try:
        if sinks is None:
            sinks = configured_sinks(config)
        filters, stages = build_event_stages(config, whitelist)
        names = plugin_names(None, config.PLUGINS) if plugins is None else list(plugins)
        runner: PluginRunner | None = load_plugins(names) if names else None
    except (ConfigError, PluginError) as ex:
        raise AssemblyError(str(ex)) from None
    events = EventPipeline(sinks, sensor_name=config.SENSOR_NAME or "-", filters=filters, stages=stages,
                           plugins=runner)
    try:
        heuristics = build_heuristics(config, store, whitelist, events)
    except (ConfigError, OSError) as ex:
        raise AssemblyError(str(ex)) from None
    detector = Detector(config, store, events, heuristics=heuristics, whitelist=whitelist,
                        plugins_wanted=runner is not None)
    return Sensor(detector, events, heuristics, whitelist)
