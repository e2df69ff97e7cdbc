"""The packet-path shortcuts of the heuristics behave exactly like the plain rules they replace."""

import random

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
