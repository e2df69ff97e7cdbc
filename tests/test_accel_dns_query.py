"""The compiled DNS query path (core/accel/_dns.c datagram, query_seen) against the detector's Python path.

`Detector._udp` hands each datagram to `datagram` (its duplicate test, then, for port 53, the rules
of `query_seen`): a query whose domain check
misses (a cached miss, or a walk the C proves misses: whitelisted, or no suffix through the trail
bloom, no long first label, no regex trail by the gates' proofs), whose IP lookups are skipped and
whose step in the DNS-exhaustion window cannot alert is handled there, in order, with the live
state. Two production sensors (tests/kit) replay the same DNS-heavy captures, one with
`datagram` and one without (`_datagram = None`: the Python path, its specification): event
lines, the domain check's cache (its items in LRU order), hit and eviction counts, the exhaustion
table (every entry and prefix set) and its refusals must be equal after every batch -- with
repeated and new names, listed names and parents, regex trails (bucketed and generic, matches and
near misses), whitelisted names, long first labels, `.onion.` and `.ip-adress.com` forms, numeric
names, ignored suffixes, `.intranet.` names, PTR/AAAA and non-IN queries to a listed resolver, A
queries to it, responses, malformed and high-byte names, upper case, exhaustion floods that alert
and hold, windows that run out, a small table and a small cache, a trail-set generation change,
both batch walkers.
"""

from __future__ import annotations

import os
import random
import struct
from collections import OrderedDict

import pytest

from core.accel import load
from core.detect.detector import Detector
from core.heuristics import dns as dns_heuristics
from core.trails.store import TrailStore
from tests.accel_twins import counting, digest_each_batch
from tests.kit import SensorKit
from tests.kit import pcapgen as g

pytestmark = pytest.mark.skipif(load("_dns") is None, reason="core/accel/_dns.c is not built "
                                "(run tools/build_accel.py)")

T0 = 1_700_000_000
LISTED_RESOLVER = "198.51.100.53"
TRAILS = [
    ("evil-query.net", "malware (test)", "(static)"),
    ("listed-parent.net", "malware (test)", "(static)"),
    ("dyn-service.net", "dynamic dns (test)", "(static)"),
    (LISTED_RESOLVER, "malware (test)", "(static)"),
    ("hiddenservice.onion", "malware (test)", "(static)"),
    (r"zoneserveryu[0-9a-z]{0,}\.com", "malware (test)", "(static)"),  # a regex trail, bucketed by "com"
    (r"(7tno4hib47vlep5o|akdfrefdkm45tf33)\.[a-z0-9._-]+", "malware (test)", "(static)"),  # generic
]
LATE_TRAILS = [("late-domain.net", "malware (test)", "(static)")]  # in the reloaded set only
WHITELISTED = "whitelisted-cdn.net"
ODD_NAMES = (  # walks the C cannot prove (or that hit), and names it can
    "zoneserveryuab12.com", "x.zoneserveryu9.com", "zoneserver.com", "zoneserveryu.net", "akdfrefdkm45tf33.any.org",
    "akdfrefdkm45tf3.any.org", f"a.{WHITELISTED}", WHITELISTED, f"b.c.{WHITELISTED}", "averyveryverylonglabelwithoutdash1.site9.com",
    "averyveryverylonglabel-withdash1.site9.com", "exactly24characterslabel.site9.com", "hiddenservice.onion.site5.com",
    "evil-query.net.ip-adress.com", "other.ip-adress.com", "1.2.3.4", "1234", "10.0.0.1.in-addr.arpa",
    "late-domain.net", "www.late-domain.net",
)


def raw_query(labels: list[bytes], qtype: int = 1, qclass: int = 1, flags: int = 0x0100) -> bytes:
    name = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    return struct.pack("!HHHHHH", 0x4242, flags, 1, 0, 0, 0) + name + struct.pack("!HH", qtype, qclass)


def dns_capture(path: str, seed: int) -> None:
    rng = random.Random(seed)
    # three prefixes per base: entries the sweep of a full table keeps (so it also refuses), and
    # counts that reach a low threshold; names under the flooded bases too
    pool = [f"{prefix}.site{n}.{rng.choice(('com', 'net', 'co.uk'))}" for n in range(120)
            for prefix in ("www", "mail", "api")] + [f"www.flood-cdn{n}.com" for n in range(4)] * 20
    frames: list[tuple[float, bytes]] = []
    t = float(T0)
    for n in range(5000):
        t += rng.choice((0.01, 0.05, 0.2)) if n % 1500 else 75.0  # now and then past every window
        client = f"10.0.{n % 4}.{rng.randrange(2, 30)}"
        server = "192.0.2.53"
        kind = rng.random()
        if kind < 0.40:  # the same names again and again
            payload = g.dns_query(rng.choice(pool), txid=n & 0xFFFF)
        elif kind < 0.52:  # new prefixes under a few bases: counted, the bases flood, alert and hold
            payload = g.dns_query(f"r{rng.randrange(10**6)}.flood-cdn{n % 4}.com", txid=n)
        elif kind < 0.56:
            payload = g.dns_query(rng.choice(("evil-query.net", "a.b.listed-parent.net", "dyn-service.net",
                                              "www.dyn-service.net", "x.dyn-service.net") + ODD_NAMES))
        elif kind < 0.58:  # never seen before: the walk runs (in C when it provably misses)
            payload = g.dns_query(f"n{n}.site{rng.randrange(120)}.com", txid=n)
        elif kind < 0.60:  # never checked: ignored suffixes, .intranet. names (in the cache after a proxy request)
            name = rng.choice(("printer.local", "nas.lan", "a.intranet.example.com", "wpad.corp", "www.site1.local"))
            payload = g.dns_query(name)
            if n % 2:
                request = g.http_request("GET", f"http://{name}/", {"Host": name})
                frames.append((t, g.ether(g.ipv4(client, "192.0.2.80", g.tcp(30000 + n % 20000, 80, 0x18, request)))))
        elif kind < 0.66:  # a listed resolver: A queries take their IP lookups, PTR/AAAA/non-IN do not
            server = LISTED_RESOLVER
            qtype, qclass = rng.choice(((1, 1), (12, 1), (28, 1), (1, 3), (16, 1)))
            payload = raw_query([b"www", f"site{rng.randrange(120)}".encode(), b"com"], qtype, qclass)
        elif kind < 0.70:  # upper case, high bytes, a dot inside a label, a bare name, the root
            payload = rng.choice((g.dns_query("WWW.Site3.COM"), raw_query([b"caf\xe9", b"site5", b"com"]),
                                  raw_query([b"a.b", b"site6", b"com"]), raw_query([b"localhost"]),
                                  raw_query([b"evil-query.net:80"]), raw_query([b"evil-query", b"net."]),
                                  raw_query([]), raw_query([b"x\x00y", b"site7", b"net"])))
        elif kind < 0.74:  # responses, truncated queries, queries without a question
            name = rng.choice(pool)
            payload = rng.choice((g.dns_response(name, [("A", "93.184.216.34")]), g.dns_query(name)[:-3],
                                  g.dns_query(name)[:11], struct.pack("!HHHHHH", 1, 0x0100, 0, 0, 0, 0)))
        elif kind < 0.80:  # the same query twice in a row (the duplicate-datagram test)
            payload = g.dns_query(rng.choice(pool), txid=7)
            frames.append((t, g.ether(g.ipv4(client, server, g.udp(40000 + n % 20000, 53, payload)))))
            t += 0.001
        elif kind < 0.84:  # over IPv6
            payload = g.dns_query(rng.choice(pool), qtype="AAAA")
            frames.append((t, g.ether(g.ipv6("2001:db8::5", "2001:db8::53", g.udp(40000 + n % 20000, 53, payload)))))
            continue
        elif kind < 0.86:  # datagrams equal in their first 512 bytes only: the duplicate key's extent
            head = bytes(rng.randrange(256) for _ in range(512))
            for tail in (b"one", b"two"):
                frames.append((t, g.ether(g.ipv4(client, LISTED_RESOLVER, g.udp(41000, 9999, head + tail)))))
            continue
        else:  # other traffic between the queries
            frames.append((t, g.ether(g.ipv4(client, "93.184.216.34", g.tcp(40000 + n % 20000, 443, 0x02)))))
            continue
        frames.append((t, g.ether(g.ipv4(client, server, g.udp(40000 + n % 20000, 53, payload)))))
    g.write_pcap(path, frames)


def snapshot(detector: Detector) -> tuple:
    """The state the DNS query path changes: the domain check's cache (items in LRU order) and
    counters, the exhaustion table (every entry, prefix sets sorted) and its refusals."""
    domains, exhaustion = detector.domains, detector.heuristics.dns
    table = {base: (deadline, sorted(prefixes) if isinstance(prefixes, set) else prefixes, exhausted)
             for base, (deadline, prefixes, exhausted) in exhaustion.exhaustion.items()}
    return (list(domains.cache.items()), domains.cache_hits, domains.cache_evictions,
            domains.generation == domains.store.generation, table, list(exhaustion.exhaustion),
            dict(exhaustion.refused))


def replay(path: str, store: TrailStore, folder: str, compiled: bool, walker: bool, batch_size: int,
           cache_entries: int, threshold: int, generation_bump: bool) -> tuple[tuple, list[int], list[int]]:
    """-> (event lines and the final snapshot, a digest of the snapshot after every batch, the
    count of each answer of datagram)."""
    kit = SensorKit(store, folder=folder, whitelist=[WHITELISTED], EVENT_THROTTLE_MODE="off",
                    DNS_EXHAUSTION_THRESHOLD=threshold, DOMAIN_CACHE_ENTRIES=cache_entries)
    detector = kit.detector
    if not walker:
        detector._scan = None
    assert detector._datagram is not None
    # by datagram's answer: Python path, a repeat, a cached miss, a walk that missed, the same and an eviction
    counted, handled = counting(detector._datagram, 5)
    detector._datagram = counted if compiled else None
    digests = digest_each_batch(kit.sensor, lambda: snapshot(detector))
    kit.feed_pcap(path, batch_size=batch_size)
    if generation_bump:
        # the trail set changed under the checker: its cache must be dropped first
        store.generation += 1
        kit.feed_pcap(path, batch_size=batch_size)
        # a reload between batches (a new store, whose generation may equal the old one's): the
        # old store's bloom and regex proofs must not be read
        late = os.path.join(folder, "late")
        os.makedirs(late, exist_ok=True)
        detector.swap_store(TrailStore.from_rows(TRAILS + LATE_TRAILS, late))
        kit.feed_pcap(path, batch_size=batch_size)
    kit.close()
    assert detector.errors == {}
    return (kit.lines, *snapshot(detector)), digests, handled


@pytest.mark.parametrize("walker", [True, False], ids=["c-walk", "python-loop"])
def test_compiled_dns_queries_leave_events_cache_and_exhaustion_window_as_python(tmp_path, monkeypatch, walker):
    store = TrailStore.from_rows(TRAILS, str(tmp_path))
    path = str(tmp_path / "dns.pcap")
    dns_capture(path, seed=5)
    # (batch size, domain cache entries, exhaustion table keys, exhaustion threshold, trail generation change)
    runs = ((64, 16384, 40, 8, False), (1, 16384, 40, 8, False), (7, 60, 40, 8, False), (512, 16384, 40, 8, True),
            (64, 16384, 3, 8, False), (64, 16384, 40, 2, False), (64, 16384, 40, 3, False))
    for batch_size, cache_entries, max_keys, threshold, bump in runs:
        # a table that fills and is swept (query() and exhaustion_shortcut() read the constant)
        monkeypatch.setattr(dns_heuristics, "EXHAUSTION_MAX_KEYS", max_keys)
        run = (batch_size, cache_entries, max_keys, threshold, bump)
        args = (batch_size, cache_entries, threshold, bump)
        fast, fast_digests, handled = replay(path, store, str(tmp_path), True, walker, *args)
        slow, slow_digests, _ = replay(path, store, str(tmp_path), False, walker, *args)
        assert fast == slow, run
        assert fast_digests == slow_digests, run  # after every batch, not only at the end
        lines, _, hits, evictions, _, _, _, refused = slow
        # the compiled path did the common cases (cached misses and walks, evictions with a small
        # cache), and the rest stayed in Python
        python, repeats, cached, walked, evicted = handled
        assert repeats > 10 or walker, handled  # (the C walk ends repeats itself)
        assert python > 100, handled
        if max_keys > 10:  # (a full exhaustion table leaves new bases to Python)
            assert (cached > 50 and walked + evicted > 50) if walker else cached + walked > 0, handled
        assert cached < hits
        if cache_entries < 1000:
            assert evictions > 100 and (evicted > 10 or not walker), handled
        text = "\n".join(lines)
        assert "potential dns exhaustion" in text and "evil-query.net" in text and "(x).dyn-service.net" in text
        assert "(a.b).listed-parent.net" in text and LISTED_RESOLVER in text
        assert "zoneserveryuab12.com" in text and "(x.)zoneserveryu9.com" in text
        assert "akdfrefdkm45tf33.any.org" in text and "long domain" in text
        assert "evil-query.net(.ip-adress.com)" in text and "hiddenservice.onion(.site5.com)" in text
        if max_keys < 10:  # a full table of flooded bases refuses new ones
            assert refused["dns_exhaustion"] > 0
        assert ("late-domain.net" in text) == bump


def test_query_seen_answers_and_refuses_what_it_cannot_read(tmp_path):
    accel = load("_dns")
    assert accel is not None
    store = TrailStore.from_rows(TRAILS, str(tmp_path))
    cache: OrderedDict[str, None] = OrderedDict([("www.site1.com", None), ("other.site2.com", None)])

    def state(cache=cache, ignored=frozenset(), exhaustion=None, entries=16384, whitelist=None):
        return (cache, ignored, exhaustion, entries, whitelist, store.domain_suffixes, store.regex_proofs())

    for args in ((b"x", 1, 1, state(), 7), ("text", 1, 1, state()), (b"", 1.5, 1, state()), (b"", 1, 1, state()[:6]),
                 (b"", 1, 1, state(cache=[])), (b"", 1, 1, state(whitelist=[]))):
        with pytest.raises(TypeError):
            accel.query_seen(*args)
    query = g.dns_query("www.site1.com")
    with pytest.raises(TypeError):  # a malformed window is an error, not a guess
        accel.query_seen(query, 1, 1, state(exhaustion=({}, 5)))
    assert accel.query_seen(query, 1, 1, state()) == 1
    assert list(cache) == ["other.site2.com", "www.site1.com"]  # moved to the end, as check() does
    assert accel.query_seen(query, 1, 0, state()) == 0  # an A query's IP lookups
    assert accel.query_seen(query, 1, 1, state(ignored=frozenset({"com"}))) == 0  # an ignored suffix
    assert accel.query_seen(g.dns_query("new.site3.com"), 1, 1, state(entries=3)) == 2  # the walk misses: cached
    assert accel.query_seen(g.dns_query("new.site4.com"), 1, 1, state(entries=3)) == 3  # ... and the oldest evicted
    assert list(cache) == ["www.site1.com", "new.site3.com", "new.site4.com"]
    for name in ("evil-query.net", "a.listed-parent.net", "zoneserveryu7.com"):  # the walk may hit: Python
        assert accel.query_seen(g.dns_query(name), 1, 1, state()) == 0
    assert accel.query_seen(g.dns_query(f"a.{WHITELISTED}"), 1, 1, state(whitelist={WHITELISTED})) == 2


def test_a_trail_set_reloaded_in_place_is_seen_before_any_cached_answer(tmp_path):
    """The store maps a new index (the same TrailStore, its generation one up): the first query
    after it must go through the Python path, which drops the domain check's answers of the old
    set, and the compiled path must read the new set's bloom and regex proofs from then on."""
    csv = tmp_path / "trails.csv"

    def replay(compiled: bool) -> tuple:
        csv.write_text("".join(f"{trail},{info},{ref}\n" for trail, info, ref in TRAILS))
        store = TrailStore.open(str(csv), index_dir=str(tmp_path))
        kit = SensorKit(store, folder=str(tmp_path), EVENT_THROTTLE_MODE="off")
        detector = kit.detector
        if not compiled:
            detector._datagram = None

        def query(name: str, n: int) -> tuple[float, bytes]:
            return T0 + n, g.ether(g.ipv4("10.0.0.5", "192.0.2.53", g.udp(40000 + n, 53, g.dns_query(name, txid=n))))

        first = [query("www.site1.com", 0), query("www.site1.com", 1), query("late-domain.net", 2)]
        g.write_pcap(str(tmp_path / "first.pcap"), first)
        kit.feed_pcap(str(tmp_path / "first.pcap"))
        csv.write_text("".join(f"{trail},{info},{ref}\n" for trail, info, ref in TRAILS + LATE_TRAILS))
        assert store.reopen_if_changed(wait=True)
        connect = g.http_request("CONNECT", "other.site2.com:443", {}, host=None)
        second = [query("www.site1.com", 3),
                  (T0 + 4, g.ether(g.ipv4("10.0.0.5", "192.0.2.80", g.tcp(30000, 8080, 0x18, connect)))),
                  query("late-domain.net", 5), query("www.site1.com", 6)]
        g.write_pcap(str(tmp_path / "second.pcap"), second)
        kit.feed_pcap(str(tmp_path / "second.pcap"))
        kit.close()
        assert detector.errors == {}
        return (kit.lines, *snapshot(detector))

    fast, slow = replay(True), replay(False)
    assert fast == slow
    assert any("late-domain.net" in line for line in slow[0])
