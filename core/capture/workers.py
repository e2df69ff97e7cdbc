"""Live sensing with one or more capture workers, and the supervisor that runs them.

Where it sits: sensor.py's live mode. `run_live()` starts CAPTURE_WORKERS workers; each opens its
own LiveSource (core/capture/live.py) and runs its own `Sensor` (core/assemble.py, built by the
caller's factory) over the trail store the supervisor opened before forking (the store maps its
index file, so every worker shares the same physical pages; nothing is copied). With N > 1 the
capture handles of one interface form a kernel PACKET_FANOUT group routed by core/capture/fanout.py
(by originating host), so per-host heuristic state stays complete. With N == 1 the worker runs in the supervisor's own process.

The supervisor:
- forwards SIGTERM/SIGINT (workers flush their events and exit; anything still running after 2 s
  is killed) and SIGHUP (workers reload trails through core/ops/reload.py);
- every UPDATE_PERIOD runs the trail update (unless DISABLE_TRAIL_UPDATES or --offline), then
  signals a reload;
- serves Prometheus metrics on STATS_ADDRESS (core/ops/metrics.py) and prints capture statistics
  every METRICS_INTERVAL;
- exits non-zero as soon as a worker dies.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.assemble import Sensor, SensorFactory
from core.capture import fanout
from core.capture.live import CaptureError, CaptureSettings, LiveSource
from core.config import Config
from core.decode.tunnel import udp_tunnels
from core.events.dayfile import prune_day_files
from core.ops.metrics import MetricsServer, SharedCounters, pipeline_totals, render
from core.ops.preflight import StoreOpener
from core.ops.reload import TrailReloader, run_update, swap_store
from core.trails.store import TrailStore

PUBLISH_EVERY = 0.5
STOP_GRACE = 2.0

Say = Callable[[str], None]


def report_error(line: str) -> None:
    """Errors reach stderr even with --quiet (informational lines go through `say`)."""
    print(line, file=sys.stderr, flush=True)


def worker_count(config: Config) -> int:
    """CAPTURE_WORKERS, or the original's CAPTURE_FANOUT (true/auto = CPUs, or N) when workers is 1."""
    count = config.CAPTURE_WORKERS
    legacy = str(config.CAPTURE_FANOUT or "").strip().lower()
    if count == 1 and legacy and legacy not in ("false", "0", "off", "no"):
        if legacy in ("true", "auto", "yes", "on"):
            count = os.cpu_count() or 1
        elif legacy.isdigit():
            count = max(1, int(legacy))
    return min(count, 64)


def fanout_group(config: Config, interface_index: int, supervisor_pid: int) -> int:
    """CAPTURE_FANOUT_GROUP (+ interface index), else derived from the supervisor's pid."""
    base = config.CAPTURE_FANOUT_GROUP
    if base is None:
        base = supervisor_pid
    return (int(base) + interface_index) & 0xFFFF


@dataclass
class WorkerContext:
    index: int
    count: int
    config: Config
    settings: CaptureSettings
    reloader: TrailReloader
    counters: SharedCounters
    make_sensor: SensorFactory
    say: Say
    supervisor_pid: int


class Worker:
    """One capture loop: LiveSource → Sensor, with signals, reloads and published counters."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.source: LiveSource | None = None
        self.stop_requested = False
        self.reload_requested = False

    def request_stop(self, *_: object) -> None:
        self.stop_requested = True
        if self.source is not None:
            self.source.stop()

    def request_reload(self, *_: object) -> None:
        self.reload_requested = True

    def _join_group(self, interface_index: int, name: str, handle: Any) -> None:
        ctx = self.ctx
        if ctx.count <= 1:
            return
        group = fanout_group(ctx.config, interface_index, ctx.supervisor_pid)
        mode = ctx.config.CAPTURE_FANOUT_MODE
        defrag = bool(ctx.config.CAPTURE_FANOUT_DEFRAG)
        try:
            if mode == "hash":
                fanout.join_cbpf(handle.getfd(), group, defrag, udp_tunnels(ctx.config))
            else:
                fanout.join_kernel_mode(handle.getfd(), group, mode, defrag)
        except OSError as ex:
            raise CaptureError(f"cannot join fanout group {group} on {name}: {ex.strerror or ex} "
                               "(kernel without PACKET_FANOUT_CBPF? set CAPTURE_WORKERS 1)") from None

    def run(self) -> int:
        ctx = self.ctx
        pin_cpu(ctx)
        sensor = ctx.make_sensor(ctx.config, ctx.reloader.store)
        try:
            self.source = LiveSource(ctx.settings, on_open=self._join_group)
        except CaptureError as ex:
            sensor.close()
            report_error(f"sensor: {ex}")
            return 1
        source = self.source
        if ctx.count == 1:  # said once the interfaces are open, so a failed open is the only line
            ctx.say(f"[i] capturing on {', '.join(ctx.settings.interfaces)} with 1 worker")
        if self.stop_requested:
            source.stop()
        last_publish = 0.0
        self._publish(sensor, source)
        try:
            for linktype, buf, meta in source:
                if meta:
                    sensor.process_batch(linktype, buf, meta)
                    now = time.monotonic()
                    if now - last_publish < PUBLISH_EVERY:
                        continue
                else:
                    now = time.monotonic()
                    sensor.events.tick(int(time.time()))  # idle link: time-driven flushes still happen
                last_publish = now
                self._publish(sensor, source)
                if self.reload_requested:
                    self.reload_requested = False
                    swapped, message = ctx.reloader.reload()
                    if swapped:
                        swap_store(sensor.detector, ctx.reloader.store)
                    ctx.say(("[i] " if swapped else "[!] ") + (f"worker {ctx.index}: " if ctx.count > 1 else "")
                            + message)
        except CaptureError as ex:
            report_error(f"sensor: {ex}")
            return 1
        finally:
            sensor.close()  # flushes condensed/throttled events
            self._publish(sensor, source)
            source.close()
        return 0

    def _publish(self, sensor: Sensor, source: LiveSource) -> None:
        ctx = self.ctx
        stats = source.stats()
        ctx.counters.publish(
            ctx.index, heartbeat=time.time(), pid=os.getpid(), received=stats["received"],
            dropped=stats["dropped"], ifdropped=stats["ifdropped"],
            trail_generation=ctx.reloader.generation, trail_count=len(ctx.reloader.store),
            trail_loaded=ctx.reloader.loaded, reload_rejected=ctx.reloader.rejected,
            **pipeline_totals(sensor.detector, sensor.events))


def pin_cpu(ctx: WorkerContext) -> None:
    if ctx.config.DISABLE_CPU_AFFINITY or ctx.count <= 1 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[ctx.index % len(cpus)]})


class Supervisor:
    """Starts the workers and watches them; see the module docstring."""

    def __init__(self, config: Config, store: TrailStore, open_store: StoreOpener,
                 make_sensor: SensorFactory, say: Say, offline: bool = False) -> None:
        self.config = config
        self.count = worker_count(config)
        self.settings = CaptureSettings.from_config(config)
        self.reloader = TrailReloader(config, store, open_store)
        self.counters = SharedCounters(self.count)
        self.make_sensor = make_sensor
        self.say = say
        self.offline = offline
        self.started = time.time()
        self.pid = os.getpid()  # the fanout group ids derive from it; workers must agree
        self.children: dict[int, int] = {}  # pid -> worker index
        self.stopping = False
        self.inline: Worker | None = None
        self._reload_pending = threading.Event()
        self.metrics: MetricsServer | None = None

    def context(self, index: int) -> WorkerContext:
        return WorkerContext(index, self.count, self.config, self.settings, self.reloader, self.counters,
                             self.make_sensor, self.say, self.pid)

    def metrics_text(self) -> str:
        return render(self.counters.rows(), self.started)

    def run(self) -> int:
        try:
            if self.count == 1:
                return self._run_inline()
            return self._run_forked()
        finally:
            self.stopping = True
            if self.metrics is not None:
                self.metrics.close()

    def _start_services(self) -> bool:
        """Metrics server and housekeeping thread (started after forking: workers have no threads)."""
        if self.config.STATS_ADDRESS:
            try:
                self.metrics = MetricsServer(self.config.STATS_ADDRESS, self.metrics_text).start()
            except OSError as ex:
                report_error(f"sensor: STATS_ADDRESS {self.config.STATS_ADDRESS}: {ex.strerror or ex}")
                return False
        threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True).start()
        return True

    # --- one worker, in this process ---------------------------------------------------------------

    def _run_inline(self) -> int:
        worker = self.inline = Worker(self.context(0))
        signal.signal(signal.SIGTERM, worker.request_stop)
        signal.signal(signal.SIGINT, worker.request_stop)
        signal.signal(signal.SIGHUP, worker.request_reload)
        if not self._start_services():
            return 1
        status = worker.run()
        self.stopping = True
        return status

    # --- several workers, forked -------------------------------------------------------------------

    def _run_forked(self) -> int:
        # Signals arriving before the handlers are replaced must not kill the supervisor half-way.
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        for index in range(self.count):
            pid = os.fork()
            if pid == 0:
                os._exit(self._child(index))
            self.children[pid] = index
        if not self._start_services():
            self._on_stop()
            self._watch()
            return 1
        self.say(f"[i] capturing on {', '.join(self.settings.interfaces)} with {self.count} workers "
                 f"(fanout by originating host)" if self.config.CAPTURE_FANOUT_MODE == "hash"
                 else f"[i] capturing with {self.count} workers (kernel fanout mode "
                      f"{self.config.CAPTURE_FANOUT_MODE})")
        return self._watch()

    def _child(self, index: int) -> int:
        status = 1
        try:
            worker = Worker(self.context(index))
            signal.signal(signal.SIGTERM, worker.request_stop)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides (Ctrl-C reaches all)
            signal.signal(signal.SIGHUP, worker.request_reload)
            status = worker.run()
        except BaseException as ex:  # isolation point: one worker process
            report_error(f"sensor: worker {index} failed: {type(ex).__name__}: {ex}")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return status

    def _on_stop(self, *_: object) -> None:
        if not self.stopping:
            self.stopping = True
            self._signal_children(signal.SIGTERM)

    def _on_hup(self, *_: object) -> None:
        self._signal_children(signal.SIGHUP)

    def _signal_children(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _watch(self) -> int:
        failed = 0
        deadline: float | None = None
        while self.children:
            if self.stopping and deadline is None:
                deadline = time.monotonic() + STOP_GRACE
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    self._signal_children(signal.SIGKILL)
                    deadline = time.monotonic() + 5
                if self._reload_pending.is_set():
                    self._reload_pending.clear()
                    self._signal_children(signal.SIGHUP)
                time.sleep(0.05)
                continue
            index = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if not self.stopping:
                how = f"signal {-code}" if code < 0 else f"exit status {code}"
                report_error(f"sensor: capture worker {index} (pid {pid}) died ({how}); stopping")
                failed = 1
                self.stopping = True
                self._signal_children(signal.SIGTERM)
            elif code != 0:
                failed = 1
        return failed

    # --- periodic work -----------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        period = self.config.UPDATE_PERIOD
        interval = self.config.METRICS_INTERVAL
        updates = not (self.config.DISABLE_TRAIL_UPDATES or self.offline)
        next_update = time.monotonic() + period
        next_stats = time.monotonic() + interval
        prunes = self.config.LOG_RETENTION_DAYS > 0 and not self.config.DISABLE_LOCAL_LOG_STORAGE
        next_prune = time.monotonic()
        while not self.stopping:
            time.sleep(0.5)
            now = time.monotonic()
            if prunes and now >= next_prune:
                next_prune = now + 3600
                for path in prune_day_files(self.config.LOG_DIR, self.config.LOG_RETENTION_DAYS):
                    self.say(f"[i] LOG_RETENTION_DAYS {self.config.LOG_RETENTION_DAYS}: removed {path}")
            if now >= next_stats:
                next_stats = now + interval
                self.say(capture_summary(self.counters.rows()))
            if updates and now >= next_update:
                next_update = now + period
                ok, message = run_update(self.config)
                self.say(("[i] " if ok else "[!] ") + message)
                if ok:
                    self.request_reload()

    def request_reload(self) -> None:
        if self.inline is not None:
            self.inline.request_reload()
        else:
            self._reload_pending.set()


def capture_summary(rows: list[dict[str, float]]) -> str:
    total = {key: int(sum(row[key] for row in rows)) for key in ("received", "dropped", "ifdropped",
                                                                   "packets", "events_written", "events_lost",
                                                                   "log_write_errors")}
    lost = (f" ({total['events_lost']:,} lost to write errors, {total['log_write_errors']:,} failed writes)"
            if total["events_lost"] or total["log_write_errors"] else "")
    return (f"[i] capture: {total['received']:,} received, {total['dropped']:,} dropped by kernel, "
            f"{total['ifdropped']:,} dropped by interface; {total['packets']:,} processed, "
            f"{total['events_written']:,} events{lost}")


def run_live(config: Config, store: TrailStore, open_store: StoreOpener, make_sensor: SensorFactory,
             say: Say, offline: bool = False) -> int:
    """Entry point for sensor.py's live mode; returns the exit status. `make_sensor` builds each
    worker's sensor (sensor.py's factory over core/assemble.build_sensor)."""
    supervisor = Supervisor(config, store, open_store, make_sensor, say, offline=offline)
    status = supervisor.run()
    say(capture_summary(supervisor.counters.rows()))
    return status
