"""The packet-path shortcuts of the heuristics behave exactly like the plain rules they replace."""

import random

from core.heuristics.dns import base_domain
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


def test_packed_table_matches_dict_table():
    rng = random.Random(5)
    plain = WindowTable("plain", 30, 5, 16, 50)
    packed = WindowTable("packed", 30, 5, 16, 50, packed=True)
    for step in range(20000):
        sec = 1000 + step // 40
        key = bytes((rng.randrange(40),))
        port = rng.randrange(12)
        assert plain.observe(key, port, sec) == packed.observe(key, port, sec), step
        if step % 400 == 0:
            plain.expire(sec)
            packed.expire(sec)
        assert plain.count(key, sec) == packed.count(key, sec)
    assert plain.stats() == {**packed.stats()}
