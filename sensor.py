#!/usr/bin/env python3
"""Sensor CLI: arguments → Config → trail store → detection pipeline → capture loop.

Offline: `python3 sensor.py --offline -r a.pcap [b.pcap ...]` replays captures with the packets'
own timestamps (several files share one state, in order). Live: `sudo python3 sensor.py` captures
on MONITOR_INTERFACE. Exit status: 0 success, 1 runtime failure (capture, trails, log dir),
2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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
    """The trail store for TRAILS_FILE; refuses an empty or missing set unless ALLOW_EMPTY_TRAILS."""
    from core.trails.store import TrailStore, TrailStoreError

    path = config.TRAILS_FILE
    if not os.path.exists(path) and config.ALLOW_EMPTY_TRAILS:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    try:
        store = TrailStore.open(path)
    except TrailStoreError as ex:
        raise SensorError(f"trails: {ex}") from None
    if len(store) == 0 and not config.ALLOW_EMPTY_TRAILS:
        raise SensorError(f"trails: no trails in {path} (build them with core/update.py, "
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


def build_events(config: Config, args: argparse.Namespace, whitelist: Any) -> Any:
    """The event pipeline: filters and stages (whitelist, ignore, condense, throttle), sinks, plugins."""
    from core.events.pipeline import EventPipeline
    from core.events.sinks import ConsoleSink, LogFileSink, Sink, UdpSink

    sinks: list[Sink] = []
    if not config.DISABLE_LOCAL_LOG_STORAGE:
        sinks.append(LogFileSink(config.LOG_DIR))
    if config.LOG_SERVER:
        signer = None
        if config.UDP_KEY:
            from core.events.signing import Signer

            signer = Signer(config.UDP_KEY)
        sinks.append(UdpSink(config.LOG_SERVER, signer=signer))
    if args.console or (config.DISABLE_LOCAL_LOG_STORAGE and not config.LOG_SERVER and not config.SYSLOG_SERVER):
        sinks.append(ConsoleSink())
    from core.events.filters import build_event_stages
    from core.events.plugins import PluginError, load_plugins, plugin_names
    from core.events.remote import build_remote_sinks

    sinks.extend(build_remote_sinks(config))
    try:
        filters, stages = build_event_stages(config, whitelist)
        names = plugin_names(getattr(args, "plugins", None), config.PLUGINS)
        plugins = load_plugins(names) if names else None
    except (ConfigError, PluginError) as ex:
        raise SensorError(str(ex)) from None
    return EventPipeline(sinks, sensor_name=config.SENSOR_NAME or "-", filters=filters, stages=stages,
                         plugins=plugins)


def build_pipeline(config: Config, store: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """(detection pipeline, event pipeline) for one capture stream."""
    from core.detect import Pipeline
    from core.heuristics.engine import build_heuristics
    from core.trails.whitelist import Whitelist

    try:
        whitelist = Whitelist.load(config)
    except OSError as ex:
        raise SensorError(f"USER_WHITELIST {ex.filename}: {ex.strerror}") from None
    events = build_events(config, args, whitelist)
    try:
        heuristics = build_heuristics(config, store, whitelist, events)
    except (ConfigError, OSError) as ex:
        raise SensorError(str(ex)) from None
    pipeline = Pipeline(config, store, events, heuristics=heuristics, whitelist=whitelist,
                        plugins_wanted=getattr(events, "plugins", None) is not None)
    return pipeline, events


def run_offline(config: Config, args: argparse.Namespace, pipeline: Any) -> int:
    from core.capture.offline import CaptureError, OfflineSource

    started = time.perf_counter()
    cpu_started = time.process_time()
    try:
        source = OfflineSource(args.pcap_file, snaplen=config.get("CAPTURE_SNAPLEN", 2000))
        try:
            for linktype, buf, meta in source:
                pipeline.process_batch(linktype, buf, meta)
        finally:
            source.close()
    except CaptureError as ex:
        raise SensorError(str(ex)) from None
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    packets = pipeline.packets
    rate = packets / elapsed if elapsed > 0 else 0.0
    info(args, f"[i] replayed {packets:,} packets in {elapsed:.3f} s ({rate:,.0f} packets/s, "
               f"{(cpu / packets * 1e6) if packets else 0:.2f} µs CPU/packet)")
    return 0


def run_live(config: Config, args: argparse.Namespace, store: Any) -> int:
    """Live capture on MONITOR_INTERFACE with CAPTURE_WORKERS workers (core/capture/workers.py)."""
    from core.capture import workers
    from core.trails.store import TrailStore

    def make_pipeline(cfg: Config, trails: Any) -> tuple[Any, Any]:
        return build_pipeline(cfg, trails, args)

    return workers.run_live(config, store, TrailStore.open, make_pipeline, lambda line: info(args, line),
                            offline=args.offline)


def run_checks(config: Config, args: argparse.Namespace) -> int:
    """-T (preflight) and --self-test (core/ops/preflight.py); exit 0 when everything passes."""
    from core.ops.preflight import preflight, selftest
    from core.trails.store import TrailStore

    def say(line: str) -> None:
        print(line, flush=True)

    def make_pipeline(cfg: Config, trails: Any) -> tuple[Any, Any]:
        return build_pipeline(cfg, trails, args)

    status = 0
    try:
        if args.test_config:
            status |= preflight(config, TrailStore.open, say, live=not args.pcap_file)
        if args.self_test:
            status |= selftest(config, TrailStore.open, make_pipeline, say)
    except SensorError as ex:
        print(f"sensor: {ex}", file=sys.stderr)
        return 1
    return status


def report(args: argparse.Namespace, pipeline: Any, events: Any) -> None:
    from core.decode.packet import decapsulated, skipped

    counters = pipeline.decode_counters()
    skips = ", ".join(f"{k} {v:,}" for k, v in sorted(skipped(counters).items()) if v)
    tunnels = ", ".join(f"{k} {v:,}" for k, v in sorted(decapsulated(counters).items()) if v)
    info(args, f"[i] events: {events.delivered:,} written ({events.emitted:,} detected)"
               + (f"; skipped frames: {skips}" if skips else "")
               + (f"; tunnels opened: {tunnels}" if tunnels else ""))
    if pipeline.errors:
        info(args, "[!] packet processing errors: " + ", ".join(f"{k} {v}" for k, v in pipeline.errors.items()))


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
    if args.test_config or args.self_test:
        return run_checks(config, args)
    try:
        check_log_dir(config)
        store = open_trails(config, args)
        pipeline, events = build_pipeline(config, store, args)
        try:
            if args.pcap_file:
                status = run_offline(config, args, pipeline)
            else:
                status = run_live(config, args, store)
        finally:
            events.close()
        if args.pcap_file:
            report(args, pipeline, events)
        return status
    except SensorError as ex:
        print(f"sensor: {ex}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
