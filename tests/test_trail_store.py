"""Trail store (core/trails/store.py + index.py + build.py) on tiny real trail files: every key
shape, reloads, concurrent builds, read-only folders, damaged indexes and malformed rows."""

from __future__ import annotations

import csv
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from core.trails.index import classify
from core.trails.regex import literal_last_labels
from core.trails.store import Trail, TrailStore, TrailStoreError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFORMANCE_TRAILS = os.path.join(ROOT, "tests", "data", "conformance", "trails.csv")

ROWS = [
    ("evil-test-domain.com", "malware (test)", "(static)"),
    ("Mixed.Case-Domain.NET", "phishing (test)", "(static)"),
    ("66.66.66.66", "malware (test)", "(static)"),
    ("6.6.6.6:8443", "malware (test)", "(static)"),
    ("dead::beef", "v6 (test)", "(static)"),
    ("[dead::beef]:443", "v6 port (test)", "(static)"),
    ("0:0:0:0:0:ffff:2d3e:c649", "v6 long form (test)", "(static)"),
    ("[2001:41d0:404:200:0:0:0:7f9]:80", "v6 long port (test)", "(static)"),
    ("/malicious-login.php", "path (test)", "(static)"),
    ("evil-url.example/bad/path", "url (test)", "(static)"),
    ("10.9.8.7/", "ip url (test)", "(static)"),
    ("0123456789abcdef0123456789abcdef01234567", "cert (test)", "sslbl.abuse.ch"),
    ("1.2.3.4:99999", "bad port (test)", "(static)"),
    ("182.86.133:8880", "bad ip (test)", "(static)"),
    ("1.2.3.4:" + "9" * 5000, "absurd port (test)", "(static)"),
    (r"dga[0-9]+\.wildcard-test\.com", "dga (test)", "(static)"),
    ("info,with comma", "quoted, \"info\"", "(custom)"),
    ("bücher-evil.de", "idn (test)", "(static)"),
    ("2.2.2.2", "first (test)", "(static)"),
    ("2.2.2.2", "last wins (test)", "(remote custom)"),
    ("ua:EvilBot/2.1 (compatible; Loader)", "evilbot (malware)", "misp:circl"),
    ("ua:curl/7.1", "ua no space (test)", "(custom)"),
]


def packed(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


@pytest.fixture
def store(tmp_path):
    s = TrailStore.from_rows(ROWS, str(tmp_path))
    yield s
    s.close()


def test_exact_text_keys(store):
    assert store.get("evil-test-domain.com") == Trail("malware (test)", "(static)")
    assert store.get("mixed.case-domain.net") == Trail("phishing (test)", "(static)")
    assert store.get("/malicious-login.php") == Trail("path (test)", "(static)")
    assert store.get("evil-url.example/bad/path") == Trail("url (test)", "(static)")
    assert store.get("10.9.8.7/") == Trail("ip url (test)", "(static)")
    assert store.get("0123456789abcdef0123456789abcdef01234567").reference == "sslbl.abuse.ch"
    assert store.get("bücher-evil.de") == Trail("idn (test)", "(static)")
    assert store.get("info,with comma") == Trail('quoted, "info"', "(custom)")
    # no suffix, prefix, substring or parent matching inside get(): the caller walks parents
    for miss in ("test-domain.com", "xevil-test-domain.com", "sub.evil-test-domain.com", "evil-test-domain.co",
                 "evil-test-domain.com.", "Mixed.Case-Domain.NET", "evil-url.example/bad", "evil-url.example",
                 "malicious-login.php", "", "66.66.66.66", "6.6.6.6:8443", r"dga[0-9]+\.wildcard-test\.com"):
        assert store.get(miss) is None, miss


def test_user_agent_keys(store):
    """`ua:` rows are exact User-Agent trails, compared stripped and without case; they live under
    their own binary tag, so no domain or URL lookup reaches them and they reach no domain or URL."""
    hit = Trail("evilbot (malware)", "misp:circl")
    assert store.user_agent("EvilBot/2.1 (compatible; Loader)") == hit
    assert store.user_agent("  evilbot/2.1 (COMPATIBLE; loader) ") == hit
    assert store.user_agent("curl/7.1") == Trail("ua no space (test)", "(custom)")
    for miss in ("EvilBot/2.1", "EvilBot/2.1 (compatible; Loader) x", "curl/7.10", "", "evil-test-domain.com",
                 "\udcff\udcfe", "x" * 5000):
        assert store.user_agent(miss) is None, miss
    assert store.user_agent("EvilBot/2.1 (compatible; Loader)") == hit  # remembered answer
    for text in ("ua:curl/7.1", "ua:curl", "curl/7.1", "ua:evilbot/2.1 (compatible; loader)"):
        assert store.get(text) is None, text  # a Host + path (`ua:curl` + `/7.1`) never reaches it
    assert store.lookup_key("UA:EvilBot/2.1 (compatible; Loader)") == hit
    assert store.user_agent("evil-test-domain.com") is None


def test_ip_keys(store):
    assert store.ip(packed("66.66.66.66")) == Trail("malware (test)", "(static)")
    assert store.ip(packed("66.66.66.67")) is None
    assert store.ip(packed("6.6.6.6")) is None  # only listed with a port
    assert store.ip(packed("dead::beef")) == Trail("v6 (test)", "(static)")
    assert store.ip(packed("dead:0:0::beef")) == Trail("v6 (test)", "(static)")
    assert store.ip(packed("::ffff:45.62.198.73")) == Trail("v6 long form (test)", "(static)")
    assert store.ip(packed("dead::beee")) is None
    assert store.ip(packed("2.2.2.2")) == Trail("last wins (test)", "(remote custom)")
    assert store.ip(b"\x01\x02\x03") is None and store.ip(b"") is None
    assert store.ip(None) is None and store.ip("66.66.66.66") is None  # type: ignore[arg-type]


def test_ip_prefilter_answers_like_the_rows(tmp_path):
    """The exact-IP prefilter (two bits of a byte slot per listed address) only ever says "maybe":
    every listed address is found with its own row, and no unlisted one, among thousands that
    pass it by chance or not."""
    import random

    rng = random.Random(8)
    listed = {f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{n % 250 + 1}": n
              for n in range(3000)}
    listed.update({f"2001:db8:{n:x}::1": n for n in range(300)})
    store = TrailStore.from_rows([(a, f"family {n} (test)", "(static)") for a, n in listed.items()], str(tmp_path))
    assert store.ip_prefilter()[0] is not None
    for address, n in listed.items():
        assert store.ip(packed(address)) == Trail(f"family {n} (test)", "(static)")
    unlisted = (f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                for _ in range(30000))
    assert not [a for a in unlisted if a not in listed and store.ip(packed(a)) is not None]


def test_ip_port_keys(store):
    assert store.ip_port(packed("6.6.6.6"), 8443) == Trail("malware (test)", "(static)")
    for port in (8444, 443, 80, 0, 65535):
        assert store.ip_port(packed("6.6.6.6"), port) is None, port
    assert store.ip_port(packed("6.6.6.7"), 8443) is None
    assert store.ip_port(packed("66.66.66.66"), 80) is None  # exact IP row, not ip:port
    assert store.ip_port(packed("dead::beef"), 443) == Trail("v6 port (test)", "(static)")
    assert store.ip_port(packed("dead::beef"), 444) is None
    assert store.ip_port(packed("2001:41d0:404:200::7f9"), 80).info == "v6 long port (test)"
    for port in (-1, 65536, 1 << 40):
        assert store.ip_port(packed("6.6.6.6"), port) is None
    # a bad ip:port row is kept as a plain string key
    assert store.get("1.2.3.4:99999") == Trail("bad port (test)", "(static)")
    assert store.get("182.86.133:8880") == Trail("bad ip (test)", "(static)")
    assert store.get("1.2.3.4:" + "9" * 5000) == Trail("absurd port (test)", "(static)")


def test_regex_trails(store):
    hit = store.match_regex("dga1234.wildcard-test.com")
    assert hit == (r"dga[0-9]+\.wildcard-test\.com", Trail("dga (test)", "(static)"))
    for miss in ("dga.wildcard-test.com", "dgax.wildcard-test.com", "xdga1.wildcard-test.com",
                 "dga1.wildcard-test.com.evil", "dga1.wildcard-test.net", "evil-test-domain.com"):
        assert store.match_regex(miss) is None, miss
    assert store.regex_count() == 1


def test_lookup_key_finds_every_row_as_written(store):
    last = {}
    for key, info, ref in ROWS:
        last[classify(key)] = Trail(info, ref)
    for key, _, _ in ROWS:
        assert store.lookup_key(key) == last[classify(key)], key
    assert store.lookup_key("DEAD:0000:0:0:0:0:0000:beef") == Trail("v6 (test)", "(static)")
    assert store.lookup_key("[DEAD::BEEF]:443") == Trail("v6 port (test)", "(static)")
    assert store.lookup_key("EVIL-TEST-DOMAIN.COM") == Trail("malware (test)", "(static)")
    assert store.lookup_key("6.6.6.6:8444") is None
    assert store.lookup_key(r"dga[0-9]+\.other\.com") is None
    assert len(store) == len(ROWS) - 1  # one duplicate
    assert store.skipped == 0


def test_hostile_lookup_arguments(store):
    assert store.get("\udcff\udcfe") is None  # lone surrogates (surrogateescape'd network bytes)
    assert store.get("\x00\xff") is None
    assert store.get(None) is None  # type: ignore[arg-type]
    assert store.ip_port(b"\x06\x06\x06\x06", None) is None  # type: ignore[arg-type]
    assert store.match_regex("") is None
    assert store.match_regex("a" * 10000 + ".com") is None


def test_many_regex_trails_all_active(tmp_path):
    rows = []
    for i in range(400):
        rows.append((rf"fam{i}x[0-9]+\.example\.(com|net)", f"family {i} (malware)", "(static)"))
    for i in range(150):
        rows.append((rf"gen{i}[a-z]+\.[a-z]+", f"generic {i} (malware)", "(static)"))
    rows.append((r"(?i)backref([a-z])\1\.org", "backref (malware)", "(static)"))
    rows.append((r"over[0-9]+\.example\.com", "first overlap", "(static)"))
    rows.append((r"over1[0-9]*\.example\.com", "second overlap", "(static)"))
    store = TrailStore.from_rows(rows, str(tmp_path))
    try:
        assert store.regex_count() == len(rows)
        for i in (0, 99, 100, 101, 250, 399):
            text, trail = store.match_regex(f"fam{i}x77.example.net")
            assert trail.info == f"family {i} (malware)" and text == rows[i][0]
            assert store.match_regex(f"fam{i}x77.example.org") is None
            assert store.match_regex(f"fam{i}x.example.com") is None
        assert store.match_regex("gen149abc.zz")[1].info == "generic 149 (malware)"
        assert store.match_regex("gen149abc") is None
        assert store.match_regex("backrefqq.org")[1].info == "backref (malware)"
        assert store.match_regex("backrefqr.org") is None
        assert store.match_regex("over123.example.com")[1].info == "first overlap"  # CSV order wins
    finally:
        store.close()


def test_regex_bucketing_never_hides_a_match(tmp_path):
    assert literal_last_labels(r"a[0-9]+\.com") == ["com"]
    assert literal_last_labels(r"^a\.(com|NET)$") == ["com", "net"]
    assert literal_last_labels(r"^a\.(?:com|net)$") == ["com", "net"]
    for generic in (r"y[0-9]+|z\.com", r"a\\.com", r"a\.co[m]", r"a\.com+", r"a\.com\$", r"(a\.com)",
                    r"a\.[a-z]+", r"nklmtf[0-9][^.]*[0-9].t35.com"):
        assert literal_last_labels(generic) is None, generic
    rows = [(r"y[0-9]+|z\.com", "alternation", "(static)"),
            (r"x[0-9]+\.(com|net)$", "tail group", "(static)"),
            (r"t35[0-9].t35.com", "unescaped dots", "(static)"),
            (r"(b)\1[0-9]\.org", "backref", "(static)"),
            (r"q[0-9]\.org", "plain org", "(static)"),
            (r"Caps[0-9]\.ORG", "capitals", "(static)"),
            (r"\Wsep[0-9]\.org", "escape", "(static)")]
    store = TrailStore.from_rows(rows, str(tmp_path))
    try:
        assert store.match_regex("y12")[1].info == "alternation"
        assert store.match_regex("z.com")[1].info == "alternation"
        assert store.match_regex("x1.net")[1].info == "tail group"
        assert store.match_regex("x1.org") is None
        assert store.match_regex("t351xt35xcom")[1].info == "unescaped dots"
        assert store.match_regex("bb1.org")[1].info == "backref"
        assert store.match_regex("q1.org")[1].info == "plain org"
        assert store.match_regex("ba1.org") is None
        assert store.match_regex("caps1.org")[1].info == "capitals"  # names arrive lower-case
        assert store.match_regex("-sep1.org")[1].info == "escape"
        assert store.match_regex("xsep1.org") is None
    finally:
        store.close()


def test_malformed_rows_are_counted(tmp_path):
    path = tmp_path / "trails.csv"
    path.write_bytes(b"\xef\xbb\xbfgood.example,ok (test),(static)\r\n"
                     b"two,fields\n"
                     b"four,fields,are,wrong\n"
                     b",empty key,(static)\n"
                     b"\n"
                     b"bad-utf8-\xff.example,x,(static)\n"
                     b"bad-info.example,\xfe\xfe,(static)\n"
                     b'"unterminated,quote,(static)\n'
                     b"" + b"k" * 70000 + b",too long,(static)\n"
                     b"last.example,ok2,(static)")
    store = TrailStore.open(str(path))
    try:
        assert store.get("good.example") == Trail("ok (test)", "(static)")
        assert store.get("last.example") == Trail("ok2", "(static)")
        assert len(store) == 2
        assert store.skipped == 7
    finally:
        store.close()


def test_random_bytes_never_break_the_build(tmp_path):
    import random

    rng = random.Random(1234)
    alphabet = b'abc.:/[]\\,"\r\n\x00\xff\xc3\xa9*+()|0123456789 '
    lines = [b"anchor.example,ok,(static)"]
    for _ in range(3000):
        lines.append(bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40))))
    (tmp_path / "trails.csv").write_bytes(b"\n".join(lines) + b"\n")
    store = TrailStore.open(str(tmp_path / "trails.csv"))
    try:
        assert store.get("anchor.example") == Trail("ok", "(static)")
        assert len(store) > 0 and store.skipped > 0
        for name in ("a.b", "abc", "1.2.3.4", "a" * 50):
            store.match_regex(name)
            store.lookup_key(name)
    finally:
        store.close()


def test_two_process_parse_gives_the_serial_answers(tmp_path):
    from core.trails.build import build_index

    rows = []
    for i in range(6000):
        family = f"family {i % 37} (malware)" if i < 3000 else f"other {i % 11} (suspicious)"
        rows.append((f"dup-{i % 1700}.example", family, "(static)"))          # duplicates across the split
        rows.append((f"10.{i % 7}.{i % 250}.{i % 200}:{1 + i % 900}", family, "(static)"))
        if i % 500 == 0:
            rows.append((rf"rx{i % 1000}[0-9]+\.example\.com", family, "(static)"))
            rows.append((f"[2001:db8::{i:x}]:443", family, "(static)"))
    serial_dir, parallel_dir = tmp_path / "serial", tmp_path / "parallel"
    answers = []
    for folder, min_bytes in ((serial_dir, 1 << 40), (parallel_dir, 0)):
        folder.mkdir()
        with open(folder / "trails.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
        build_index(str(folder / "trails.csv"), str(folder / "trails.csv.idx"), parallel_min_bytes=min_bytes)
        store = TrailStore.open(str(folder / "trails.csv"))
        assert not store.did_build
        answers.append((len(store), [store.lookup_key(key) for key, _, _ in rows], store.regex_count()))
        store.close()
    assert answers[0] == answers[1]
    last = {classify(key): Trail(info, ref) for key, info, ref in rows}
    assert answers[1][1] == [last[classify(key)] for key, _, _ in rows]
    assert answers[1][0] == len(last)


def test_keys_crowding_the_table_region_boundary(tmp_path):
    """Keys whose probes run from the lower table region into the upper one (put aside by the
    region-split placement and placed after the join), with duplicates among them."""
    import zlib

    from core.trails.build import build_index

    rows_wanted = 40                      # -> 128 slots, regions [0, 64) and [64, 128 + pad)
    mask = 127
    crowd, upper, i = [], [], 0
    while len(crowd) < 12 or len(upper) < 8:
        name = f"k{i}.example"
        home = zlib.crc32(name.encode()) & mask
        if home in (62, 63) and len(crowd) < 12:
            crowd.append(name)
        elif home in (64, 65) and len(upper) < 8:
            upper.append(name)
        i += 1
    rows = [(name, "first", "(static)") for name in crowd + upper]
    rows += [(name, "second", "(static)") for name in crowd[::3] + upper[::2]]  # later duplicates win
    rows += [(f"filler-{j}.example", "filler", "(static)") for j in range(rows_wanted - len(rows))]
    last = {name: info for name, info, _ in rows}
    for folder_name, min_bytes in (("serial", 1 << 40), ("parallel", 0)):
        folder = tmp_path / folder_name
        folder.mkdir()
        with open(folder / "trails.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
        build_index(str(folder / "trails.csv"), str(folder / "trails.csv.idx"), parallel_min_bytes=min_bytes)
        store = TrailStore.open(str(folder / "trails.csv"))
        try:
            assert not store.did_build and len(store) == len(last)
            for name, info in last.items():
                assert store.get(name) == Trail(info, "(static)"), (folder_name, name)
            assert store.get("k-missing.example") is None
        finally:
            store.close()


def test_more_ip_rows_than_the_in_memory_set_holds(tmp_path):
    from core.trails import view as store_module

    count = store_module.IP_PREFILTER_CAP + 5000
    path = tmp_path / "trails.csv"
    with open(path, "w") as f:
        for i in range(count):
            f.write(f"{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.7,attacker {i % 3},(static)\n")
    store = TrailStore.open(str(path))
    try:
        assert store._view.ip_marks is None  # the bloom path answers
        assert len(store) == count
        for i in (0, 1, 65535, count - 1):
            ip = packed(f"{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.7")
            assert store.ip(ip) == Trail(f"attacker {i % 3}", "(static)")
        misses = [packed(f"{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.8") for i in range(0, count, 97)]
        assert sum(store.ip(m) is not None for m in misses) == 0
        assert store.ip(b"\x0a") is None and store.ip(None) is None  # type: ignore[arg-type]
    finally:
        store.close()


def test_missing_csv_is_a_clear_error(tmp_path):
    with pytest.raises(TrailStoreError, match="does not exist"):
        TrailStore.open(str(tmp_path / "nope.csv"))


def test_empty_csv(tmp_path):
    (tmp_path / "trails.csv").write_text("")
    store = TrailStore.open(str(tmp_path / "trails.csv"))
    assert len(store) == 0 and store.get("x") is None and store.ip(b"\x01\x01\x01\x01") is None
    assert store.match_regex("x.com") is None
    store.close()


def test_index_beside_csv_reused_not_rebuilt(tmp_path):
    first = TrailStore.from_rows(ROWS, str(tmp_path))
    assert first.did_build and first.index_path == str(tmp_path / "trails.csv") + ".idx"
    second = TrailStore.open(str(tmp_path / "trails.csv"))
    assert not second.did_build and second.built_at == first.built_at
    assert second.get("evil-test-domain.com") is not None
    first.close()
    second.close()


def test_reopen_after_csv_change(tmp_path):
    store = TrailStore.from_rows(ROWS, str(tmp_path))
    gen = store.generation
    assert store.reopen_if_changed() is False
    get_before = store.get
    with open(tmp_path / "trails.csv", "a", encoding="utf-8") as f:
        f.write("new-trail.example,fresh (test),(static)\n7.7.7.7:53,fresh port,(static)\n")
    st = os.stat(tmp_path / "trails.csv")
    os.utime(tmp_path / "trails.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert store.get("new-trail.example") is None
    assert store.reopen_if_changed() is True
    assert store.generation != gen and store.did_build and store.build_info["keys"] == len(store)
    assert store.get("new-trail.example") == Trail("fresh (test)", "(static)")
    assert store.ip_port(packed("7.7.7.7"), 53) == Trail("fresh port", "(static)")
    assert store.get("evil-test-domain.com") is not None
    assert get_before("new-trail.example") is None  # an in-flight caller keeps its old, consistent view
    assert store.reopen_if_changed() is False
    # replaced by rename (how update writes it): new inode, same size is still noticed
    tmp = tmp_path / "trails.tmp"
    tmp.write_text((tmp_path / "trails.csv").read_text().replace("fresh (test)", "fresh (tes2)"))
    os.replace(tmp, tmp_path / "trails.csv")
    assert store.reopen_if_changed() is True
    assert store.get("new-trail.example").info == "fresh (tes2)"
    store.close()


def _touch_later(path):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_background_reload_never_blocks(tmp_path):
    rows = [(f"bg-{i}.example", "old", "(static)") for i in range(40000)]
    first = TrailStore.from_rows(rows, str(tmp_path))
    second = TrailStore.open(str(tmp_path / "trails.csv"))  # another worker of the same sensor
    with open(tmp_path / "trails.csv", "a") as f:
        f.write("bg-new.example,new,(static)\n")
    _touch_later(tmp_path / "trails.csv")
    assert first.reopen_if_changed(wait=False) is False   # build started in a child
    assert first._pending is not None
    assert first.get("bg-1.example") == Trail("old", "(static)")  # old index keeps answering
    assert first.get("bg-new.example") is None
    swapped = {"first": False, "second": False}
    deadline = time.monotonic() + 60
    while not all(swapped.values()) and time.monotonic() < deadline:
        for name, store in (("first", first), ("second", second)):
            if not swapped[name]:
                swapped[name] = store.reopen_if_changed(wait=False)
        time.sleep(0.02)
    assert swapped == {"first": True, "second": True}
    assert first.did_build and not second.did_build  # the second one waited for the first one's build
    for store in (first, second):
        assert store.get("bg-new.example") == Trail("new", "(static)")
        assert store.get("bg-39999.example") == Trail("old", "(static)")
        assert store.reopen_if_changed(wait=False) is False
        store.close()


def test_background_reload_reports_a_failed_build(tmp_path):
    store = TrailStore.from_rows(ROWS, str(tmp_path))
    (tmp_path / "trails.csv").write_text("x.example,a,(static)\n")
    _touch_later(tmp_path / "trails.csv")
    os.unlink(store.index_path)
    os.mkdir(store.index_path)  # the new index cannot be renamed into place
    assert store.reopen_if_changed(wait=False) is False
    deadline = time.monotonic() + 30
    with pytest.raises(TrailStoreError, match="cannot write trail index"):
        while time.monotonic() < deadline:
            store.reopen_if_changed(wait=False)
            time.sleep(0.02)
    assert store.get("evil-test-domain.com") is not None  # the old index is still in use
    os.rmdir(store.index_path)
    assert store.reopen_if_changed() is True and store.get("x.example") == Trail("a", "(static)")
    assert store.get("evil-test-domain.com") is None
    store.close()


OPEN_CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from core.trails.store import TrailStore
    sys.stdin.readline()
    store = TrailStore.open(sys.argv[2])
    print(json.dumps({"built": store.did_build, "keys": len(store),
                      "hit": store.get("domain-777.example") is not None, "index": store.index_path}))
""")


def test_concurrent_open_builds_once(tmp_path):
    path = tmp_path / "trails.csv"
    with open(path, "w") as f:
        for i in range(60000):
            f.write(f"domain-{i}.example,family {i % 50} (malware),(static)\n")
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_CHILD, ROOT, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:  # release them together
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(r["built"] for r in results) == 1, results
    assert all(r["keys"] == 60000 and r["hit"] for r in results)
    assert not [n for n in os.listdir(tmp_path) if ".tmp." in n]


def test_read_only_csv_folder_uses_home_index(tmp_path):
    data = tmp_path / "ro"
    data.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    with open(CONFORMANCE_TRAILS, "rb") as src:
        (data / "trails.csv").write_bytes(src.read())
    os.chmod(data, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        env = dict(os.environ, HOME=str(home))
        out = subprocess.run([sys.executable, "-c", OPEN_CHILD, ROOT, str(data / "trails.csv")], input="go\n",
                             capture_output=True, text=True, env=env, timeout=60, check=True)
        result = json.loads(out.stdout)
        assert result["built"] and result["keys"] >= 19
        assert result["index"].startswith(str(home / ".maltrail" / "index") + os.sep)
        assert sorted(os.listdir(data)) == ["trails.csv"]
        again = subprocess.run([sys.executable, "-c", OPEN_CHILD, ROOT, str(data / "trails.csv")], input="go\n",
                               capture_output=True, text=True, env=env, timeout=60, check=True)
        assert json.loads(again.stdout)["built"] is False
        # no writable place at all (HOME is a regular file, which stops root too): a clear error
        not_a_dir = tmp_path / "home-file"
        not_a_dir.write_text("")
        env = dict(os.environ, HOME=str(not_a_dir))
        fail = subprocess.run([sys.executable, "-c", OPEN_CHILD, ROOT, str(data / "trails.csv")], input="go\n",
                              capture_output=True, text=True, env=env, timeout=60)
        assert fail.returncode != 0 and "TrailStoreError" in fail.stderr and "writable" in fail.stderr
    finally:
        os.chmod(data, 0o755)


@pytest.mark.parametrize("damage", ["flip-body", "flip-header", "truncate", "garbage", "empty", "extend"])
def test_damaged_index_is_rebuilt(tmp_path, damage):
    store = TrailStore.from_rows(ROWS, str(tmp_path))
    idx = store.index_path
    store.close()
    data = bytearray(open(idx, "rb").read())
    if damage == "flip-body":
        data[len(data) // 2] ^= 0x40
    elif damage == "flip-header":
        data[20] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) - 9]
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty":
        data = bytearray()
    else:
        data += b"\0" * 16
    with open(idx, "wb") as f:
        f.write(data)
    again = TrailStore.open(str(tmp_path / "trails.csv"))
    try:
        assert again.did_build
        assert again.get("evil-test-domain.com") == Trail("malware (test)", "(static)")
        assert again.ip_port(packed("6.6.6.6"), 8443) is not None
    finally:
        again.close()


def test_dead_build_leftovers_are_removed(tmp_path):
    (tmp_path / "trails.csv").write_text("a.example,x,(static)\n")
    leftover = tmp_path / "trails.csv.idx.tmp.999999"
    leftover.write_bytes(b"half-written")
    store = TrailStore.open(str(tmp_path / "trails.csv"))
    assert store.get("a.example") is not None and not leftover.exists()
    store.close()


def test_conformance_trail_file(tmp_path):
    with open(CONFORMANCE_TRAILS, "rb") as src:
        (tmp_path / "trails.csv").write_bytes(src.read())
    store = TrailStore.open(str(tmp_path / "trails.csv"))
    try:
        assert store.get("evil-parent.com") is not None
        assert store.ip_port(packed("dead::beef"), 443) is not None
        assert store.match_regex("dga1234.wildcard-test.com") is not None
        assert store.skipped == 0
    finally:
        store.close()


def test_url_markers_cover_every_url_trail(tmp_path):
    """Every URL-shaped key leaves a host or first-segment marker; markers are not counted as keys."""
    from core.trails.store import TrailStore

    rows = [("evil.example/a/b.php", "x (malware)", "(static)"), ("/gate.php?id=", "y (malware)", "(static)"),
            ("/wp-content/plugins/bad/x.js", "z (malware)", "(static)"), ("1.2.3.4/", "w (malware)", "(static)"),
            ("plain.example", "v (malware)", "(static)")]
    store = TrailStore.from_rows(rows, str(tmp_path))
    assert len(store) == len(rows)
    assert store.url_host("evil.example") and store.url_host("1.2.3.4")
    assert not store.url_host("plain.example") and not store.url_host("other.example")
    for candidate, expected in [("/gate.php?id=", True), ("/gate.php", True), ("/wp-content/plugins/o.js", True),
                                ("/wp-content/x", False), ("/wp-contents/x", False), ("/a/b.php", False)]:
        assert store.has_marker(store.url_marker(candidate)) is expected, candidate


def test_regex_suffix_prefilter_never_hides_a_match(tmp_path):
    """regex_may_match(name) is False only when no regex trail matches the name or one of its
    label-boundary suffixes: checked against per-suffix match_regex on matching and random names."""
    import random

    from core.trails.store import TrailStore

    patterns = [r"dga[0-9]+\.wildcard-test\.com", r"[a-z]{8}\.top", r"^anchored[0-9]\.net", r"x(\d)\1\.org",
                r"(?P<n>ab)+c\.info", r"[^.]+\.evil-[a-f0-9]{4}\.ru", r"Mixed[0-9]+\.COM", r".*tracker\.biz",
                r"^[a-z]{1,3}\-shop\.(com|top)$", r"www\.[a-z]{2}\-x\.top$", r"cost\$\.net", r"a^b\.net",
                r"(www\.)?opt-evil\.com", r"(foo|bar)baz[0-9]\.top", r"[Tt]rack(er|ing)[0-9]*\.net",
                r"c2-[0-9]{2,}\.(xyz|top)"]
    store = TrailStore.from_rows([(p, "x (malware)", "(static)") for p in patterns], str(tmp_path))
    names = ["dga77.wildcard-test.com", "a.dga77.wildcard-test.com", "abcdefgh.top", "q.abcdefgh.top",
             "anchored1.net", "b.anchored1.net", "x11.org", "w.x11.org", "ababc.info", "z.ababc.info",
             "foo.evil-beef.ru", "a.foo.evil-beef.ru", "mixed12.com", "s.mixed12.com", "a.b.tracker.biz",
             "ab-shop.com", "z.ab-shop.top", "www.ab-x.top", "q.www.ab-x.top", "opt-evil.com", "www.opt-evil.com",
             "a.www.opt-evil.com", "foobaz1.top", "q.barbaz2.top", "tracking.net", "x.tracker77.net",
             "c2-123.xyz", "y.c2-99.top"]
    rng = random.Random(3)
    alphabet = "abcdefgh0123456789.-"
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(3, 24))) + rng.choice(
        (".com", ".top", ".net", ".org", ".info", ".ru", ".biz")) for _ in range(5000)]
    seen_true = 0
    for name in names:
        parts = name.split(".")
        matched = any(store.match_regex(".".join(parts[i:])) is not None for i in range(len(parts) - 1))
        if matched:
            seen_true += 1
            assert store.regex_may_match(name), name
    assert seen_true >= 27
    assert not store.regex_may_match("ordinary.example.com")
    bucket = store._view.regex_trails().buckets["xyz"]  # only c2-[0-9]{2,}: every match holds "c2-"
    assert bucket.gate is not None and bucket.gate.search("www.site1.xyz") is None
    assert not store.regex_may_match("www.site1.xyz") and store.regex_may_match("c2-12.xyz")
