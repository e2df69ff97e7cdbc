"""The packet-path shortcuts of the heuristics behave exactly like the plain rules they replace."""

import random

import pytest

from core.config import load_config
from core.heuristics.dns import base_domain
from core.heuristics.http import HttpHeuristics
from core.heuristics.state import WindowTable


def _rfind_base(name):
    # the cut the DNS exhaustion hook computes with rfind (see DnsHeuristics.query)
    last = name.rfind(".")
    cut = name.rfind(".", 0, last)
    if cut < 0:
        return None
    if last - cut <= 4 and name.rfind(".", 0, cut) >= 0:
        cut = name.rfind(".", 0, cut)
    return name[:cut], name[cut + 1:]


def test_rfind_base_domain_matches_split_rule():
    rng = random.Random(3)
    labels = ["", "a", "ab", "abc", "abcd", "www", "co", "uk"]
    for _ in range(50000):
        name = ".".join(rng.choice(labels) for _ in range(rng.randrange(1, 7)))
        expected = base_domain(name) if name.count(".") >= 2 else None
        assert _rfind_base(name) == expected, name


class _ReferenceWindow:
    """The window rule with every key a plain {item: last sec} dict: what WindowTable stores in
    its compact single-observation forms (an int for ports, an (item, sec) pair otherwise) must
    answer exactly like this."""

    def __init__(self, window, threshold, per_key, max_keys):
        self.window, self.threshold, self.per_key, self.max_keys = window, threshold, per_key, max_keys
        self.table, self.alerted, self.last_sweep = {}, {}, -1
        self.refused = self.evicted = self.trimmed = self.alerts = 0

    def observe(self, key, item, sec):
        items = self.table.get(key)
        if items is None:
            if len(self.table) >= self.max_keys and not self._make_room(sec):
                self.refused += 1
                return False
            self.table[key] = {item: sec}
            return self.threshold < 1
        items[item] = sec
        if len(items) <= self.threshold:
            return False
        if len(items) > self.per_key:
            del items[next(iter(items))]
            self.trimmed += 1
        if sec < self.alerted.get(key, 0):
            return False
        for old in [old for old, seen in items.items() if seen <= sec - self.window]:
            del items[old]
        if len(items) > self.threshold:
            self.alerted[key] = sec + self.window
            self.alerts += 1
            return True
        return False

    def _make_room(self, sec):
        if sec == self.last_sweep:
            return False
        self.last_sweep = sec
        doomed = [key for key, items in self.table.items()
                  if (len(items) <= 1 and key not in self.alerted) or max(items.values()) <= sec - self.window]
        for key in doomed:
            del self.table[key]
            self.alerted.pop(key, None)
        self.evicted += len(doomed)
        return len(self.table) < self.max_keys

    def expire(self, sec):
        for key in [key for key, until in self.alerted.items() if until <= sec]:
            del self.alerted[key]
        for key in [key for key, items in self.table.items()
                    if key not in self.alerted and max(items.values()) <= sec - self.window]:
            del self.table[key]

    def count(self, key, sec):
        return sum(1 for seen in self.table.get(key, {}).values() if seen > sec - self.window)


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("max_keys", [50, 12])
def test_compact_single_observations_match_the_dict_rule(packed, max_keys):
    """Port items packed into an int, other items (path segments, addresses) kept as a pair: the
    same alerts, counts, evictions and refusals as the plain dict rule, full tables included."""
    rng = random.Random(5)
    reference = _ReferenceWindow(30, 5, 16, max_keys)
    table = WindowTable("table", 30, 5, 16, max_keys, packed=packed)
    for step in range(20000):
        sec = 1000 + step // 40
        key = bytes((rng.randrange(40),))
        item = rng.randrange(12) if packed else rng.choice(("a", "b", "static", "x" * (step % 7)))
        if rng.random() < 0.3:  # a burst of one item for one key: the single form's same-item path
            for _ in range(3):
                assert reference.observe(key, item, sec) == table.observe(key, item, sec), step
        assert reference.observe(key, item, sec) == table.observe(key, item, sec), step
        if step % 400 == 0:
            reference.expire(sec)
            table.expire(sec)
        assert reference.count(key, sec) == table.count(key, sec), step
        assert reference.count(key, sec + 29) == table.count(key, sec + 29), step  # last-seen times too
    assert set(reference.table) == set(table.table)
    stats = table.stats()
    assert (stats["refused"], stats["evicted"], stats["trimmed"], stats["alerts"]) == (
        reference.refused, reference.evicted, reference.trimmed, reference.alerts)


@pytest.mark.parametrize("packed", [True, False])
def test_expire_drops_exactly_the_keys_last_seen_a_window_ago_or_earlier(packed):
    """The expiry walk's inlined last-seen test at its boundary: a key last seen at sec - window
    goes, one a second later stays, for the smallest and largest port of a packed observation,
    a pair and a dict."""
    reference = _ReferenceWindow(30, 5, 16, 1000)
    table = WindowTable("table", 30, 5, 16, 1000, packed=packed)
    items = (0, 1, 65535) if packed else ("", "a", "z" * 40)
    for last in (1068, 1069, 1070, 1071):
        for index, item in enumerate(items):
            for window in (reference, table):
                window.observe(bytes((last - 1000, index)), item, last)
                window.observe(b"dict" + bytes((last - 1000,)), item, last - 5)  # several items: a dict
                window.observe(b"dict" + bytes((last - 1000,)), "other" if not packed else 7, last)
    reference.expire(1100)
    table.expire(1100)
    assert set(table.table) == set(reference.table)
    assert {key[-2 if len(key) == 2 else -1] for key in table.table} == {71}  # 1070 = 1100 - window: gone


def test_ua_prefilter_never_hides_a_listed_agent():
    """Every entry of data/ua.txt still matches through the prefilter, and ordinary browsers skip
    the full alternation (it costs hundreds of µs on a long User-Agent)."""
    import re as _re

    from core.heuristics.patterns import UA_FILE, _read_list, load_patterns

    patterns = load_patterns()
    engine = HttpHeuristics(load_config(), None, patterns, lambda event: None, lambda name: True)
    samples = ["sqlmap/1.7", "Mozilla/5.0 zgrab/0.x", "Nikto/2.5", "masscan/1.3", "-", "", "Mozilla/5.0",
               "() { :; }; /bin/bash", "${jndi:ldap://x}", "python-nmap", "Mozilla/5.0 Jorgee"]
    for ua in samples:
        if patterns.ua.search(ua):
            assert engine._ua_candidate(ua), ua
    for entry in _read_list(UA_FILE):
        literal = entry.replace("\\b", "")
        if _re.fullmatch(r"[a-z0-9_ -]+", literal) and patterns.ua.search(f"Mozilla/5.0 ({literal})"):
            assert engine._ua_candidate(f"Mozilla/5.0 ({literal})"), entry
    chrome = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
              "Safari/537.36")
    assert not engine._ua_candidate(chrome)
