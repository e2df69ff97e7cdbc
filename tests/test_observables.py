"""The observables store (LOG_DIR/meta.sqlite): the original's schema, batched upserts, the size
bound, kill -9, the intake's writer process (core/server/obswriter.py) and its feed, the standalone
sensor's sink, and `GET /meta` of a real server.py fed over UDP."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from core.events.observables import (
    FLAG_DOMAIN,
    FLAG_LOCAL,
    FLAG_REMOTE,
    ObservableStore,
    lookup,
    parse_observable,
)
from core.server.obswriter import ObservablesFeed
from tests.kit import T0, SensorKit
from tests.kit import pcapgen as g
from tests.kit.server import ROOT, Server, event_line, sha

ORIGINAL_SCHEMA = ("CREATE TABLE observables (observable PRIMARY KEY, flags, first_seen, last_seen, count) WITHOUT ROWID",
                   "CREATE TABLE meta_info (k, v)")


def rows(path: str) -> dict:
    conn = sqlite3.connect(path)
    try:
        return {key: rest for key, *rest in conn.execute("SELECT * FROM observables")}
    finally:
        conn.close()


def test_a_file_in_the_original_schema_opens_and_merges(tmp_path):
    path = str(tmp_path / "meta.sqlite")
    conn = sqlite3.connect(path)
    for statement in ORIGINAL_SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO observables VALUES (?, ?, ?, ?, ?)", (socket.inet_aton("198.51.100.7"), FLAG_REMOTE, 100, 200, 5))
    conn.execute("INSERT INTO observables VALUES (?, ?, ?, ?, ?)", ("evil.example", FLAG_DOMAIN, 150, 150, 1))
    conn.execute("INSERT INTO meta_info VALUES ('version', 'x')")
    conn.commit()
    conn.close()
    store = ObservableStore(path)
    store.observe(300, "10.0.0.5", "198.51.100.7", "DNS", "(www).evil.example")
    store.observe(50, "10.0.0.5", "224.0.0.251", "IP", "224.0.0.251")  # multicast: not stored
    store.observe(60, "10.0.0.5", "255.255.255.255", "IP", "x")  # broadcast: not stored
    store.close()
    got = rows(path)
    assert got[socket.inet_aton("198.51.100.7")] == [FLAG_REMOTE, 100, 300, 6]
    assert got[socket.inet_aton("10.0.0.5")] == [FLAG_LOCAL, 50, 300, 3]
    assert got["evil.example"] == [FLAG_DOMAIN, 150, 150, 1] and got["www.evil.example"] == [FLAG_DOMAIN, 300, 300, 1]
    assert len(got) == 4
    assert lookup(path, socket.inet_aton("198.51.100.7")) == {
        "observable": "198.51.100.7", "kind": "ip", "scope": "remote", "first_seen": 100, "last_seen": 300, "count": 6}
    assert lookup(path, "unseen.example") is None
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT * FROM meta_info").fetchall() == [("version", "x")]  # left alone


def test_bounded_memory_and_rows(tmp_path):
    path = str(tmp_path / "meta.sqlite")
    store = ObservableStore(path, max_pending=50, max_rows=100, flush_every=3600)
    for i in range(40):  # frequent, long-lived: must survive pruning
        for day in range(5):
            store.observe(T0 + day * 86400, f"198.51.100.{i}", f"198.51.100.{i}", "IP", "x")
    store.flush()
    for i in range(200):  # one sighting each
        store.observe(T0 + 4 * 86400, f"203.0.{i // 250}.{i % 250 + 1}", f"203.0.{i // 250}.{i % 250 + 1}", "IP", "x")
        assert len(store.pending) < 50  # flushed whenever the memory bound is reached
    store.close()
    got = rows(path)
    assert len(got) <= 100 and store.counters["pruned"] > 0
    assert all(socket.inet_aton(f"198.51.100.{i}") in got for i in range(40))


def test_the_intake_batch_adds_what_line_by_line_adds(tmp_path):
    """`observe_lines` (the intake's batch, common lines split without decoding) and
    `observe_line` one by one leave the same pending observations and counters."""
    lines = [event_line(T0, src="10.0.0.1", dst="198.51.100.7"), event_line(T0 + 1, src="10.0.0.1", dst="198.51.100.7"),
             event_line(T0 + 3600, src="2001:db8::1", dst="10.0.0.255"),
             event_line(T0 - 5, src="224.0.0.1", dst="0.0.0.0"),
             event_line(T0 + 7, kind="DNS", trail="(sub).Evil.example"),
             event_line(T0 + 8, src="10.0.0.9", sensor='"my sensor"'),
             event_line(T0 + 9, dst="203.0.113.5", trail='"a b"'),
             '"2026-11-28 06:07:08" s 10.0.0.1 1 10.0.0.2 2 TCP IP x y z',
             '"2026-11-28 06:07:08.5" s 10.0.0.3 1 10.0.0.4 2 TCP IP x y z',
             '"2026-11-28 06:07:08.000000" s 10.0.0.5 1 10.0.0.6 2 TCP IP x',
             "not a line", ""]
    one, batch = ObservableStore(str(tmp_path / "a.sqlite")), ObservableStore(str(tmp_path / "b.sqlite"))
    for line in lines:
        one.observe_line(line.encode() + b"\n")
    batch.observe_lines([line.encode() + b"\n" for line in lines])
    assert batch.pending == one.pending and batch.counters == one.counters
    assert len(one.pending) >= 8 and one.counters["observed"] == 9     # the line without info is skipped


def test_parse_observable_rejects_junk():
    assert parse_observable("10.0.0.1") == ("ip", socket.inet_aton("10.0.0.1"))
    assert parse_observable("[2001:db8::1]")[0] == "ip"
    assert parse_observable("Evil.Example.") == ("domain", "evil.example")
    for bad in ("", "a b", "<script>", "x" * 300, "..", ".a", "é.com", "1.2.3.4/24", "a;b"):
        assert parse_observable(bad) is None


KILLED_WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from core.events.observables import ObservableStore
store = ObservableStore({path!r}, flush_every=0)
store.observe(1000, "198.51.100.1", "198.51.100.2", "IP", "x")
store.flush()
print("flushed", flush=True)
n = 0
while True:
    n += 1
    for i in range(500):
        store.observe(2000 + n, "10.%d.%d.%d" % (n % 250, i // 250, i % 250 + 1), "198.51.100.2", "IP", "x")
    store.flush()
"""


def test_survives_kill_9_mid_write(tmp_path):
    path = str(tmp_path / "meta.sqlite")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER.format(root=ROOT, path=path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "flushed"
    time.sleep(1.0)  # many transactions in flight
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    row = lookup(path, socket.inet_aton("198.51.100.1"))
    assert row is not None and row["first_seen"] == 1000
    assert len(rows(path)) > 500  # later committed batches too
    store = ObservableStore(path)  # and it keeps being written after the crash
    store.observe(5000, "198.51.100.1", "198.51.100.9", "IP", "x")
    store.close()
    assert lookup(path, socket.inet_aton("198.51.100.1"))["last_seen"] == 5000


def feed_lines(n: int, first: int = 0) -> list[bytes]:
    """n accepted lines, each with its own remote source address."""
    return [(event_line(T0 + i % 50, src=f"198.18.{(first + i) // 250 % 250}.{(first + i) % 250 + 1}", dst="10.0.0.1")
             + "\n").encode() for i in range(n)]


def test_the_writer_process_stores_what_the_feed_gets(tmp_path):
    """Lines handed to the feed reach the store through the pipe and the writer process, also a
    batch larger than the pipe (held, written in parts); close flushes them."""
    path = str(tmp_path / "meta.sqlite")
    feed = ObservablesFeed(path)
    feed.start()
    feed.add("day", feed_lines(100))
    feed.add("day", feed_lines(20000, first=100))     # ~2.6 MB, more than the pipe takes at once
    feed.close()
    stats = feed.stats()
    assert stats["observables_sent"] == stats["observables_observed"] == 20100
    assert stats["observables_dropped"] == stats["observables_errors"] == 0 and stats["observables_flushes"] >= 1
    got = rows(path)
    assert len(got) == 20101 and got[socket.inet_aton("198.18.0.1")][3] == 1     # + 10.0.0.1
    assert got[socket.inet_aton("10.0.0.1")] == [FLAG_LOCAL, T0, T0 + 49, 20100]


def test_a_stopped_writer_never_blocks_the_intake_and_the_hold_is_bounded(tmp_path):
    """With the writer stopped the pipe fills; `add` returns at once, holds up to its bound and
    counts what did not fit; once the writer runs again it gets everything that was held."""
    path = str(tmp_path / "meta.sqlite")
    feed = ObservablesFeed(path, hold_bytes=512 << 10)
    feed.start()
    assert feed.process is not None and feed.process.pid
    os.kill(feed.process.pid, signal.SIGSTOP)
    batch, batches = 1000, 40                          # ~130 kB a batch: ~5 MB in all
    for k in range(batches):
        feed.add("day", feed_lines(batch, first=k * batch))
    stats = feed.stats()
    assert stats["observables_dropped"] > 0 and feed.held_bytes <= 512 << 10
    assert stats["observables_sent"] + stats["observables_dropped"] == batch * batches
    os.kill(feed.process.pid, signal.SIGCONT)
    feed.close()
    stats = feed.stats()
    assert stats["observables_observed"] == stats["observables_sent"]
    assert rows(path)[socket.inet_aton("10.0.0.1")][3] == stats["observables_sent"]


def _intake_killed(path: str) -> None:
    feed = ObservablesFeed(path)
    feed.start()
    feed.add("day", feed_lines(3000))
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_writer_flushes_when_the_intake_is_killed(tmp_path):
    """kill -9 of the intake: its writer reads what the pipe holds, flushes and exits."""
    path = str(tmp_path / "meta.sqlite")
    intake = multiprocessing.get_context("fork").Process(target=_intake_killed, args=(path,))
    intake.start()
    intake.join(30)
    assert intake.exitcode == -signal.SIGKILL
    deadline = time.time() + 20
    while time.time() < deadline and not (os.path.exists(path) and len(rows(path)) == 3001):
        time.sleep(0.2)
    assert len(rows(path)) == 3001


def test_standalone_sensor_writes_the_store(tmp_path):
    from core.assemble import configured_sinks

    kit = SensorKit([("66.66.66.66", "malware (test)", "(static)")], folder=str(tmp_path))
    sinks = configured_sinks(kit.config)  # no LOG_SERVER, local day files: the sensor keeps the store
    assert "observables" in [sink.name for sink in sinks]
    for sink in sinks:
        sink.close()
    off = configured_sinks(kit.config.replace(USE_CONDENSED_STORAGE=False))
    remote = configured_sinks(kit.config.replace(LOG_SERVER="127.0.0.1:9"))
    assert "observables" not in [s.name for s in off] + [s.name for s in remote]
    for sink in off + remote:
        sink.close()
    from core.assemble import build_sensor
    from core.events.observables import ObservableSink, meta_path

    store = ObservableStore(meta_path(str(tmp_path)))
    sensor = build_sensor(kit.config, kit.store, sinks=[ObservableSink(store)])
    frame = g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.tcp(40000, 443)))
    sensor.process(1, T0, 0, frame)
    sensor.close()
    kit.close()
    assert lookup(meta_path(str(tmp_path)), socket.inet_aton("66.66.66.66"))["first_seen"] == T0


RESTRICTED = f"local:{sha('pw1')}:1000:192.168.0.0/16"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server.py fed over UDP, stopped (the intake flushes as it stops) and started again."""
    tmp = str(tmp_path_factory.mktemp("meta"))
    with open(os.path.join(tmp, "trails.csv"), "w") as handle:
        handle.write('198.51.100.7,asyncrat (malware),"feodotracker.abuse.ch (+abuse.ch,threatfox.abuse.ch)"\n')
    srv = Server(tmp, users=[f"admin:{sha('changeme!')}:0:", RESTRICTED])
    srv.start()
    first = time.time() - 3600
    lines = [event_line(first, src="192.168.1.5", dst="198.51.100.7", trail="198.51.100.7", info="asyncrat (malware)"),
             event_line(first + 60, src="192.168.1.5", dst="8.8.8.8", trail="(www).evil-site.example", kind="DNS",
                        info="malware")]
    srv.send_udp([f"{int(first)} {line}".encode() for line in lines])
    srv.send_udp([f"{int(first) + 600} {lines[0].replace(time.strftime('%H:%M:%S', time.localtime(first)), time.strftime('%H:%M:%S', time.localtime(first + 600)))}".encode()])
    deadline = time.time() + 10
    while time.time() < deadline and "intake" not in srv.read_err():
        time.sleep(0.1)
    time.sleep(0.5)
    srv.stop()
    srv.start()
    yield srv, int(first)
    srv.stop()


def test_meta_endpoint(server):
    srv, first = server
    cookie = srv.login()
    status, data = srv.get("/meta?observable=198.51.100.7", cookie=cookie)
    assert status == 200, data
    answer = json.loads(data)
    assert answer["observable"] == "198.51.100.7" and answer["kind"] == "ip" and answer["scope"] == "remote"
    assert answer["count"] == 2 and answer["first_seen"] == first and answer["last_seen"] == first + 600
    assert answer["category"] == "asyncrat (malware)" and answer["reputation"] == 3 and "country" in answer
    status, data = srv.get("/meta?observable=www.evil-site.example", cookie=cookie)
    assert status == 200 and json.loads(data)["kind"] == "domain" and json.loads(data)["count"] == 1
    assert srv.get("/meta?observable=203.0.113.99", cookie=cookie) == (200, b"{}")
    for bad in ("", "a%20b", "%3Cx%3E", "x" * 400, "%00"):
        assert srv.get(f"/meta?observable={bad}", cookie=cookie)[0] == 400
    assert srv.get("/meta?observable=198.51.100.7")[0] == 401
    local = srv.login("local", "pw1")
    assert srv.get("/meta?observable=198.51.100.7", cookie=local)[0] == 403
    assert srv.get("/meta?observable=www.evil-site.example", cookie=local)[0] == 403
    status, data = srv.get("/meta?observable=192.168.1.5", cookie=local)
    assert status == 200 and json.loads(data)["scope"] == "local" and json.loads(data)["category"] is None
