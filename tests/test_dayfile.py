"""The day-file rule (core/events/dayfile.py) and every place that applies it, against one table of
(log_dir, time zone, epoch second) -> day file: the sensor's log file sink, the server's UDP
intake (both datagram forms, through a real socket on 127.0.0.1), the HTTP API's storage and the
alert tailer. Time zones are POSIX TZ strings (no tz database needed), set for the test and
restored after it."""

from __future__ import annotations

import datetime
import os
import socket
import threading
import time

import pytest

from core.config import build_config
from core.events.dayfile import LocalDays, day_of, day_of_name, day_path
from core.events.event import Event, format_line
from core.events.sinks import LogFileSink
from core.server.alerts import Alerts
from core.server.intake import Intake
from core.server.storage import Storage

CET = "CET-1CEST,M3.5.0,M10.5.0/3"        # central Europe, with its summer time rule

# (log_dir under the test's folder, TZ, epoch second, the day file under the test's folder)
TABLE = [
    ("logs", "UTC0", 1700000000, "logs/2023-11-14.log"),
    ("logs", "XST-10", 1700000000, "logs/2023-11-15.log"),          # UTC+10: already the next day
    ("logs/", "YST+5", 1700000000, "logs/2023-11-14.log"),          # UTC-5; a trailing slash
    ("a b/logs", "UTC0", 1704067199, "a b/logs/2023-12-31.log"),    # last second of a year
    ("a b/logs", "UTC0", 1704067200, "a b/logs/2024-01-01.log"),    # first second of the next
    ("logs", "UTC0", 1709164800, "logs/2024-02-29.log"),            # leap day
    ("logs", CET, 1711920600, "logs/2024-03-31.log"),               # 23:30 CEST on the 23-hour day
    ("logs", CET, 1711926000, "logs/2024-04-01.log"),               # 01:00 CEST, 23:00 UTC the day before
    ("logs", CET, 1719786600, "logs/2024-07-01.log"),               # 00:30 CEST, 22:30 UTC the day before
]


@pytest.fixture
def zone(monkeypatch):
    def set_zone(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def _case(tmp_path, zone, log_dir: str, tz: str, expected: str) -> tuple[str, str]:
    zone(tz)
    folder = os.path.join(str(tmp_path), log_dir)
    os.makedirs(folder, exist_ok=True)
    return folder, os.path.join(str(tmp_path), expected)


def _event(sec: int, src: str = "10.0.0.1") -> Event:
    return Event(sec, 250, src, 1234, "198.51.100.7", 443, "TCP", "IP", "198.51.100.7", "known attacker", "x")


def _files(root: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)


@pytest.mark.parametrize("log_dir, tz, sec, expected", TABLE)
def test_the_rule(tmp_path, zone, log_dir, tz, sec, expected):
    folder, path = _case(tmp_path, zone, log_dir, tz, expected)
    day = day_of(sec)
    assert day_path(folder, day) == path
    assert day_path(folder, datetime.date.fromisoformat(day)) == path
    assert day_of_name(os.path.basename(path)) == day
    # the line written for that moment starts with the same local date
    assert format_line(_event(sec), "s").startswith(f'"{day} ')


@pytest.mark.parametrize("log_dir, tz, sec, expected", TABLE)
def test_sensor_log_file_sink(tmp_path, zone, log_dir, tz, sec, expected):
    folder, path = _case(tmp_path, zone, log_dir, tz, expected)
    sink = LogFileSink(folder)
    line = format_line(_event(sec), "s")
    sink.write(_event(sec), line)
    sink.close()
    assert sink.errors == 0
    assert _files(str(tmp_path)) == [path]
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == line + "\n"


@pytest.mark.parametrize("log_dir, tz, sec, expected", TABLE)
def test_server_intake_both_forms(tmp_path, zone, log_dir, tz, sec, expected):
    folder, path = _case(tmp_path, zone, log_dir, tz, expected)
    epoch_line = format_line(_event(sec, "10.0.0.1"), "s")
    naive_line = format_line(_event(sec, "10.0.0.2"), "s")
    intake = Intake("127.0.0.1", 0, folder, day_window=0)   # the table's dates are fixed: any real date
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(f"{sec} {epoch_line}".encode(), ("127.0.0.1", intake.port))
        sock.sendto(naive_line.encode(), ("127.0.0.1", intake.port))
    intake.run(lambda: True)              # already stopped: drains what is queued, flushes, closes
    assert intake.stats()["written"] == 2, intake.stats()
    assert _files(str(tmp_path)) == [path]
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == epoch_line + "\n" + naive_line + "\n"


@pytest.mark.parametrize("log_dir, tz, sec, expected", TABLE)
def test_server_storage(tmp_path, zone, log_dir, tz, sec, expected):
    folder, path = _case(tmp_path, zone, log_dir, tz, expected)
    day = datetime.date.fromisoformat(day_of(sec))
    storage = Storage(folder)
    assert storage.day_path(day) == path
    with open(path, "w") as handle:
        handle.write("x\n")
    assert [s.path for s in storage.segments([day])] == [path]
    assert storage.days_present() == [day.isoformat()]


@pytest.mark.parametrize("log_dir, tz, sec, expected", TABLE)
def test_server_alert_tailer(tmp_path, zone, log_dir, tz, sec, expected):
    folder, path = _case(tmp_path, zone, log_dir, tz, expected)
    config = build_config({"LOG_DIR": folder, "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/x"}, env={})
    alerts = Alerts(config, threading.Event(), lambda *_: None)
    assert alerts.day_file(sec) == path


def test_local_days_cache_follows_every_midnight(zone):
    """One LocalDays fed times in order across summer-time changes agrees with day_of everywhere."""
    zone(CET)
    days = LocalDays()
    for start in (1711836000, 1729980000):          # around 2024-03-31 and 2024-10-27
        for sec in range(start, start + 3 * 86400, 599):
            assert days.day(sec) == day_of(sec), sec
    # and out of order (a late datagram from the day before)
    assert days.day(1711920600) == "2024-03-31"
    assert days.day(1711926000) == "2024-04-01"


def test_day_of_name_refuses_other_files():
    for name in ("2024-01-01.log.1", "error.log", "cleared.txt", "2024-1-01.log", "x2024-01-01.log",
                 "2024-01-01.LOG", "2024-01-01"):
        assert day_of_name(name) is None, name


@pytest.mark.parametrize("keep, kept", [
    (0, {"2026-01-01", "2026-03-08", "2026-03-09", "2026-03-10"}),   # 0: retention off
    (1, {"2026-03-10"}),                                             # today only
    (2, {"2026-03-09", "2026-03-10"}),
    (70, {"2026-01-01", "2026-03-08", "2026-03-09", "2026-03-10"}),
])
def test_retention_removes_only_old_day_files(tmp_path, keep, kept):
    from core.events.dayfile import prune_day_files

    days = ["2026-01-01", "2026-03-08", "2026-03-09", "2026-03-10"]
    for day in days:
        (tmp_path / f"{day}.log").write_text("x\n")
    for other in ("error.log", "2026-01-01.log.1", "notes.txt", "2026-13-45.log"):
        (tmp_path / other).write_text("keep\n")
    removed = prune_day_files(str(tmp_path), keep, datetime.date(2026, 3, 10))
    left = {name[:-4] for name in os.listdir(tmp_path) if day_of_name(name)}
    assert left == kept | {"2026-13-45"} and len(removed) == len(days) - len(kept)
    assert all((tmp_path / other).exists() for other in ("error.log", "2026-01-01.log.1", "notes.txt"))


def test_server_applies_log_retention(tmp_path):
    """A real server with LOG_RETENTION_DAYS 3 removes the older day files when it starts."""
    from tests.kit.server import Server

    srv = Server(str(tmp_path), extra="LOG_RETENTION_DAYS 3")
    today = datetime.date.today()
    for age in (0, 2, 3, 10):
        with open(day_path(srv.log_dir, today - datetime.timedelta(days=age)), "w") as handle:
            handle.write("x\n")
    with srv:
        deadline = time.time() + 10
        while time.time() < deadline and len(os.listdir(srv.log_dir)) > 2 + ("error.log" in os.listdir(srv.log_dir)):
            time.sleep(0.1)
    left = sorted(name for name in os.listdir(srv.log_dir) if day_of_name(name))
    assert left == sorted(os.path.basename(day_path("", today - datetime.timedelta(days=age))) for age in (0, 2))
