"""Event stage: the Event record, its log-line format, the event pipeline and its sinks.

`EventSink` is the contract between detection and this stage: what core/detect and the heuristics
call. `core/events/pipeline.py:EventPipeline` is the implementation sensor.py builds.
"""

from __future__ import annotations

from typing import Protocol

from core.events.event import Event


class EventSink(Protocol):
    """Where detections go: `emit` (filters, stages, sinks, plugins), `emit_plugins_only` (a packet
    of an already-reported flow, for plugins only), `tick` (packet time advanced)."""

    def emit(self, event: Event, packet: bytes | None = None) -> None: ...

    def emit_plugins_only(self, event: Event, packet: bytes | None = None) -> None: ...

    def tick(self, sec: int) -> None: ...
