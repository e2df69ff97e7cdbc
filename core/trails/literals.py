"""Required literals of a regular expression: a cheap, provable prefilter for pattern families.

Where it sits: core/heuristics/patterns.py asks `required_literals(pattern)` for the User-Agent
patterns and the request families at startup; core/heuristics/http.py then searches an unseen
User-Agent or a request path for those literals (one combined scan of the lower-cased text) and
runs the full alternation only when one of them occurs (or for the few patterns without a usable
literal). core/trails/regex.py does the same for the regex/wildcard trails tried on DNS names.

`required_literals(pattern, flags)` walks the parsed pattern (Python's own parser) and returns a
set of lower-case strings such that EVERY match of the pattern contains at least one of them, or
None when it cannot prove such a set (then the pattern always runs). Rules: literal characters
and small character classes (digits, whitespace, short ranges) concatenate into runs; a group of
pure-literal alternatives joins the run as a set of strings (cross product capped at MAX_SET);
anchors and lookarounds are zero-width and keep a run going; a branch requires the union of its
alternatives' requirements (None if any alternative has none); a repeat with min >= 1 requires
what its body requires; min 0, `.`, negated classes and back references break the run. Among all
the requirements of a sequence the one with the longest shortest string wins.

Soundness: the prefilter runs on `text.lower()` and only for ASCII text (non-ASCII text always
runs the full regexes), because under IGNORECASE a few non-ASCII characters fold onto ASCII
letters (the Kelvin sign onto k, the long s onto s) and `str.lower` would not map them.
"""

from __future__ import annotations

import re
from re import _constants as sc  # type: ignore[attr-defined]
from re import _parser as sp  # type: ignore[attr-defined]
from typing import Any, Protocol

from core.accel import load as load_accel

MAX_SET = 64
MAX_RANGE = 16
WHITESPACE = " \t\n\r\f\v\x1c\x1d\x1e\x1f"  # what \s matches among ASCII characters
SPACE = frozenset(" ")  # every ASCII whitespace character is canonicalised to a space (see canon)
_CANON = str.maketrans(WHITESPACE[1:], " " * (len(WHITESPACE) - 1))
DIGITS = frozenset("0123456789")
COMMON = frozenset("abcdefghijklmnopqrstuvwxyz0123456789/.-_=?&%+")
Strings = frozenset[str]


class _Repeat(frozenset[str]):
    """The exact strings of a body repeated at least once (and possibly more)."""


def _char(code: int) -> str | None:
    char = chr(code)
    if not char.isascii():
        return None
    return " " if char in WHITESPACE else char.lower()


def canon(text: str) -> str | None:
    """The form literals are searched in: lower case, ASCII whitespace as spaces; None for
    non-ASCII text (which must always run the regexes, see the module doc)."""
    if not text.isascii():
        return None
    low = text.lower()
    return low if low.isprintable() else low.translate(_CANON)


class Gate(Protocol):
    """`search(text)` is truthy when one of the gate's literals occurs in `text`, else None."""

    def search(self, text: str, /) -> object | None: ...


def gate(literals: Strings | None) -> Gate | None:
    """One search for any of `literals` (None: no literals, nothing to gate): the compiled
    matcher of core/accel/_literals.c when it is built, else `gate_regex` (its specification)."""
    if not literals:
        return None
    accel = load_accel("_literals")
    if accel is not None:
        compiled: Gate = accel.Gate(sorted(literals))
        return compiled
    return gate_regex(literals)


def gate_regex(literals: Strings | None) -> re.Pattern[str] | None:
    """One regular-expression search for any of `literals` (None: no literals).

    The alternation is shaped as a trie (`a(?:bc|d)|x...`): Python's regex engine tries every
    branch of a flat alternation at every position, so a trie is several times faster on the
    ordinary text that matches nothing. A word that is a prefix of another makes the longer one
    redundant for a presence test, so the trie stops there."""
    if not literals:
        return None
    trie: dict[str | None, Any] = {}
    for word in literals:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[None] = True

    def build(node: dict[str | None, Any]) -> str:
        if None in node:
            return ""
        branches = [re.escape(char) + build(child) for char, child in sorted(
            (char, child) for char, child in node.items() if char is not None)]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return re.compile(build(trie))


def _class(items: list[tuple[Any, Any]]) -> Strings | None:
    chars: set[str] = set()
    for op, av in items:
        if op is sc.LITERAL:
            char = _char(av)
            if char is None:
                return None
            chars.add(char)
        elif op is sc.RANGE:
            low, high = av
            if high - low > MAX_RANGE or high >= 128:
                return None
            chars.update(c for c in map(_char, range(low, high + 1)) if c is not None)
        elif op is sc.CATEGORY and av is sc.CATEGORY_DIGIT:
            chars |= DIGITS
        elif op is sc.CATEGORY and av is sc.CATEGORY_SPACE:
            chars |= SPACE
        else:  # NEGATE, word classes, anything else: too wide to be a requirement
            return None
    return frozenset(chars) if chars else None


def _better(a: Strings | None, b: Strings | None) -> Strings | None:
    """The more selective of two valid requirements (longer shortest string, then fewer strings)."""
    if a is None or "" in a:
        return None if b is None or "" in b else b
    if b is None or "" in b:
        return a
    key_a, key_b = (min(map(_rarity, a)), -len(a)), (min(map(_rarity, b)), -len(b))
    return a if key_a >= key_b else b


def _rarity(text: str) -> int:
    """How selective a literal is in URLs: its length, plus a bonus per character that ordinary
    paths and queries rarely hold (quotes, brackets, angle brackets, spaces, ...)."""
    return len(text) + 4 * sum(1 for char in text if char not in COMMON)


def _element(op: Any, av: Any) -> tuple[Strings | None, Strings | None]:
    """(exact: every string the element can match, or None; required: see module doc)."""
    if op is sc.LITERAL:
        char = _char(av)
        exact = frozenset((char,)) if char is not None else None
        return exact, exact
    if op is sc.IN:
        chars = _class(av)
        return chars, chars
    if op is sc.AT or op is sc.ASSERT or op is sc.ASSERT_NOT:
        return frozenset(("",)), None
    if op is sc.SUBPATTERN:
        return _sequence(av[-1])
    if op is sc.BRANCH:
        exacts: set[str] = set()
        required: set[str] = set()
        exact_ok = required_ok = True
        for alternative in av[1]:
            exact, need = _sequence(alternative)
            if exact is None or len(exacts) + len(exact) > MAX_SET:
                exact_ok = False
            else:
                exacts |= exact
            if need is None or "" in need:
                required_ok = False
            else:
                required |= need
        return (frozenset(exacts) if exact_ok else None), (frozenset(required) if required_ok else None)
    if op in (sc.MAX_REPEAT, sc.MIN_REPEAT, sc.POSSESSIVE_REPEAT):
        low, high, body = av
        if low < 1:
            return None, None
        exact, need = _sequence(body)
        if low == high == 1:
            return exact, need
        return (None, need) if exact is None else (_Repeat(exact), need)
    if op is sc.ATOMIC_GROUP:
        return _sequence(av)
    return None, None


def _sequence(items: Any) -> tuple[Strings | None, Strings | None]:
    run: Strings | None = frozenset(("",))
    closed = False
    best: Strings | None = None
    for op, av in items:
        exact, need = _element(op, av)
        if isinstance(exact, _Repeat):
            # one or more copies: the first joins the run, the last starts the next run
            if run is not None and len(run) * len(exact) <= MAX_SET:
                best = _better(best, frozenset(a + b for a in run for b in exact))
            closed = True
            best = _better(best, run)
            best = _better(best, need)
            run = frozenset(exact)
            continue
        if exact is not None and run is not None and len(run) * len(exact) <= MAX_SET:
            run = frozenset(a + b for a in run for b in exact)
            continue
        closed = True
        best = _better(best, run)
        best = _better(best, need)
        run = exact if exact is not None else frozenset(("",))
    if not closed:
        return run, _better(None, run)
    return None, _better(best, run)


def required_literals(pattern: str, flags: int = re.IGNORECASE) -> Strings | None:
    """Lower-case strings of which every match of `pattern` contains one, or None (see module doc)."""
    try:
        parsed = sp.parse(pattern, flags)
    except (re.error, RecursionError, OverflowError):
        return None
    try:
        return _sequence(parsed.data if hasattr(parsed, "data") else parsed)[1]
    except RecursionError:
        return None


def union(patterns: list[str], flags: int = re.IGNORECASE) -> Strings | None:
    """The requirement of an alternation of `patterns` (None if any one has none)."""
    out: set[str] = set()
    for pattern in patterns:
        need = required_literals(pattern, flags)
        if need is None:
            return None
        out |= need
    return frozenset(out)
