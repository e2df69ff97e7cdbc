"""Sensor metrics: per-worker counters in shared memory, served as Prometheus text on STATS_ADDRESS.

Where it sits: beside the capture loop. Each capture worker (core/capture/workers.py) publishes
its totals into its own row of a `SharedCounters` block (an anonymous shared mmap created before
the workers fork, so the supervisor reads them without any IPC); `MetricsServer` (standard library
http.server, one thread in the supervisor) renders them on GET /metrics.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.config import VERSION, parse_endpoint
from core.decode.packet import decapsulated
from core.decode.tunnel import KINDS as TUNNEL_KINDS
from core.detect.detector import Detector
from core.events.pipeline import EventPipeline

FIELDS = ("heartbeat", "pid", "packets", "received", "dropped", "ifdropped", "events_detected",
          "events_written", "events_lost", "log_write_errors", "state_saturation", "packet_errors",
          "trail_generation", "trail_count", "trail_loaded", "reload_rejected",
          "tunnel_malformed", "tunnel_too_deep") + tuple(f"decap_{kind}" for kind in TUNNEL_KINDS)
_ROW = struct.Struct(f"={len(FIELDS)}d")


class SharedCounters:
    """A fixed table (workers x FIELDS) of doubles in MAP_SHARED anonymous memory."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._map = mmap.mmap(-1, max(_ROW.size * workers, 1))

    def publish(self, worker: int, **values: float) -> None:
        row = list(self.row(worker).values())
        for name, value in values.items():
            row[FIELDS.index(name)] = float(value)
        _ROW.pack_into(self._map, worker * _ROW.size, *row)

    def row(self, worker: int) -> dict[str, float]:
        return dict(zip(FIELDS, _ROW.unpack_from(self._map, worker * _ROW.size), strict=True))

    def rows(self) -> list[dict[str, float]]:
        return [self.row(i) for i in range(self.workers)]


def pipeline_totals(pipeline: Detector, events: EventPipeline) -> dict[str, float]:
    """What a worker publishes, read from its detection and event pipelines."""
    saturation = sum(table.get("refused", 0) + table.get("evicted", 0)
                     for table in pipeline.heuristics.stats().values())
    decode_counters = pipeline.decode_counters()
    tunnels = decapsulated(decode_counters)
    return {
        "tunnel_malformed": decode_counters.get("tunnel_malformed", 0),
        "tunnel_too_deep": decode_counters.get("tunnel_too_deep", 0),
        **{f"decap_{kind}": tunnels.get(kind, 0) for kind in TUNNEL_KINDS},
        "packets": pipeline.packets,
        "events_detected": events.emitted,
        "events_written": events.delivered,
        "events_lost": sum(sink.lost for sink in events.sinks),
        "log_write_errors": sum(sink.errors for sink in events.sinks),
        "state_saturation": saturation,
        "packet_errors": sum(pipeline.errors.values()),
    }


def render(rows: list[dict[str, float]], started: float, now: float | None = None) -> str:
    """Prometheus text exposition format (checked by `promtool check metrics` in the tests)."""
    now = time.time() if now is None else now
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            number = repr(float(value)) if value != int(value) else str(int(value))
            out.append(f"{name}{labels} {number}")

    def per_worker(field: str) -> list[tuple[str, float]]:
        return [(f'{{worker="{i}"}}', row[field]) for i, row in enumerate(rows)]

    alive = [(f'{{worker="{i}"}}', 1.0 if row["heartbeat"] and now - row["heartbeat"] < 10 else 0.0)
             for i, row in enumerate(rows)]
    family("maltrail_up", "gauge", "1 while every capture worker reports in.",
           [("", 1.0 if alive and all(value for _, value in alive) else 0.0)])
    family("maltrail_build_info", "gauge", "Sensor version.", [(f'{{version="{VERSION}"}}', 1.0)])
    family("maltrail_start_time_seconds", "gauge", "Sensor start, Unix time.", [("", round(started, 3))])
    family("maltrail_worker_alive", "gauge", "1 when the worker reported within 10 s.", alive)
    family("maltrail_packets_total", "counter", "Packets handed to detection.", per_worker("packets"))
    family("maltrail_capture_received_total", "counter", "Packets the kernel received for the capture handles.",
           per_worker("received"))
    family("maltrail_capture_dropped_total", "counter", "Packets dropped because the capture ring was full.",
           per_worker("dropped"))
    family("maltrail_capture_ifdropped_total", "counter", "Packets dropped by the interface or driver.",
           per_worker("ifdropped"))
    family("maltrail_events_detected_total", "counter", "Events produced by detection.",
           per_worker("events_detected"))
    family("maltrail_events_written_total", "counter", "Events delivered to the sinks after filtering and throttling.",
           per_worker("events_written"))
    family("maltrail_events_lost_total", "counter",
           "Events a sink gave up on (its spool full while writes failed, e.g. a full disk).",
           per_worker("events_lost"))
    family("maltrail_log_write_errors_total", "counter", "Failed writes to event sinks.",
           per_worker("log_write_errors"))
    family("maltrail_state_saturation_total", "counter",
           "Heuristic state-table insertions refused or evicted because a table was full.",
           per_worker("state_saturation"))
    family("maltrail_packet_errors_total", "counter", "Packets whose processing raised an error.",
           per_worker("packet_errors"))
    family("maltrail_trail_generation", "gauge", "Trail set generation (increments on every reload).",
           per_worker("trail_generation"))
    family("maltrail_trails", "gauge", "Trails in the loaded set.", per_worker("trail_count"))
    family("maltrail_trail_age_seconds", "gauge", "Age of the loaded trail file.",
           [(f'{{worker="{i}"}}', round(max(now - row["trail_loaded"], 0.0), 3) if row["trail_loaded"] else 0.0)
            for i, row in enumerate(rows)])
    family("maltrail_tunnel_decapsulated_total", "counter", "Tunnel headers opened, per kind (docs/decoding.md).",
           [(f'{{worker="{i}",kind="{kind}"}}', row[f"decap_{kind}"]) for i, row in enumerate(rows)
            for kind in TUNNEL_KINDS])
    family("maltrail_tunnel_skipped_total", "counter", "Tunnelled packets skipped: malformed or too deeply nested.",
           [(f'{{worker="{i}",reason="{reason}"}}', row[f"tunnel_{reason}"]) for i, row in enumerate(rows)
            for reason in ("malformed", "too_deep")])
    family("maltrail_trail_reload_rejected_total", "counter",
           "Trail reloads refused (empty set or below TRAIL_RELOAD_MIN_RATIO).", per_worker("reload_rejected"))
    return "\n".join(out) + "\n"


class MetricsServer:
    """GET /metrics (and / for humans) on STATS_ADDRESS, in a daemon thread."""

    def __init__(self, address: str, source: Callable[[], str]) -> None:
        host, port = parse_endpoint("STATS_ADDRESS", address)
        render_fn = source

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = render_fn().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        ThreadingHTTPServer.allow_reuse_address = True
        if ":" in host:
            import socket

            class V6Server(ThreadingHTTPServer):
                address_family = socket.AF_INET6

            self.httpd: ThreadingHTTPServer = V6Server((host, port), Handler)
        else:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
