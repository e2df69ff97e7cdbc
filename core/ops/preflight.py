"""Preflight (`sensor.py -T`) and the detection self-test (`sensor.py --self-test`).

Where it sits: run by sensor.py instead of capturing (and by maltrail-sensor.service as
ExecStartPre). The preflight checks what would stop a live start: configuration (an unknown key
fails it; its warning names the nearest known key), privileges, interfaces, the BPF filter (and
warns when it drops tunnelled mirrors the decoder would open), the trail set (a missing trails file
is a warning: the sensor builds it at its first start), the log directory (a warning when its
filesystem has little space left); it says which compiled accelerators (core/accel) are in use and
which optional packages (core/ops/deps.py) are missing (warnings, not failures); then prints the
effective configuration. The self-test builds the production sensor (core/assemble.py) over a small
built-in trail set, replays a crafted capture through it (one packet inside a VXLAN tunnel, as cloud
packet mirroring delivers it) and reports N/N detections and the tunnels it opened.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable

from core.accel import fallback_note
from core.accel import status as accel_status
from core.capture.live import CaptureError, CaptureSettings, can_capture, check_filter, check_interfaces
from core.config import Config
from core.decode.tunnel import UdpTunnel, probe_frames, udp_tunnels
from core.events.sinks import SPOOL_LINES
from core.ops.deps import OPTIONAL, optional_note
from core.trails.store import TrailStore

Say = Callable[[str], None]
StoreOpener = Callable[[str], TrailStore]


def preflight(config: Config, open_store: StoreOpener, say: Say, live: bool = True) -> int:
    """0 when every check passes, else 1. Each check prints one `[ok]`/`[FAIL]` line."""
    failures = 0

    def check(name: str, ok: bool, detail: str) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        say(f"[{'ok' if ok else 'FAIL'}] {name}: {detail}")

    unknown = config.unknown_keys
    check("configuration", not unknown, f"{config.source or '(built-in defaults)'} parsed"
          + (f" ({len(config.warnings)} warnings)" if config.warnings else "")
          + (f"; unknown keys: {', '.join(unknown)}" if unknown else ""))
    for warning in config.warnings:
        say(f"       warning: {warning}")
    settings = CaptureSettings.from_config(config)
    if live:
        privileged = can_capture() or config.DISABLE_CHECK_SUDO
        check("privileges", privileged, "root or CAP_NET_RAW present" if can_capture() else
              ("DISABLE_CHECK_SUDO set" if privileged else "needs root or CAP_NET_RAW (and CAP_NET_ADMIN)"))
        try:
            check_interfaces(settings.interfaces)
            check("interface", True, ", ".join(settings.interfaces))
        except CaptureError as ex:
            check("interface", False, str(ex))
        try:
            check_filter(settings.bpf, snaplen=settings.snaplen)
            check("capture filter", True, "compiles" if settings.bpf else "none (all packets)")
            dropped = tunnels_dropped(settings.bpf, settings.snaplen, udp_tunnels(config))
            if dropped:
                say(f"[warn] tunnels: the capture filter drops {', '.join(dropped)} mirrors (docs/decoding.md)")
        except CaptureError as ex:
            check("capture filter", False, str(ex))
    path = config.TRAILS_FILE
    if not os.path.exists(path):  # not a failure: the sensor builds it at its first start
        from core.update.firstrun import update_command

        say(f"[warn] trails: {path} does not exist yet; the sensor builds it when it starts "
            f"(or now: {update_command(config)})")
    else:
        check_trails(config, open_store, check)
        say(trail_sanity_note(path))
    note = fallback_note()
    say(f"[warn] accelerators: {note}" if note else f"[ok] accelerators: all compiled ({', '.join(accel_status())})")
    missing_optional = optional_note()
    say(f"[warn] optional packages: {missing_optional}" if missing_optional else
        f"[ok] optional packages: {', '.join(package.name for package in OPTIONAL)} installed")
    if config.DISABLE_LOCAL_LOG_STORAGE:
        check("log directory", True, "local log storage disabled")
    else:
        ok, detail = _writable(config.LOG_DIR)
        check("log directory", ok, detail)
        low = ok and _low_space_note(config.LOG_DIR)
        if low:
            say(f"[warn] log directory: {low}")
    if failures == 0:
        say("effective configuration:")
        for key, value in config.effective():
            if value is not None:
                say(f"  {key} {value}")
    say(f"preflight: {'passed' if failures == 0 else f'{failures} check(s) failed'}")
    return 0 if failures == 0 else 1


def check_trails(config: Config, open_store: StoreOpener, check: Callable[[str, bool, str], None]) -> None:
    """The trails check of an existing TRAILS_FILE: it opens and holds trails (or ALLOW_EMPTY_TRAILS)."""
    path = config.TRAILS_FILE
    try:
        count = len(open_store(path))
        ok = count > 0 or bool(config.ALLOW_EMPTY_TRAILS)
        check("trails", ok, f"{count:,} in {path}" + ("" if count else " (empty; ALLOW_EMPTY_TRAILS "
                                                              + ("set)" if ok else "not set)")))
    except Exception as ex:  # isolation point: any store failure is one failed check
        check("trails", False, f"{path}: {ex}")


def tunnels_dropped(bpf: str | None, snaplen: int, tunnels: dict[int, UdpTunnel]) -> list[str]:
    """The encapsulations (core/decode/tunnel.py probe frames) an Ethernet capture filter drops."""
    if not bpf:
        return []
    import pcapy

    program = pcapy.compile(1, snaplen, bpf, 1, 0)
    return [name for name, frame in probe_frames(tunnels).items() if not program.filter(frame)]
def trail_sanity_note(trails_file: str) -> str:
    """The last update's two sanity counts (never-match rows, canary refusals) from its health
    report beside the trails file (core/update/orchestrate.py); a note, never a failure."""
    from core.update.canary import sanity_lines
    from core.update.publish import health_path

    try:
        with open(health_path(trails_file), encoding="utf-8") as handle:
            report = json.load(handle)
        never, canary = report.get("never_match"), report.get("canary")
        if not isinstance(never, dict) or not isinstance(canary, dict):
            raise ValueError("no sanity counts")
        lines = sanity_lines(never, canary, limit=5)
    except (OSError, ValueError, TypeError, AttributeError) as ex:
        return f"[warn] trail sanity: no report of the last update ({type(ex).__name__})"
    return "[ok] trail sanity (last update): " + "\n       ".join(lines)


def _writable(folder: str) -> tuple[bool, str]:
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".preflight-"):
            pass
    except OSError as ex:
        return False, f"{folder}: {ex.strerror or ex}"
    return True, f"{folder} writable"


LOW_SPACE = 64 << 20


def _low_space_note(folder: str) -> str | None:
    """A warning when the log directory's filesystem is (nearly) full: events would then be held
    in memory (core/events/sinks.py) and, once that spool is full, lost."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    free = stats.f_bavail * stats.f_frsize
    if free >= LOW_SPACE:
        return None
    return (f"only {free >> 10:,} kB free on {folder}; when it is full, events are held in memory up to "
            f"{SPOOL_LINES:,} and then lost (counted in the summary and maltrail_events_lost_total)")


# --- detection self-test -------------------------------------------------------------------------

SELFTEST_TRAILS = (
    "selftest-malware.com,selftest (malware),(static)\n"
    "203.0.113.250,selftest (malware),(static)\n"
    "203.0.113.251,selftest (malware),(static)\n"
    "/selftest-dropper.php,selftest (malware),(static)\n"
)


def selftest_packets() -> list[tuple[str, bytes]]:
    """(what must be detected, Ethernet frame)."""
    import dpkt

    def frame(src: str, dst: str, l4: object, proto: int) -> bytes:
        import socket

        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64, data=l4)
        ip.len = len(bytes(ip))
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip))

    query = bytes(dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="www.selftest-malware.com", type=1, cls=1)]))
    http = b"GET /selftest-dropper.php HTTP/1.1\r\nHost: files.example.org\r\nUser-Agent: x\r\n\r\n"
    out = [
        ("selftest-malware.com", frame("10.0.0.10", "10.0.0.53", dpkt.udp.UDP(sport=40000, dport=53, ulen=8 + len(query),
                                                                             data=query), 17)),
        ("203.0.113.250", frame("192.0.2.10", "203.0.113.250", dpkt.tcp.TCP(sport=40001, dport=443, flags=0x02), 6)),
        ("/selftest-dropper.php", frame("192.0.2.10", "198.51.100.80",
                                        dpkt.tcp.TCP(sport=40002, dport=80, flags=0x18, data=http), 6)),
    ]
    mirrored = frame("192.0.2.11", "203.0.113.251", dpkt.tcp.TCP(sport=40003, dport=443, flags=0x02), 6)
    vxlan = b"\x08\x00\x00\x00\x00\x00\x2a\x00" + mirrored  # VNI 42, the frame inside
    out.append(("203.0.113.251", frame("198.18.0.1", "198.18.0.2", dpkt.udp.UDP(
        sport=49152, dport=4789, ulen=8 + len(vxlan), data=vxlan), 17)))
    return out


def selftest(config: Config, open_store: StoreOpener, say: Say) -> int:
    """Replay the crafted capture through the real sensor; 0 when N/N are detected.
    Raises AssemblyError when the configuration cannot build one."""
    from core.assemble import build_sensor
    from core.decode.packet import decapsulated
    from core.events.sinks import MemorySink

    with tempfile.TemporaryDirectory(prefix="maltrail-selftest-") as folder:
        trails = os.path.join(folder, "trails.csv")
        with open(trails, "w", encoding="utf-8") as handle:
            handle.write(SELFTEST_TRAILS)
        store = open_store(trails)
        local = config.replace(TRAILS_FILE=trails, LOG_DIR=folder, DISABLE_LOCAL_LOG_STORAGE=True,
                               LOG_SERVER=None, SYSLOG_SERVER=None, LOGSTASH_SERVER=None,
                               EVENT_THROTTLE_MODE="off", PLUGINS=None)
        sink = MemorySink()
        sensor = build_sensor(local, store, sinks=[sink], plugins=())
        cases = selftest_packets()
        for index, (_what, packet) in enumerate(cases):
            sensor.process(1, 1_700_000_000 + index, 0, packet)
        sensor.close()
        tunnels = decapsulated(sensor.detector.decode_counters())
    found = 0
    for what, _packet in cases:
        hit = any(what in line for line in sink.lines)
        found += hit
        say(f"[{'ok' if hit else 'MISS'}] {what}")
    say(f"self-test: {found}/{len(cases)} detections; tunnels opened: "
        + (", ".join(f"{kind} {count}" for kind, count in sorted(tunnels.items())) or "none"))
    return 0 if found == len(cases) else 1
