"""Event pipeline: everything between a detection and the sinks.

Where it sits: detect.py and the heuristics call `emit(event, packet)`. The pipeline applies, in
order: whitelist and ignore rules, condensing of noisy classes, the throttle, then formats the
line once and hands it to every sink, then calls plugins. `tick(sec)` is called with packet time
so windows close deterministically on offline replay (it also lets a sink holding events after
write errors try again); `close()` flushes everything.

The stages are plain objects passed in at construction (an explicit list, no registry magic):
a filter has `allow(event) -> bool`; a stage with state has `push(event, packet) -> list of
(event, packet)` to pass on now, `tick(sec)` and `flush()` returning what is due.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from core.events.event import Event, format_line
from core.events.plugins import PluginRunner
from core.events.sinks import Sink


class Stage(Protocol):
    def push(self, event: Event, packet: bytes | None) -> list[tuple[Event, bytes | None]]: ...

    def tick(self, sec: int) -> list[tuple[Event, bytes | None]]: ...

    def flush(self) -> list[tuple[Event, bytes | None]]: ...


class EventPipeline:
    """emit → filters → stages (condense, throttle) → sinks → plugins."""

    def __init__(self, sinks: Sequence[Sink], sensor_name: str,
                 filters: Sequence[Callable[[Event], bool]] = (),
                 stages: Sequence[Stage] = (),
                 plugins: PluginRunner | None = None) -> None:
        self.sinks = list(sinks)
        self.sensor_name = sensor_name
        self.filters = list(filters)
        self.stages = list(stages)
        self.plugins = plugins
        self.emitted = 0
        self.filtered = 0
        self.delivered = 0

    def emit(self, event: Event, packet: bytes | None = None) -> None:
        self.emitted += 1
        for allow in self.filters:
            if not allow(event):
                self.filtered += 1
                return
        self._through(0, [(event, packet)])

    def emit_plugins_only(self, event: Event, packet: bytes | None = None) -> None:
        """Hand a packet of an already-reported flow to plugins without writing a line."""
        if self.plugins is not None:
            self.plugins.call(event, packet)

    def _through(self, index: int, items: list[tuple[Event, bytes | None]]) -> None:
        for stage in self.stages[index:]:
            passed: list[tuple[Event, bytes | None]] = []
            for event, packet in items:
                passed.extend(stage.push(event, packet))
            items = passed
            if not items:
                return
        for event, packet in items:
            self._deliver(event, packet)

    def _deliver(self, event: Event, packet: bytes | None) -> None:
        line = format_line(event, self.sensor_name)
        for sink in self.sinks:
            sink.write(event, line)
        self.delivered += 1
        if self.plugins is not None:
            self.plugins.call(event, packet)

    def tick(self, sec: int) -> None:
        for index, stage in enumerate(self.stages):
            due = stage.tick(sec)
            if due:
                self._through(index + 1, due)
        for sink in self.sinks:
            if sink.pending():          # events held after write errors: try again
                sink.flush()

    def close(self) -> None:
        for index, stage in enumerate(self.stages):
            due = stage.flush()
            if due:
                self._through(index + 1, due)
        for sink in self.sinks:
            sink.flush()
            sink.close()
