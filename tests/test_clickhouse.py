"""EVENT_STORE with a real ClickHouse (Debian's clickhouse-server on loopback, tests/kit/clickhouse.py):
the setting, the schema, batched writes from the real server.py's intake, nothing lost when
ClickHouse is killed mid-intake, the threat summary and one threat's lines under every user's
scope and masking, hostile parameters, two servers on one store, retention."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import threading
import time
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import ConfigError, build_config
from core.events.event import parse_line
from core.server.auth import Scope
from core.server.chwriter import BATCH_BYTES, BATCH_ROWS, RowEncoder, Writer
from core.server.clickhouse import TABLE_COLUMNS, ClickHouse, address_key, bind, parse_event_store
from core.server.journal import JournalReader, JournalWriter, journal_files
from core.server.threats import scope_condition
from tests.kit.clickhouse import ClickHouseServer, require_clickhouse
from tests.kit.server import Server, event_line, sha

# -- the setting (no ClickHouse needed) ---------------------------------------------------------------


def test_event_store_setting_forms():
    assert build_config({}).EVENT_STORE == "files"
    assert parse_event_store("files").clickhouse is None
    both = parse_event_store("files, clickhouse://u:p%40ss@db.example:9123/events_db")
    assert both.files and both.clickhouse is not None
    target = both.clickhouse
    assert (target.url, target.database, target.user, target.password) == (
        "http://db.example:9123/", "events_db", "u", "p@ss")
    only = parse_event_store("https://[2001:db8::1]/", cluster="two_nodes").clickhouse
    assert not parse_event_store("https://[2001:db8::1]/").files
    assert only is not None and only.url == "https://[2001:db8::1]:8443/" and only.database == "maltrail"
    assert only.table == "maltrail.events" and only.local_table == "maltrail.events_local"
    for bad in ("", "file", "ftp://x/db", "http://h/db;drop", "http://a/x,http://b/y", "http://h/dé", "http://h/1x"):
        with pytest.raises(ConfigError):
            parse_event_store(bad)
    for cluster in ("c1 ON", "pair-1", "é"):
        with pytest.raises(ConfigError):
            parse_event_store("http://h/db", cluster=cluster)
    shown = dict(build_config({"EVENT_STORE": "files,http://u:s3cr%40t@h:8123/db"}).effective())
    assert shown["EVENT_STORE"] == "files,http://u:<set>@h:8123/db"


def test_store_setting_at_server_start(tmp_path):
    """Day files alone: /store says so and the ClickHouse routes are not there; a bad EVENT_STORE
    stops server.py with one line and exit status 2."""
    srv = Server(str(tmp_path / "files"), udp=False)
    with srv:
        cookie = srv.login()
        status, body = srv.get("/store", cookie=cookie)
        assert status == 200 and json.loads(body) == {"kind": "files", "files": True, "cluster": False}
        assert srv.get("/threats", cookie=cookie)[0] == 404
    bad = Server(str(tmp_path / "bad"), udp=False, extra="EVENT_STORE files,ftp://x/y\n")
    with pytest.raises(RuntimeError, match="EVENT_STORE"):
        bad.start()
    assert bad.proc is not None and bad.proc.wait(10) == 2
    bad.errfile.close()


def test_journal_order_positions_and_torn_records(tmp_path):
    folder = str(tmp_path)
    writer = JournalWriter(folder)
    for n in range(5):
        writer.append(f"2026-01-0{n + 1}", b"line %d a\nline %d b\n" % (n, n))
    writer.close()
    with open(os.path.join(folder, "000000000001.journal"), "ab") as handle:
        handle.write(b"\x002026-01-09 100\nhalf a rec")      # the intake died mid-write
    second = JournalWriter(folder)                            # a restart writes a new file
    second.append("2026-01-10", b"after restart\n")
    reader = JournalReader(folder)
    records, position = reader.read(4)
    assert [day for day, _ in records] == ["2026-01-01", "2026-01-02"]
    reader.commit(position)
    again = JournalReader(folder)                             # the position survives a restart
    records, position = again.read(1000)
    assert [day for day, _ in records] == ["2026-01-03", "2026-01-04", "2026-01-05", "2026-01-10"]
    assert records[-1][1] == b"after restart\n"
    assert again.pending()
    again.commit(position)
    assert journal_files(folder) == [2] and not again.pending()
    second.append("2026-01-11", b"x\n")
    assert again.pending() and again.read(10)[0] == [("2026-01-11", b"x\n")]
    second.close()


def test_address_keys_order_like_addresses():
    addrs = ["0.0.0.0", "10.1.2.3", "255.255.255.255", "::", "::1", "2001:db8::5", "ffff::1"]
    keys = [address_key(a) for a in addrs]
    assert address_key("::ffff:10.1.2.3") == address_key("10.1.2.3") == address_key("[10.1.2.3]")
    assert address_key("10.1.2") == "00" and address_key("-") == "00"
    v4 = sorted(addrs[:3], key=lambda a: int(ipaddress.ip_address(a)))
    assert [address_key(a) for a in v4] == sorted(address_key(a) for a in v4)
    assert len(set(keys)) == len(keys)


# -- a real ClickHouse ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ch():
    require_clickhouse()
    server = ClickHouseServer().start()
    yield server
    server.close()


def count(ch: ClickHouseServer, database: str, where: str = "1", what: str = "uniqExact(eid)") -> int:
    """Distinct events stored (0 while the table does not exist yet, or ClickHouse is down)."""
    try:
        return int(ch.query(f"SELECT {what} FROM {database}.events WHERE {where}"))
    except OSError:
        return 0


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def lines_for(n: int, base: float, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.choice(["IP", "DNS", "URL"])
        trail = {"IP": f"198.51.100.{i % 7}", "DNS": f"bad{i % 5}.example", "URL": f"evil{i % 3}.example/a?b=\\x"}[kind]
        out.append(event_line(base + i * 0.37 % 3000, src=f"10.{i % 3}.{rng.randrange(9)}.{rng.randrange(1, 200)}",
                              dst=f"203.0.113.{i % 50}", trail=trail, kind=kind,
                              info=rng.choice(["known attacker", "malware", "back\\slash here"])).replace(
                                  ".000000\"", f".{i % 1000000:06d}\"", 1))
    return out


def stored_lines(ch: ClickHouseServer, database: str) -> list[str]:
    body = ch.query(f"SELECT any(line) FROM {database}.events GROUP BY eid FORMAT TSVRaw").decode()
    return sorted(body.splitlines())


def test_intake_writes_every_event_with_its_fields(ch, tmp_path):
    base = time.time() - 600
    lines = lines_for(3000, base)
    srv = Server(str(tmp_path), extra=f"EVENT_STORE files,{ch.url('intake1')}\n")
    with srv:
        srv.send_udp([f"{int(base)} {line}".encode() for line in lines])
        wait_for(lambda: count(ch, "intake1") == len(lines), what="3000 events in ClickHouse")
    # the day file holds the same lines (EVENT_STORE keeps files as well)
    with open(srv.day_file(base), encoding="utf-8") as handle:
        assert sorted(handle.read().splitlines()) == sorted(lines)
    assert stored_lines(ch, "intake1") == sorted(lines)
    rows = ch.query("SELECT time, sensor, src_ip, src_port, dst_ip, dst_port, proto, type, trail, info, reference, "
                    "line FROM intake1.events FORMAT JSONCompact")
    for row in json.loads(rows)["data"]:
        assert list(parse_line(row[-1])) == row[:-1]
    assert "store_inserted=3000" in srv.stderr and "store_pending=0" in srv.stderr
    assert ch.query("SELECT engine, partition_key, sorting_key FROM system.tables WHERE database = 'intake1' "
                    "FORMAT TSV").decode().split("\t")[0] == "ReplacingMergeTree"


def test_clickhouse_only_store_writes_no_day_files(ch, tmp_path):
    srv = Server(str(tmp_path), extra=f"EVENT_STORE {ch.url('intake2')}\n")
    base = time.time()
    with srv:
        srv.send_udp([event_line(base + i).encode() for i in range(50)])
        wait_for(lambda: count(ch, "intake2") == 50, what="50 events")
    assert not [n for n in os.listdir(srv.log_dir) if n.endswith(".log")]
    assert "only (no day files)" in srv.stderr


def test_killed_clickhouse_loses_nothing(tmp_path):
    """ClickHouse is SIGKILLed while events stream in, stays down a while, comes back: every event
    is there once, in the order the spool kept, and the spool is empty."""
    ch = ClickHouseServer().start()
    try:
        srv = Server(str(tmp_path), extra=f"EVENT_STORE {ch.url('fault')}\nFAIL2BAN_REGEX attacker\n"
                                          "FAIL2BAN_ALLOWLIST 127.0.0.1\n")
        base = time.time() - 100
        lines = lines_for(20000, base, seed=5)
        with srv:
            sent = threading.Event()

            def send() -> None:
                for k in range(0, len(lines), 250):        # about 6 s of events
                    srv.send_udp([f"{int(base)} {line}".encode() for line in lines[k:k + 250]])
                    time.sleep(0.075)
                sent.set()

            sender = threading.Thread(target=send)
            sender.start()
            wait_for(lambda: count(ch, "fault") > 0, what="the first batch")
            ch.kill()
            sender.join()
            time.sleep(2.5)                 # inserts fail meanwhile; the events wait in the journal
            journal = os.path.join(srv.log_dir, "clickhouse-spool")
            assert JournalReader(journal).pending(), "nothing waits in the journal"
            status, body = srv.get("/fail2ban")  # today's lines are in ClickHouse alone: no answer, not an empty one
            assert status == 503 and b"event store" in body
            ch.start()
            wait_for(lambda: count(ch, "fault") == len(lines), timeout=90, what="every event after the restart")
            wait_for(lambda: not JournalReader(journal).pending(), what="the journal sent")
        assert stored_lines(ch, "fault") == sorted(lines)
        assert "store_failures=0" not in srv.stderr
    finally:
        ch.close()


def test_spool_survives_a_server_restart(tmp_path):
    """ClickHouse down for the whole life of one server: the next server start sends the journal."""
    require_clickhouse()
    ch = ClickHouseServer()
    srv = Server(str(tmp_path), extra=f"EVENT_STORE {ch.url('later')}\n")
    base = time.time()
    try:
        with srv:
            srv.send_udp([event_line(base + i).encode() for i in range(200)])
            journal = os.path.join(srv.log_dir, "clickhouse-spool")
            wait_for(lambda: JournalReader(journal).pending(), what="events in the journal")
        assert "store_pending=1" in srv.stderr
        ch.start()
        with srv:
            wait_for(lambda: count(ch, "later") == 200, what="the journal sent")
    finally:
        ch.close()


def test_writer_encodes_hostile_lines_exactly(ch):
    """Lines with backslashes, tabs, quotes and invalid UTF-8 go through TabSeparated unchanged."""
    day = datetime.date.today().isoformat()
    lines = [f'"{day} 01:02:03.000004" s1 10.0.0.1 1 10.0.0.2 2 TCP URL "a\\tb\tc" "x ""y"" \\" -'.encode(),
             f'"{day} 23:59:59" s\\2 ::1 - ::2 - UDP DNS x\\ y\rz (custom)'.encode(),
             f'"{day} 12:00:00.5" s3 1.1.1.1 1 2.2.2.2 2 TCP IP \xff\xfe info ref'.encode("latin-1")]
    target = parse_event_store(ch.url("hostile")).clickhouse
    assert target is not None
    client = ClickHouse(target)
    client.ensure_schema()
    client.insert(RowEncoder().encode(day, [line + b"\n" for line in lines]))
    got = ch.query("SELECT line, hour, custom FROM hostile.events ORDER BY hour FORMAT JSONCompact")
    stored = ch.query("SELECT line FROM hostile.events ORDER BY hour FORMAT TSVRaw").split(b"\n")[:-1]
    assert stored == [lines[0], lines[2], lines[1]]
    assert [r[1:] for r in json.loads(got.decode("utf-8", "replace"))["data"]] == [[1, 0], [12, 0], [23, 1]]


# -- threat summaries under scope and masking -------------------------------------------------------

SCOPE = "10.1.0.0/16, 2001:db8:1::/48"
USERS = {"admin": ("pw-admin", 0, ""), "ops": ("pw-ops", 0, SCOPE), "viewer": ("pw-viewer", 1000, SCOPE)}
NETS = [ipaddress.ip_network(n.strip()) for n in SCOPE.split(",")]


def allowed(user: str, src: str, dst: str) -> bool:
    if not USERS[user][2]:
        return True
    def inside(a: str) -> bool:
        ip = ipaddress.ip_address(a)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in NETS)
    return inside(src) or inside(dst)


def make_events(day: datetime.date, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        src = rng.choice(["10.1.0.5", "10.1.3.9", "10.2.0.1", "192.168.1.4", "2001:db8:1::7", "2001:db8:2::1",
                          "::ffff:10.1.9.9", "::ffff:10.3.0.1"])
        dst = rng.choice(["8.8.8.8", "10.1.200.1", "2001:db8:1::99", "203.0.113.5"])
        custom = rng.random() < 0.3
        trail = rng.choice(["evil.example", "bad.example", "198.51.100.1", "x' OR 1=1 --"])
        info = rng.choice(["SECRET note", "SECRET other"]) if custom else rng.choice(["malware", "known attacker"])
        ref = "(custom)" if custom else rng.choice(["(static)", "feed.example"])
        t = f"{day.isoformat()} {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{i:06d}"
        q_info = f'"{info}"' if " " in info else info
        q_trail = f'"{trail}"' if " " in trail else trail
        line = f'"{t}" s{i % 2} {src} 1000 {dst} 80 TCP DNS {q_trail} {q_info} {ref}'
        out.append({"line": line, "src": src, "dst": dst, "trail": trail, "info": info, "ref": ref,
                    "custom": custom, "time": t, "hour": int(t[11:13])})
    return out


def expected(events: list[dict], user: str, first: datetime.date) -> dict:
    masked = USERS[user][1] >= 1000
    out: dict = {}
    for e in events:
        if not allowed(user, e["src"], e["dst"]):
            continue
        info = "-" if masked and e["custom"] else e["info"]
        key = ("DNS", e["trail"], info, e["ref"])
        item = out.setdefault(key, {"count": 0, "first": e["time"], "last": e["time"], "sources": set(), "hours": {}})
        item["count"] += 1
        item["first"], item["last"] = min(item["first"], e["time"]), max(item["last"], e["time"])
        item["sources"].add(e["src"])
        idx = (datetime.date.fromisoformat(e["time"][:10]) - first).days * 24 + e["hour"]
        item["hours"][idx] = item["hours"].get(idx, 0) + 1
    return out


# the block lists of both the ClickHouse-only servers and their day-file twin
LISTS = ("FAIL2BAN_REGEX known attacker|SECRET\nFAIL2BAN_ALLOWLIST 127.0.0.1\n"
         "BLACKLIST\n    trail ~ evil and src_ip !~ ^10\\.2\\.\n    dst_ip ~ ^203\\.\n"
         "BLACKLIST_SECRET\n    filter ~ SECRET\n")


@pytest.fixture(scope="module")
def summary_env(ch, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("summary"))
    today = datetime.date.today()
    days = [today - datetime.timedelta(days=1), today]
    events = make_events(days[0], 700, 1) + make_events(days[1], 900, 2)
    users = [f"{name}:{sha(pw)}:{uid}:{scope}" for name, (pw, uid, scope) in USERS.items()]
    servers = [Server(os.path.join(tmp, name), users=users, extra=f"EVENT_STORE {ch.url('summary')}\n{LISTS}")
               for name in ("a", "b")]
    for srv in servers:
        srv.start()
    # every datagram to both servers, as sensors with two LOG_SERVER entries send them
    for srv in servers:
        srv.send_udp([e["line"].encode() for e in events])
    wait_for(lambda: count(ch, "summary", "1", "count()") == 2 * len(events), what="both copies")
    cookies = [{name: srv.login(name, pw) for name, (pw, _, _) in USERS.items()} for srv in servers]
    yield servers, cookies, events, days
    for srv in servers:
        srv.stop()


def get(srv: Server, cookie: str, path: str, **params: str) -> tuple[int, bytes]:
    return srv.get(path + "?" + urllib.parse.urlencode(params), cookie=cookie)


@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize("which", [0, 1])
def test_threat_summary_is_what_the_user_sees_once(summary_env, user, which):
    servers, cookies, events, days = summary_env
    srv, cookie = servers[which], cookies[which][user]
    status, body = get(srv, cookie, "/store")
    assert status == 200 and json.loads(body)["kind"] == "clickhouse"
    for first, last in ((days[0], days[0]), (days[1], days[1]), (days[0], days[1])):
        date = first.isoformat() if first == last else f"{first.isoformat()}_{last.isoformat()}"
        status, body = get(srv, cookie, "/threats", date=date)
        assert status == 200, body
        got = json.loads(body)
        in_range = [e for e in events if first.isoformat() <= e["time"][:10] <= last.isoformat()]
        want = expected(in_range, user, first)
        assert {(t["type"], t["trail"], t["info"], t["reference"]) for t in got["threats"]} == set(want)
        for t in got["threats"]:
            w = want[(t["type"], t["trail"], t["info"], t["reference"])]
            assert (t["count"], t["first"], t["last"], t["source_count"]) == (
                w["count"], w["first"], w["last"], len(w["sources"]))
            assert set(t["sources"]) <= w["sources"] and dict(map(tuple, t["hours"])) == w["hours"]
            assert t["severity"] in ("low", "medium", "high")
        if USERS[user][1] >= 1000:
            assert "SECRET" not in body.decode()


@pytest.mark.parametrize("user", list(USERS))
def test_one_threats_lines_on_demand(summary_env, user):
    servers, cookies, events, days = summary_env
    srv, cookie = servers[0], cookies[0][user]
    date = f"{days[0].isoformat()}_{days[1].isoformat()}"
    threats = json.loads(get(srv, cookie, "/threats", date=date)[1])["threats"]
    masked = USERS[user][1] >= 1000
    for t in threats:
        status, body = get(srv, cookie, "/threat", date=date, type=t["type"], trail=t["trail"], info=t["info"],
                           reference=t["reference"])
        assert status == 200
        got = body.decode().splitlines()
        want = []
        for e in sorted(events, key=lambda e: e["time"]):
            info = "-" if masked and e["custom"] else e["info"]
            if allowed(user, e["src"], e["dst"]) and (e["trail"], info, e["ref"]) == (t["trail"], t["info"],
                                                                                    t["reference"]):
                want.append(e["line"].replace(f'"{e["info"]}"', "-") if masked and e["custom"] else e["line"])
        assert got == want and len(got) == t["count"]


@pytest.mark.parametrize("params", [
    {"date": "2026-01-01' OR 1=1 --"}, {"date": "1' UNION SELECT"}, {"date": "2026-13-01"},
])
def test_hostile_dates_are_refused(summary_env, params):
    servers, cookies, _, _ = summary_env
    status, _ = get(servers[0], cookies[0]["admin"], "/threats", **params)
    assert status == 400


@settings(max_examples=40, deadline=None)
@given(trail=st.text(min_size=0, max_size=40), info=st.text(max_size=20))
def test_hostile_threat_fields_only_ever_match_themselves(summary_env, trail, info):
    servers, cookies, events, days = summary_env
    status, body = get(servers[0], cookies[0]["admin"], "/threat", date=days[1].isoformat(), type="DNS",
                       trail=trail, info=info, reference="(custom)")
    assert status == 200
    want = sum(1 for e in events if e["time"][:10] == days[1].isoformat() and (e["trail"], e["info"], e["ref"]) ==
               (trail, info, "(custom)"))
    assert len(body.decode().splitlines()) == want


def test_unauthenticated_requests_get_nothing(summary_env):
    servers, _, _, days = summary_env
    for path in ("/threats", "/threat", "/store"):
        assert servers[0].get(path)[0] == 401


@settings(max_examples=60, deadline=None)
@given(nets=st.lists(st.one_of(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 32)).map(
        lambda t: str(ipaddress.IPv4Network(t, strict=False))),
    st.tuples(st.integers(0, 2**128 - 1), st.integers(1, 128)).map(
        lambda t: str(ipaddress.IPv6Network(t, strict=False)))), min_size=1, max_size=3),
    addrs=st.lists(st.one_of(st.ip_addresses().map(str), st.sampled_from(["-", "10.0.0", "::ffff:10.1.2.3", "[::1]"])),
                   min_size=1, max_size=8))
def test_scope_condition_is_the_scope_rule(ch, nets, addrs):
    scope = Scope.parse(",".join(nets))
    params: dict = {}
    condition = scope_condition(scope, params)
    values = " UNION ALL ".join(bind("SELECT {a} AS src_ip, {k} AS src_key, '00' AS dst_key", a=a, k=address_key(a))
                                for a in addrs)
    sql = bind(f"SELECT src_ip, {condition} FROM ({values}) FORMAT TSV", **params)
    got = {}
    for row in ch.query(sql).decode().splitlines():
        text, flag = row.rsplit("\t", 1)
        got[text] = flag == "1"
    assert got == {a: scope.allows_ip(a) for a in addrs}


def test_retention_drops_old_days(ch):
    target = parse_event_store(ch.url("retention")).clickhouse
    client = ClickHouse(target)
    client.ensure_schema()
    today = datetime.date(2026, 3, 10)
    encoder = RowEncoder()
    for back in range(5):
        day = (today - datetime.timedelta(days=back)).isoformat()
        client.insert(encoder.encode(day, [f'"{day} 10:00:00" s 1.1.1.1 1 2.2.2.2 2 TCP IP x y z\n'.encode()]))
    assert client.prune(0, today) == []
    assert client.prune(3, today) == ["2026-03-06", "2026-03-07"]
    days = ch.query("SELECT DISTINCT day FROM retention.events ORDER BY day FORMAT TSV").decode().split()
    assert days == ["2026-03-08", "2026-03-09", "2026-03-10"]


def test_two_node_cluster_two_servers_each_event_once(tmp_path):
    """Two ClickHouse nodes as one cluster (two shards), one server.py on each node with
    CLICKHOUSE_CLUSTER, every datagram to both servers: the rows are spread over both nodes, each
    event stored once per copy on one shard, and either server's summary counts it once."""
    require_clickhouse()
    from tests.kit.clickhouse import free_port

    ports = [free_port(), free_port()]
    shards = "".join(f"<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>" for p in ports)
    nodes = [ClickHouseServer(clusters=f"<pair>{shards}</pair>") for _ in ports]
    for node, port in zip(nodes, ports, strict=True):
        node.tcp_port = port
        node.write_config(clusters=f"<pair>{shards}</pair>")
    try:
        for node in nodes:
            node.start()
        servers = [Server(str(tmp_path / f"s{k}"), extra=f"EVENT_STORE {node.url('cl')}\nCLICKHOUSE_CLUSTER pair\n")
                   for k, node in enumerate(nodes)]
        for srv in servers:
            srv.start()
        base = time.time() - 60
        lines = lines_for(2000, base, seed=9)
        for srv in servers:
            srv.send_udp([f"{int(base)} {line}".encode() for line in lines])

        def total() -> int:
            try:
                return int(nodes[0].query("SELECT count() FROM cl.events"))
            except OSError:
                return 0
        wait_for(lambda: total() == 2 * len(lines), timeout=60, what="both copies through the Distributed table")
        per_node = [int(node.query("SELECT count() FROM cl.events_local")) for node in nodes]
        assert all(n > 0 for n in per_node) and sum(per_node) == 2 * len(lines)
        # both copies of an event are on the same shard (sharded by eid)
        for node in nodes:
            assert node.query("SELECT count() FROM (SELECT eid, count() c FROM cl.events_local GROUP BY eid) "
                              "WHERE c != 2").strip() == b"0"
        for srv in servers:
            cookie = srv.login()
            body = json.loads(srv.get(f"/threats?date={datetime.date.fromtimestamp(base).isoformat()}",
                                      cookie=cookie)[1])
            assert sum(t["count"] for t in body["threats"]) == len(lines)
        for srv in servers:
            srv.stop()
    finally:
        for node in nodes:
            node.close()


def test_a_batch_clickhouse_cannot_read_is_set_aside(ch, tmp_path):
    """A batch ClickHouse refuses as unreadable (here: a table made by hand with a wrong column
    type) goes to rejected/ with its rows, and the journal moves past it instead of stalling."""
    ch.query("CREATE DATABASE IF NOT EXISTS poison")
    columns = TABLE_COLUMNS.replace("eid UInt64", "eid Date")
    ch.query(f"CREATE TABLE poison.events {columns} ENGINE = Memory")
    target = parse_event_store(ch.url("poison")).clickhouse
    assert target is not None
    folder = str(tmp_path)
    journal = JournalWriter(folder)
    journal.append(datetime.date.today().isoformat(), b'"2026-01-01 10:00:00" s 1.1.1.1 1 2.2.2.2 2 TCP IP t i r\n')
    counters = [0] * 5
    writer = Writer(ClickHouse(target), JournalReader(folder), counters)
    writer.last_batch = -1e9
    assert writer.step()
    rejected = os.listdir(tmp_path / "rejected")
    assert len(rejected) == 1 and b"1.1.1.1" in (tmp_path / "rejected" / rejected[0]).read_bytes()
    assert not writer.journal.pending() and counters[3] == 1
    journal.close()


def test_a_journal_read_of_long_lines_is_sent_at_once(ch, tmp_path):
    """Long lines fill a journal read before BATCH_ROWS of them wait: such a read is a batch of
    its own, sent at once instead of a FLUSH_INTERVAL after the previous one (which would cap the
    writer at one read a second)."""
    target = parse_event_store(ch.url("longlines")).clickhouse
    assert target is not None
    day = datetime.date.today().isoformat()
    line = f'"{day} 10:00:00.%06d" s 1.1.1.1 1 2.2.2.2 2 TCP URL evil.example/{"a" * 400} i r\n'
    lines = [(line % n).encode() for n in range(BATCH_BYTES // len(line) + 10)]
    assert len(lines) < BATCH_ROWS
    journal = JournalWriter(str(tmp_path))
    journal.append(day, b"".join(lines))
    journal.close()
    writer = Writer(ClickHouse(target), JournalReader(str(tmp_path)), [0] * 5)
    writer.last_batch = time.monotonic()          # a batch has just gone
    assert writer.step()
    assert count(ch, "longlines") == len(lines)


@pytest.mark.parametrize("user", list(USERS))
def test_events_and_counts_without_day_files(summary_env, user):
    """EVENT_STORE names ClickHouse alone: /events and /counts come from it, as the user sees them."""
    servers, cookies, events, days = summary_env
    srv, cookie = servers[1], cookies[1][user]
    masked = USERS[user][1] >= 1000

    def seen(e: dict) -> str:
        return e["line"].replace(f'"{e["info"]}"', "-") if masked and e["custom"] else e["line"]
    visible = sorted((e for e in events if allowed(user, e["src"], e["dst"])), key=lambda e: e["time"])
    status, body = get(srv, cookie, "/events", date=f"{days[0].isoformat()}_{days[1].isoformat()}")
    assert status == 200 and body.decode().splitlines() == [seen(e) for e in visible]
    status, body = get(srv, cookie, "/events", date=days[1].isoformat())
    assert body.decode().splitlines() == [seen(e) for e in visible if e["time"][:10] == days[1].isoformat()]
    status, body = get(srv, cookie, "/counts", **{"from": days[0].isoformat(), "to": days[1].isoformat()})
    want = {d.isoformat(): sum(1 for e in visible if e["time"][:10] == d.isoformat()) for d in days}
    assert status == 200 and json.loads(body) == want
    assert json.loads(get(srv, cookie, "/store")[1]) == {"kind": "clickhouse", "files": False, "cluster": False}


@pytest.fixture(scope="module")
def files_twin(summary_env, tmp_path_factory):
    """A day-file server holding the summary events, with the same users: the reference answers."""
    _, _, events, days = summary_env
    users = [f"{name}:{sha(pw)}:{uid}:{scope}" for name, (pw, uid, scope) in USERS.items()]
    srv = Server(str(tmp_path_factory.mktemp("twin")), users=users, udp=False, extra=LISTS)
    for day in days:
        srv.write_events([e["line"] for e in sorted(events, key=lambda e: e["time"]) if e["time"][:10] == day.isoformat()],
                         time.mktime(day.timetuple()) + 43200)
    srv.start()
    cookies = {name: srv.login(name, pw) for name, (pw, _, _) in USERS.items()}
    yield srv, cookies
    srv.stop()


@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize("query", ["SECRET", "secret note", "evil.example", "- (custom)", "x' OR 1=1", "10.1.0.0/16",
                                   "2001:db8:1::/48", "10.1.9.9", "::ffff:10.1.9.9", "malware", "s1 10.1"])
def test_hunt_and_geo_without_day_files_answer_as_day_files_do(summary_env, files_twin, user, query):
    servers, cookies, _, days = summary_env
    twin, twin_cookies = files_twin
    span = {"from": days[0].isoformat(), "to": days[1].isoformat()}
    status, body = get(servers[1], cookies[1][user], "/hunt", q=query, **span)
    want_status, want_body = get(twin, twin_cookies[user], "/hunt", q=query, **span)
    assert status == want_status == 200
    got, want = json.loads(body), json.loads(want_body)
    for answer in (got, want):
        answer.pop("scanned")
    assert got["counts"] == want["counts"]
    assert sorted(s["line"] for s in got["samples"]) == sorted(s["line"] for s in want["samples"])
    assert got == {**want, "samples": got["samples"]}
    for day in days:
        assert json.loads(get(servers[1], cookies[1][user], "/geo", date=day.isoformat())[1]) == json.loads(
            get(twin, twin_cookies[user], "/geo", date=day.isoformat())[1])


@pytest.mark.parametrize("user", [None, *USERS])
def test_block_lists_without_day_files_answer_as_day_files_do(summary_env, files_twin, user):
    """EVENT_STORE names ClickHouse alone: /fail2ban and /blacklist[/NAME] read today's events from
    it and give what the day files give, for an allow-listed caller and for each user's view."""
    servers, cookies, _, _ = summary_env
    twin, twin_cookies = files_twin
    cookie, twin_cookie = (cookies[1][user], twin_cookies[user]) if user else (None, None)
    for path in ("/fail2ban", "/blacklist", "/blacklist/secret"):
        if user and path == "/fail2ban":
            continue  # not a session route: the allow list decides
        status, body = servers[1].get(path, cookie=cookie)
        want_status, want = twin.get(path, cookie=twin_cookie)
        assert status == want_status == 200, (path, body)
        assert body.decode().splitlines() == want.decode().splitlines(), path
        if user is None or not USERS[user][2]:
            assert want, path  # the lists are not empty: the comparison can fail
