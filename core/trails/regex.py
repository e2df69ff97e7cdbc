"""Regex/wildcard trails: every pattern row of the trail set (no cap), grouped for cheap misses.

Where it sits: under core/trails/store.py, which builds `RegexTrails` from the index's REGEX
section the first time a name needs it; core/detect/domains.py asks the store `regex_may_match(name)`
(one suffix-anchored search for all suffixes of a name) and then `match_regex(suffix)`.
Patterns are bucketed by the literal last label they require (`com`, `top`, ...); each bucket's
members are tried through one combined alternation, patterns with backreferences, named groups
or global flags one by one. Before the suffix search a bucket checks the literals every match of
its members must hold (core/trails/literals.py); a name holding none of them is rejected without the
regex engine.
"""

from __future__ import annotations

import re

from core.trails import index as ix
from core.trails.literals import Gate, canon, gate, union

_TAIL_LABEL = re.compile(r"(\\*)\\\.([a-z0-9-]+)\Z", re.I)
_TAIL_GROUP = re.compile(r"(\\*)\\\.\((?:\?:)?([a-z0-9-]+(?:\|[a-z0-9-]+)*)\)\Z", re.I)
# Anchors inside a member (after its redundant leading ^ / trailing $ are dropped) that would not
# survive the suffix wrapper; `[^` is a negated class, not an anchor.
_ANCHORS = re.compile(r"(?<!\[)\^|(?<!\\)\$|\\A|\\Z|\(\?<")


def _unanchored(text: str) -> str:
    """A member without the ^ / $ that full-match semantics make redundant at its very ends."""
    if text.startswith("^"):
        text = text[1:]
    if text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1]
    return text
_SOLO = re.compile(r"\\[1-9]|\(\?P=|\(\?P<|\(\?[aiLmsux-]+\)")


def _top_level_alternation(text: str) -> bool:
    depth, i, in_class = 0, 0, False
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if text[i + 1:i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return True
        i += 1
    return False


def literal_last_labels(text: str) -> list[str] | None:
    """The last label(s) every full match of `text` must end with (`\\.com`, `\\.(com|net)`), or None."""
    body = text
    if body.endswith("$") and (len(body) - 1 - len(body[:-1].rstrip("\\"))) % 2 == 0:
        body = body[:-1]  # an unescaped end anchor
    if _top_level_alternation(body):
        return None
    for pattern in (_TAIL_LABEL, _TAIL_GROUP):
        m = pattern.search(body)
        if m and len(m.group(1)) % 2 == 0:
            return [label.lower() for label in m.group(2).split("|")]
    return None


def _without_tail(text: str) -> str:
    """A bucketed member without the literal last label(s) its bucket already guarantees: the
    literals a name must hold beyond its TLD (`c2-` of `c2-[0-9]+\\.(xyz|top)`)."""
    body = text[:-1] if text.endswith("$") and not text.endswith("\\$") else text
    for pattern in (_TAIL_LABEL, _TAIL_GROUP):
        m = pattern.search(body)
        if m and len(m.group(1)) % 2 == 0:
            return body[:m.end(1)]
    return text


def _alternative(text: str) -> str:
    """One member inside a combined alternation, case-insensitive only when written with capitals
    (as compile_trail compiles it alone)."""
    return f"(?:{text})" if text == text.lower() else f"(?i:{text})"


class _Group:
    """Patterns tried together: one combined alternation rejects misses, then the first hit is found.
    Patterns that cannot share an alternation (backreferences, named groups, global flags) are
    tried one by one."""

    def __init__(self, members: list[tuple[int, str, re.Pattern[str]]], bucketed: bool = False) -> None:
        self.plain = [(p, c) for p, t, c in members if not _SOLO.search(t)]
        self.solo = [(p, c) for p, t, c in members if _SOLO.search(t)]
        self.combined: re.Pattern[str] | None = None
        self.suffix: re.Pattern[str] | None = None
        self.gate: Gate | None = None
        texts = [t for _, t, _ in members if not _SOLO.search(t)]  # the plain members' patterns
        if not texts:
            return
        self.combined = ix.compile_trail("|".join(map(_alternative, texts)))
        bare = [_unanchored(t) for t in texts]
        if any(_ANCHORS.search(t) for t in bare):
            return
        self.suffix = ix.compile_trail(rf"(?:^|\.)(?:{'|'.join(map(_alternative, bare))})$")
        # Every full match of a plain member holds one of these lower-case literals (None: some
        # member has none): a name holding none of them cannot match, nor can its suffixes. In a
        # bucket the last label is common to all names looked at, so it is left out of the proof.
        literals = union([_without_tail(t) for t in texts] if bucketed else texts)
        if literals and "" not in literals:
            self.gate = gate(literals)

    def may_match_suffix(self, name: str, text: str | None) -> bool:
        """False only when no member can fully match `name` or any of its label-boundary suffixes
        (one search instead of one fullmatch per suffix). `text` is canon(name): lower case,
        ASCII only, the form the gate's literals are proven for (None: no gate)."""
        if self.solo or (self.plain and self.suffix is None):
            return True
        if self.suffix is None:
            return False
        if text is not None and self.gate is not None and self.gate.search(text) is None:
            return False
        return self.suffix.search(name) is not None

    def proof(self) -> Gate | bool:
        """What `may_match_suffix` needs for an ASCII name (whose canon() is the name itself):
        False, it is always False (no member); a Gate, it is False when the gate finds none of
        its literals in the name; True, only the patterns can tell (core/accel/_dns.c reads this)."""
        if self.solo or (self.plain and self.suffix is None):
            return True
        if self.suffix is None:
            return False
        return self.gate if self.gate is not None else True

    def first(self, name: str) -> int | None:
        best = None
        if self.plain and (self.combined is None or self.combined.fullmatch(name) is not None):
            for position, pattern in self.plain:
                if pattern.fullmatch(name) is not None:
                    best = position
                    break
        for position, pattern in self.solo:
            if best is not None and position > best:
                break
            if pattern.fullmatch(name) is not None:
                return position
        return best


class RegexTrails:
    """Every regex/wildcard trail (no cap), bucketed by the literal last label it requires."""

    def __init__(self, entries: list[tuple[str, int]]) -> None:
        self.entries = entries
        buckets: dict[str, list[int]] = {}
        generic: list[int] = []
        compiled: dict[int, re.Pattern[str]] = {}
        for position, (text, _) in enumerate(entries):
            pattern = ix.compile_trail(text)
            if pattern is None:
                continue
            compiled[position] = pattern
            labels = literal_last_labels(text)
            if labels:
                for label in labels:
                    buckets.setdefault(label, []).append(position)
            else:
                generic.append(position)

        def group(positions: list[int], bucketed: bool) -> _Group:
            return _Group([(p, entries[p][0], compiled[p]) for p in positions], bucketed)

        self.buckets = {label: group(positions, True) for label, positions in buckets.items()}
        self.generic = group(generic, False)

    def may_match_suffix(self, name: str) -> bool:
        """False only when no trail can match `name` or a suffix of it (see _Group)."""
        text = canon(name)
        bucket = self.buckets.get(name.rpartition(".")[2])
        if bucket is not None and bucket.may_match_suffix(name, text):
            return True
        return self.generic.may_match_suffix(name, text)

    def proofs(self) -> tuple[dict[str, Gate | bool], Gate | bool]:
        """The `proof` of each bucket (by its last label) and of the generic group: for an ASCII
        name, `may_match_suffix` is False when neither its last label's bucket nor the generic
        group can match by these."""
        return {label: group.proof() for label, group in self.buckets.items()}, self.generic.proof()

    def match(self, name: str) -> tuple[str, int] | None:
        best = None
        bucket = self.buckets.get(name.rpartition(".")[2])
        if bucket is not None:
            best = bucket.first(name)
        other = self.generic.first(name)
        if other is not None and (best is None or other < best):
            best = other
        return None if best is None else self.entries[best]
