"""The compiled literal gates (core/accel/_literals.c) against their specification, the trie
regex of core.trails.literals.gate_regex: same answer for every text, on the shipped pattern
sets (built once with and once without the accelerator) and on random literal sets."""

from __future__ import annotations

import random
import re

import pytest

from core.accel import load
from core.heuristics.patterns import load_patterns
from core.trails import literals

_literals = load("_literals")
pytestmark = pytest.mark.skipif(_literals is None, reason="core/accel/_literals.c is not built "
                                "(run tools/build_accel.py)")

PIECES = ["/", ".", "..", "?", "=", "&", "'", " ", "%2e", "etc/passwd", "select", "union", "<script", "wp-",
          "admin", ".php", "cmd", "é", "ü", "\u2028", "jndi:", "${", "a", "b", "x", "0", "-", "_", "\t"]


def texts(count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 12)))


def gates_of(patterns):
    out = {"request": patterns.request_gate, "paths": patterns.paths_gate, "ua": patterns.ua_gate}
    for n, (_, path_gate, _) in enumerate(patterns.paths):
        out[f"path{n}"] = path_gate
    return out


def test_shipped_gates_answer_like_their_regexes(monkeypatch):
    fast = gates_of(load_patterns())
    monkeypatch.setenv("MALTRAIL_PURE_PYTHON", "1")
    slow = gates_of(load_patterns())
    assert fast.keys() == slow.keys()
    assert all(gate is None or isinstance(gate, re.Pattern) for gate in slow.values())
    compiled = [name for name, gate in fast.items() if isinstance(gate, _literals.Gate)]
    assert {"request", "paths", "ua"} <= set(compiled)
    samples = list(texts(6000, 1)) + ["/static/img1.png", "/index.php?id=1' or 1=1", "mozilla/5.0 (x11)"]
    hits = 0
    for name in compiled:
        for text in samples:
            expected = slow[name].search(text) is not None
            assert (fast[name].search(text) is not None) == expected, (name, text)
            hits += expected
    assert 0 < hits < len(compiled) * len(samples)  # both answers occur


def test_random_literal_sets():
    rng = random.Random(2)
    for _ in range(300):
        words = frozenset("".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 3)))[:rng.randrange(1, 6)]
                          for _ in range(rng.randrange(1, 30)))
        fast, slow = _literals.Gate(sorted(words)), literals.gate_regex(words)
        for text in texts(200, rng.random()):
            assert (fast.search(text) is not None) == (slow.search(text) is not None), (sorted(words), text)


def test_edge_cases():
    assert _literals.Gate([""]).search("anything") is True  # the empty literal, like the empty regex
    assert _literals.Gate(["ab"]).search("a") is None
    assert _literals.Gate(["ab"]).search("xab") is True
    assert _literals.Gate(["é"]).search("caf\u00e9") is True
    assert _literals.Gate(["\u00a9"]).search("\u00e9") is None  # no match across UTF-8 byte boundaries
    assert _literals.Gate(["x"]).search("\ud800") is True  # not encodable: the regexes decide
    assert _literals.Gate([]).search("abc") is None
    with pytest.raises(TypeError):
        _literals.Gate([b"bytes"])
    with pytest.raises(TypeError):
        _literals.Gate(["x"]).search(b"x")
    assert literals.gate(frozenset()) is None
