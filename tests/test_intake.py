"""UDP intake: both datagram forms, the line grammar (the shared table), the day window and new-day
cap, malformed and forged datagrams, signed mode, day files by event time, and no loss on shutdown (real sockets on 127.0.0.1, real server.py)."""

from __future__ import annotations

import os
import re
import socket
import time

import pytest

from core.events.dayfile import day_of, day_path
from core.events.event import LINE_PROBLEMS, Event
from core.events.signing import Signer, Verifier
from core.events.sinks import UdpSink
from core.server.intake import Intake, run_in_thread
from tests.event_lines import TABLE
from tests.kit.server import Server, event_line


def _send(port: int, payloads: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in payloads:
            sock.sendto(data, ("127.0.0.1", port))


def _run(tmp_path, payloads: list[bytes], verifier: Verifier | None = None) -> Intake:
    intake = Intake("127.0.0.1", 0, str(tmp_path), verifier)
    thread, stop = run_in_thread(intake)
    _send(intake.port, payloads)
    time.sleep(0.2)
    stop.set()
    thread.join(5)
    return intake


def _read_all(tmp_path) -> dict[str, list[str]]:
    out = {}
    for name in sorted(os.listdir(tmp_path)):
        with open(os.path.join(tmp_path, name)) as handle:
            out[name] = handle.read().splitlines()
    return out


def test_both_forms_day_by_event_time_and_line_ends(tmp_path):
    now = time.time()
    yesterday = now - 86400
    line = event_line(now)
    old = event_line(yesterday, src="10.0.0.2")
    injected = f"{int(now)} {line}\n\"2020-01-01 00:00:00.000000\" forged 6.6.6.6 1 2.2.2.2 2 TCP IP x y z"
    payloads = [f"{int(now)} {line}".encode(), f"{int(yesterday)} {old}".encode(), line.encode(),
                injected.encode(), (line + "\r\n").encode(), (line + "\n").encode(), (line + "\n\n").encode()]
    intake = _run(tmp_path, payloads)
    files = _read_all(tmp_path)
    today_name = os.path.basename(day_path(str(tmp_path), day_of(now)))
    yesterday_name = os.path.basename(day_path(str(tmp_path), day_of(yesterday)))
    assert files[yesterday_name] == [old]
    assert files[today_name] == [line] * 4 and "2020-01-01.log" not in files
    stats = intake.stats()
    assert stats["written"] == 5 and stats["dropped_control_char"] == 2 and stats["dropped"] == 2


def test_the_line_table_through_the_intake(tmp_path):
    """The same table the grammar is tested with: valid lines kept, the others dropped by reason.
    Each table line follows a good one with the same epoch, so it meets the receive loop's fast
    path (epoch already accepted) and must get the same answer there."""
    now = int(time.time())
    good = event_line(now)
    payloads = [b"%d %s" % (now, line) for table_line, _ in TABLE for line in (good.encode(), table_line)]
    intake = _run(tmp_path, payloads)
    kept = sum(_read_all(tmp_path).values(), [])
    assert kept == sum(([good] + ([line.decode()] if reason is None else []) for line, reason in TABLE), [])
    stats = intake.stats()
    for reason in LINE_PROBLEMS:
        assert stats[f"dropped_{reason}"] == sum(1 for _, r in TABLE if r == reason), reason


def test_malformed_datagrams_are_counted_and_dropped(tmp_path):
    now = int(time.time())
    line = event_line(now)
    bad = [b"", b"garbage", b"12345", f"{now}".encode(), f"{now} not a line".encode(), f"abc {line}".encode(),
           f"99 {line}".encode(), f"{now} {line}\x00".encode(), b"\xff\xfe" * 100, b'"2020-13-01 bad"',
           b"MTS1 1 a-1 " + b"0" * 64 + b" " + line.encode()]
    intake = _run(tmp_path, bad + [f"{now} {line}".encode()])
    files = _read_all(tmp_path)
    assert sum(len(v) for v in files.values()) == 1
    stats = intake.stats()
    assert stats["dropped"] == len(bad) - 1 and stats["signed_without_key"] == 1
    assert stats["dropped_bad_epoch"] == 6 and stats["dropped_bad_time"] == 3
    assert "dropped_bad_epoch=6" in intake.summary() and "dropped_bad_port" not in intake.summary()


def test_day_window_and_new_day_cap(tmp_path):
    now = time.time()
    inside = [now - 2 * 86400, now - 86400, now, now + 86400]
    outside = [now - 4 * 86400, now + 4 * 86400, now - 400 * 86400]
    payloads = [f"{int(t)} {event_line(t)}".encode() for t in inside + outside]
    payloads += [event_line(t).encode() for t in outside]                           # naive form too
    intake = _run(tmp_path, payloads)
    assert sorted(os.listdir(tmp_path)) == sorted({os.path.basename(day_path(str(tmp_path), day_of(t)))
                                                   for t in inside})
    assert intake.stats()["dropped_outside_window"] == 6
    # UDP_DAY_WINDOW 0 (replays of old captures): any real date, but at most N new files a minute
    replay = tmp_path / "replay"
    replay.mkdir()
    intake = Intake("127.0.0.1", 0, str(replay), day_window=0, new_days_per_minute=3)
    thread, stop = run_in_thread(intake)
    old = [now - n * 86400 for n in range(100, 110)]
    _send(intake.port, [f"{int(t)} {event_line(t)}".encode() for t in old + old[:2]])
    time.sleep(0.2)
    stop.set()
    thread.join(5)
    assert len(os.listdir(replay)) == 3
    stats = intake.stats()
    assert stats["written"] == 5 and stats["new_day_cap"] == 7 and stats["dropped_outside_window"] == 0


def test_signed_mode_drops_unsigned_forged_replayed_and_stale(tmp_path):
    now = int(time.time())
    line = event_line(now)
    plain = f"{now} {line}".encode()
    signer = Signer("shared-key")
    good = signer.sign(plain)
    forged = Signer("wrong-key").sign(plain)
    stale = Signer("shared-key", clock=lambda: now - 3600).sign(plain)
    tampered = good.replace(b"known attacker", b"known attackex")
    intake = _run(tmp_path, [plain, good, good, forged, stale, tampered, signer.sign(plain)],
                  Verifier("shared-key", 300))
    files = _read_all(tmp_path)
    assert sum(len(v) for v in files.values()) == 2
    stats = intake.stats()
    assert stats["signed_unsigned"] == 1 and stats["signed_replayed"] == 1 and stats["signed_bad_signature"] == 2
    assert stats["signed_stale"] == 1 and stats["signed_accepted"] == 2


def test_real_server_with_udp_key_and_sensor_sink(tmp_path):
    srv = Server(str(tmp_path), extra="UDP_KEY correct horse battery staple\nUDP_MAX_SKEW 60")
    with srv:
        sink = UdpSink(f"127.0.0.1:{srv.udp_port}", signer=Signer("correct horse battery staple"))
        now = int(time.time())
        event = Event(now, 0, "10.1.1.1", 5555, "6.6.6.6", 443, "TCP", "IP", "6.6.6.6", "known attacker", "x")
        from core.events.event import format_line

        for _ in range(3):
            sink.write(event, format_line(event, "remote-sensor"))
        sink.close()
        srv.send_udp([f"{now} {event_line(now, src='66.66.66.66')}".encode()])     # unsigned: dropped
        deadline = time.time() + 5
        while time.time() < deadline:
            if os.path.exists(srv.day_file()) and open(srv.day_file()).read().count("\n") >= 3:
                break
            time.sleep(0.05)
        time.sleep(0.3)
    content = open(srv.day_file()).read()
    assert content.count("remote-sensor 10.1.1.1") == 3 and "66.66.66.66" not in content
    summary = re.search(r"intake: .*", srv.stderr)
    assert summary and "signed_accepted=3" in summary.group(0) and "signed_unsigned=1" in summary.group(0)
    assert "signed only" in srv.stderr


def test_no_event_lost_on_shutdown(tmp_path):
    srv = Server(str(tmp_path))
    srv.start()
    now = int(time.time())
    line = event_line(now)
    count = 20000
    for _ in range(count // 2000):      # bursts the receive buffer holds even on a busy machine
        srv.send_udp([f"{now} {line}".encode()] * 2000)
        time.sleep(0.01)
    srv.stop()                          # at once: what is still queued is drained before exit
    with open(srv.day_file(now)) as handle:
        assert sum(1 for _ in handle) == count
    assert f"received={count} written={count}" in srv.stderr


def test_receive_buffer_past_rmem_max_when_allowed(tmp_path):
    """With CAP_NET_ADMIN the intake gets the buffer it asks for beyond net.core.rmem_max
    (SO_RCVBUFFORCE, a number Python's socket module does not name): no start-up note then."""
    try:
        with open("/proc/self/status") as handle:
            caps = int(re.search(r"CapEff:\s*([0-9a-f]+)", handle.read()).group(1), 16)
        with open("/proc/sys/net/core/rmem_max") as handle:
            rmem_max = int(handle.read())
    except (OSError, AttributeError):
        pytest.skip("not Linux")
    if not caps & (1 << 12):
        pytest.skip("needs CAP_NET_ADMIN")
    intake = Intake("127.0.0.1", 0, str(tmp_path), rcvbuf=rmem_max * 4)
    try:
        assert intake.rcvbuf >= intake.requested_rcvbuf == rmem_max * 4   # Linux reports twice the grant
    finally:
        intake.close()


def test_signed_datagrams_captured_before_a_restart_are_refused_after_it(tmp_path):
    srv = Server(str(tmp_path), extra="UDP_KEY correct horse battery staple")
    now = int(time.time())
    signer = Signer("correct horse battery staple")
    captured = [signer.sign(f"{now} {event_line(now, src=f'10.9.0.{n + 1}')}".encode()) for n in range(20)]
    with srv:
        srv.send_udp(captured)
        time.sleep(0.5)
    assert "signed_accepted=20" in srv.stderr
    assert os.path.exists(os.path.join(srv.log_dir, "udp_senders.state"))
    with srv:                                   # the same server restarted: the capture replayed
        srv.send_udp(captured)
        time.sleep(0.5)
        srv.send_udp([signer.sign(f"{now} {event_line(now, src='10.9.1.1')}".encode())])   # still live
        time.sleep(0.3)
    summary = re.findall(r"intake: (received=.*)", srv.stderr)[-1]
    assert "signed_accepted=1 " in summary and "signed_replayed=20 " in summary
    with open(srv.day_file(now)) as handle:
        assert len(handle.read().splitlines()) == 21
