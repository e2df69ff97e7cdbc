"""A full disk under LOG_DIR: no torn or glued lines, loss counted and reported, held events
written once space returns. A real small filesystem (tmpfs mounted for the test; skipped with the
reason when mounting is not possible), the real server.py and the sensor's log file sink."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import sys
import time

import pytest

from core.events.event import Event, format_line
from core.events.sinks import LogFileSink
from core.server.intake import Intake, run_in_thread
from tests.kit.server import Server, event_line


@contextlib.contextmanager
def small_fs(path: str, size: str = "64k"):
    os.makedirs(path, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as ex:
        pytest.skip(f"cannot mount a tmpfs: {ex}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=10)


def fill(folder: str) -> str:
    """Take every free byte of the filesystem with one file; returns its path."""
    path = os.path.join(folder, "filler")
    with open(path, "ab", buffering=0) as handle:
        while True:
            try:
                if handle.write(b"x" * 512) == 0:
                    break
            except OSError as ex:
                assert ex.errno in (errno.ENOSPC, errno.EDQUOT)
                break
    return path


def _summary(stderr: str) -> dict[str, int]:
    line = re.findall(r"intake: (received=.*)", stderr)[-1]
    return {k: int(v) for k, v in (item.split("=") for item in line.split())}


def test_server_intake_holds_events_while_the_disk_is_full(tmp_path):
    srv = Server(str(tmp_path))
    with small_fs(srv.log_dir, "1m"):                 # room for all 3,000 lines once the filler goes
        now = int(time.time())
        lines = [event_line(now, src=f"10.1.{n // 250}.{n % 250 + 1}", info=f"event number {n}") for n in range(3000)]
        with srv:
            srv.send_udp([f"{now} {line}".encode() for line in lines[:10]])
            time.sleep(0.5)                       # the day file exists, its last page part used
            filler = fill(srv.log_dir)
            for start in range(10, len(lines), 500):
                srv.send_udp([f"{now} {line}".encode() for line in lines[start:start + 500]])
                time.sleep(0.05)
            time.sleep(0.5)
            with open(srv.day_file(now)) as handle:
                content = handle.read()
            assert content.endswith("\n") and content.splitlines() == lines[:content.count("\n")]
            held = content.count("\n")
            assert held < len(lines)
            os.remove(filler)                     # space comes back: the spool is written
            deadline = time.time() + 10
            while time.time() < deadline and os.path.getsize(srv.day_file(now)) < sum(len(x) + 1 for x in lines):
                time.sleep(0.1)
        with open(srv.day_file(now)) as handle:
            assert handle.read().splitlines() == lines      # in order, none torn, none glued, none lost
    counts = _summary(srv.stderr)
    assert counts["written"] == len(lines) and counts["disk_lost"] == 0 and counts["spool_pending"] == 0
    assert counts["write_errors"] >= 1 and counts["spooled"] == len(lines) - held
    assert "holding events" in srv.stderr and "writing again" in srv.stderr


def test_server_intake_counts_what_the_spool_cannot_hold(tmp_path):
    folder = str(tmp_path / "logs")
    with small_fs(folder):
        now = int(time.time())
        lines = [event_line(now, src="10.2.0.1", info=f"event number {n}") for n in range(400)]
        intake = Intake("127.0.0.1", 0, folder, spool_bytes=8000)
        filler = fill(folder)
        thread, stop = run_in_thread(intake)
        from tests.test_intake import _send

        _send(intake.port, [f"{now} {line}".encode() for line in lines])
        time.sleep(0.5)
        os.remove(filler)
        stop.set()
        thread.join(10)
        stats = intake.stats()
        with open(os.path.join(folder, os.path.basename(Server(str(tmp_path / "x")).day_file(now)))) as handle:
            kept = handle.read().splitlines()
    assert stats["disk_lost"] > 0 and stats["written"] == len(kept) == len(lines) - stats["disk_lost"]
    assert kept == [line for line in lines if line in set(kept)]          # in order, whole lines
    assert stats["spooled"] == len(kept) and f"disk_lost={stats['disk_lost']}" in intake.summary()


def _event(n: int) -> Event:
    return Event(int(time.time()), n, "10.3.0.1", 40000 + n, "198.51.100.7", 443, "TCP", "IP", "198.51.100.7",
                 f"known attacker number {n}", "(static)")


def test_sensor_log_file_sink_on_a_full_disk(tmp_path):
    folder = str(tmp_path / "logs")
    with small_fs(folder):
        sink = LogFileSink(folder, spool_lines=300)
        events = [_event(n) for n in range(1000)]
        expected = [format_line(e, "s") for e in events]
        for event, line in zip(events[:10], expected[:10], strict=True):
            sink.write(event, line)
        filler = fill(folder)
        for event, line in zip(events[10:], expected[10:], strict=True):
            sink.write(event, line)
        path = os.path.join(folder, [name for name in os.listdir(folder) if name.endswith(".log")][0])
        with open(path) as handle:
            during = handle.read()
        assert during.endswith("\n") and during.splitlines() == expected[:during.count("\n")]
        os.remove(filler)
        sink.close()                              # writes what it held, counts the rest
        with open(path) as handle:
            kept = handle.read().splitlines()
    written_first = during.count("\n")
    assert sink.errors >= 1 and sink.lost == len(events) - written_first - 300
    assert kept == expected[:written_first + 300] and sink.written == len(kept)


def test_sensor_summary_reports_the_loss(tmp_path):
    """sensor.py on a capture with LOG_DIR on a full filesystem: the summary says what was lost."""
    from tests.kit import pcapgen as g

    frames = [(1_700_000_000.0 + n / 1000, g.ether(g.ipv4(f"10.4.{n // 250}.{n % 250 + 1}", "66.66.66.66",
                                                         g.tcp(50000, 443, flags=g.SYN)))) for n in range(500)]
    pcap = g.write_pcap(str(tmp_path / "flow.pcap"), frames)
    folder = str(tmp_path / "logs")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with small_fs(folder):
        fill(folder)
        env = dict(os.environ, MALTRAIL_TRAILS_FILE=os.path.join(root, "tests", "data", "conformance", "trails.csv"),
                   MALTRAIL_LOG_DIR=folder, MALTRAIL_DISABLE_TRAIL_UPDATES="true",
                   MALTRAIL_EVENT_THROTTLE_MODE="off")
        result = subprocess.run([sys.executable, os.path.join(root, "sensor.py"), "--offline", "-r", pcap],
                                capture_output=True, text=True, env=env, timeout=120)
    output = result.stdout + result.stderr
    assert "events: 500 delivered to the sinks" in output, output
    assert re.search(r"\[!\] log file: 500 events lost, 0 written \(\d+ failed writes\)", output), output
    assert "write failed" in output and "Traceback" not in output


def test_preflight_warns_about_a_nearly_full_log_directory(tmp_path):
    folder = str(tmp_path / "logs")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with small_fs(folder):
        env = dict(os.environ, MALTRAIL_TRAILS_FILE=os.path.join(root, "tests", "data", "conformance", "trails.csv"),
                   MALTRAIL_LOG_DIR=folder, MALTRAIL_DISABLE_TRAIL_UPDATES="true", MALTRAIL_MONITOR_INTERFACE="lo",
                   MALTRAIL_DISABLE_CHECK_SUDO="true")
        result = subprocess.run([sys.executable, os.path.join(root, "sensor.py"), "-T"],
                                capture_output=True, text=True, env=env, timeout=60)
    assert "[ok] log directory" in result.stdout and "[warn] log directory: only 64 kB free" in result.stdout, \
        result.stdout


def test_server_intake_stopped_while_the_disk_is_still_full_counts_the_held_events_lost(tmp_path, capfd):
    folder = str(tmp_path / "logs")
    with small_fs(folder):
        now = int(time.time())
        intake = Intake("127.0.0.1", 0, folder)
        fill(folder)
        thread, stop = run_in_thread(intake)
        from tests.test_intake import _send

        _send(intake.port, [f"{now} {event_line(now, info=f'event number {n}')}".encode() for n in range(50)])
        time.sleep(0.3)
        stop.set()
        thread.join(10)
        names = [name for name in os.listdir(folder) if name.endswith(".log")]
        assert all(os.path.getsize(os.path.join(folder, name)) == 0 for name in names)
    stats = intake.stats()
    assert stats["written"] == 0 and stats["spooled"] == 50 and stats["disk_lost"] == 50
    assert stats["spool_pending"] == 0 and "50 held events lost at shutdown" in capfd.readouterr().err
