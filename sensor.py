#!/usr/bin/env python3
"""Sensor CLI: arguments → Config → trail store → detection pipeline → capture loop.

Offline: `python3 sensor.py --offline -r a.pcap [b.pcap ...]` replays captures with the packets'
own timestamps, or the wall clock with OFFLINE_TIMESTAMPS wallclock (several files share one state,
in order). Live: `sudo python3 sensor.py` captures on MONITOR_INTERFACE. Either way the first start
without a trails file builds it before anything else (core/update/firstrun.py), and an interpreter
without the packages re-runs this under the project's .venv (core/ops/deps.py). Exit status: 0
success, 1 runtime failure (capture, trails, log dir), 2 bad configuration or arguments, or missing
packages.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from core.ops.deps import optional_note, require  # noqa: E402 - standard library only

require("sensor")  # re-runs under .venv, or exits 2 naming the missing packages (core/ops/deps.py)

from core.accel import fallback_note  # noqa: E402
from core.config import VERSION, Config, ConfigError, fail, load_config  # noqa: E402


class SensorError(Exception):
    """A start-up or runtime failure with a one-line explanation (exit status 1)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sensor.py", description="Maltrail sensor")
    parser.add_argument("-c", dest="config_file", metavar="FILE", help="configuration file (default: maltrail.conf)")
    parser.add_argument("-r", "-i", dest="pcap_file", metavar="FILE", nargs="+",
                        help="replay capture file(s) offline, in order, sharing state")
    parser.add_argument("-p", dest="plugins", metavar="PLUGINS", help="plugins to load (comma separated)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no informational output")
    parser.add_argument("--console", action="store_true", help="also print events to stderr")
    parser.add_argument("--offline", action="store_true", help="never touch the network (no trail updates)")
    parser.add_argument("--debug", action="store_true", help="show debugging output")
    parser.add_argument("-T", "--test-config", action="store_true",
                        help="preflight: check configuration, privileges, interface, filter, trails, log dir")
    parser.add_argument("--self-test", action="store_true",
                        help="replay a built-in crafted capture through the detection pipeline")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    args = parser.parse_args(argv)
    if args.pcap_file:
        files: list[str] = []
        for item in args.pcap_file:
            files.extend(part for part in item.split(",") if part)
        args.pcap_file = files
    return args


def info(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def open_trails(config: Config, args: argparse.Namespace) -> Any:
    """The trail store for TRAILS_FILE. A missing file is built first (the first start, with
    --offline from the bundled lists only; core/update/firstrun.py), or created empty under
    ALLOW_EMPTY_TRAILS; an empty set is refused unless ALLOW_EMPTY_TRAILS."""
    from core.trails.store import TrailStore, TrailStoreError
    from core.update.firstrun import FirstRunError, build_missing_trails, update_command

    path = config.TRAILS_FILE
    if not os.path.exists(path) and config.ALLOW_EMPTY_TRAILS:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    try:
        build_missing_trails(config, offline=args.offline, say=lambda line: info(args, f"[i] trails: {line}"))
    except FirstRunError as ex:
        raise SensorError(f"trails: {ex}") from None
    try:
        store = TrailStore.open(path)
    except TrailStoreError as ex:
        raise SensorError(f"trails: {ex}") from None
    if len(store) == 0 and not config.ALLOW_EMPTY_TRAILS:
        raise SensorError(f"trails: no trails in {path} (build them with: {update_command(config)}; "
                          "or set ALLOW_EMPTY_TRAILS true)")
    info(args, f"[i] {len(store):,} trails loaded from {path}")
    return store


def check_log_dir(config: Config) -> None:
    if config.DISABLE_LOCAL_LOG_STORAGE:
        return
    log_dir = config.LOG_DIR
    try:
        os.makedirs(log_dir, exist_ok=True)
    except OSError as ex:
        raise SensorError(f"LOG_DIR {log_dir}: cannot create ({ex.strerror})") from None
    if not os.access(log_dir, os.W_OK | os.X_OK):
        raise SensorError(f"LOG_DIR {log_dir}: not writable")


def make_sensor(config: Config, store: Any, args: argparse.Namespace) -> Any:
    """The sensor for one capture stream (core/assemble.py), with the CLI's console and plugins."""
    from core.assemble import AssemblyError, build_sensor, configured_sinks
    from core.events.plugins import plugin_names

    try:
        sensor = build_sensor(config, store, sinks=configured_sinks(config, console=args.console),
                              plugins=plugin_names(args.plugins, config.PLUGINS))
    except AssemblyError as ex:
        raise SensorError(str(ex)) from None
    settle_collector()
    return sensor


def settle_collector() -> None:
    """Tune this process's cyclic garbage collector once its sensor is built. A packet's objects
    are freed by reference counting (they hold no cycles), while the heuristic windows and caches
    keep tens of thousands of long-lived entries; with the default thresholds (a young
    collection every 700 surviving allocations, the older generations every 10 of those) the
    collector walked those tables over and over (36 ms of a 200k-packet replay of the bench's
    mixed traffic, 7 ms after this; docs/performance.md). The start-up objects are moved out of
    its sight (`gc.freeze`) and young collections run every 50,000 surviving allocations."""
    import gc

    gc.freeze()
    gc.set_threshold(50_000)


def run_offline(config: Config, args: argparse.Namespace, sensor: Any) -> int:
    from core.capture.offline import CaptureError, OfflineSource

    started = time.perf_counter()
    cpu_started = time.process_time()
    try:
        source = OfflineSource(args.pcap_file, snaplen=config.CAPTURE_SNAPLEN,
                               timestamps=config.OFFLINE_TIMESTAMPS)
        try:
            for linktype, buf, meta in source:
                sensor.process_batch(linktype, buf, meta)
        finally:
            source.close()
    except CaptureError as ex:
        raise SensorError(str(ex)) from None
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    packets = sensor.detector.packets
    rate = packets / elapsed if elapsed > 0 else 0.0
    info(args, f"[i] replayed {packets:,} packets in {elapsed:.3f} s ({rate:,.0f} packets/s, "
               f"{(cpu / packets * 1e6) if packets else 0:.2f} µs CPU/packet)")
    return 0


def run_live(config: Config, args: argparse.Namespace, store: Any) -> int:
    """Live capture on MONITOR_INTERFACE with CAPTURE_WORKERS workers (core/capture/workers.py)."""
    from core.capture import workers
    from core.trails.store import TrailStore

    def make_worker_sensor(cfg: Config, trails: Any) -> Any:
        return make_sensor(cfg, trails, args)

    return workers.run_live(config, store, TrailStore.open, make_worker_sensor, lambda line: info(args, line),
                            offline=args.offline)


def run_checks(config: Config, args: argparse.Namespace) -> int:
    """-T (preflight) and --self-test (core/ops/preflight.py); exit 0 when everything passes."""
    from core.assemble import AssemblyError
    from core.ops.preflight import preflight, selftest
    from core.trails.store import TrailStore

    def say(line: str) -> None:
        print(line, flush=True)

    status = 0
    try:
        if args.test_config:
            status |= preflight(config, TrailStore.open, say, live=not args.pcap_file)
        if args.self_test:
            status |= selftest(config, TrailStore.open, say)
    except AssemblyError as ex:
        print(f"sensor: {ex}", file=sys.stderr)
        return 1
    return status


def report(args: argparse.Namespace, sensor: Any) -> None:
    from core.decode.packet import decapsulated, skipped

    detector, events = sensor.detector, sensor.events
    counters = detector.decode_counters()
    skips = ", ".join(f"{k} {v:,}" for k, v in sorted(skipped(counters).items()) if v)
    tunnels = ", ".join(f"{k} {v:,}" for k, v in sorted(decapsulated(counters).items()) if v)
    info(args, f"[i] events: {events.delivered:,} delivered to the sinks ({events.emitted:,} detected)"
               + (f"; skipped frames: {skips}" if skips else "")
               + (f"; tunnels opened: {tunnels}" if tunnels else ""))
    for sink in events.sinks:
        if sink.lost or sink.errors:
            info(args, f"[!] {sink.name}: {sink.lost:,} events lost, {sink.written:,} written "
                       f"({sink.errors:,} failed writes)")
    if detector.errors:
        info(args, "[!] packet processing errors: " + ", ".join(f"{k} {v}" for k, v in detector.errors.items()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overrides = {"SHOW_DEBUG": "true"} if args.debug else None
        config = load_config(args.config_file, overrides=overrides)
    except ConfigError as ex:
        return fail(ex)
    for warning in config.warnings:
        info(args, f"[!] {warning}")
    note = fallback_note()
    if note and not (args.test_config or args.self_test):  # -T reports it as a check line
        info(args, f"[!] {note}")
    missing_optional = optional_note()
    if missing_optional and not (args.test_config or args.self_test):  # -T: a check line too
        info(args, f"[!] {missing_optional}")
    if args.test_config or args.self_test:
        return run_checks(config, args)
    try:
        check_log_dir(config)
        store = open_trails(config, args)
        sensor = make_sensor(config, store, args)
        try:
            if args.pcap_file:
                status = run_offline(config, args, sensor)
            else:
                status = run_live(config, args, store)
        finally:
            sensor.close()
        if args.pcap_file:
            report(args, sensor)
        return status
    except SensorError as ex:
        print(f"sensor: {ex}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
