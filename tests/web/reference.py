"""An independent Python statement of the client's aggregation rules, used by the browser tests to
check the threat counts the page shows (same keys as html/js/aggregate.js, written separately;
severity is the one rule of core/events/severity.py, which the browser is tested against).

Where it sits: test oracle only. Reads a day file with core.events.event.parse_line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.events.event import parse_line
from core.events.severity import Severity

FLOOD_SOURCES = 50


def normalize(trail: str) -> str:
    return re.sub(r"\s+", " ", trail.lower().replace("(", "").replace(")", "")).strip()


def kind_of(info: str, ref: str) -> str:
    if re.search(r"dns exhaustion", info, re.I):
        return "dns"
    if re.search(r"\bdga\b|(entropy|consonant) threshold no such domain", info, re.I):
        return "dga"
    if "(heuristic)" in ref.lower():
        return "heur"
    return "default"


RULE = Severity(None)     # the server's default rule (core/events/severity.py), as the test servers run it
LEVELS = ("low", "medium", "high")


def severity(info: str, ref: str) -> int:
    return LEVELS.index(RULE(info, ref))


@dataclass
class RefThreat:
    type: str
    trail: str
    info: str
    sev: int
    count: int = 0
    src: set[str] = field(default_factory=set)
    dst: set[str] = field(default_factory=set)
    dport: set[str] = field(default_factory=set)


def _v(x: str) -> str:
    return "" if x == "-" else x


def aggregate(lines: list[str]) -> list[RefThreat]:
    """Two passes: find flood trails (> 50 distinct sources among default-kind events), then fold."""
    rows = [p for p in (parse_line(line) for line in lines) if p is not None]
    sources: dict[str, set[str]] = {}
    for p in rows:
        if kind_of(_v(p.info), _v(p.reference)) == "default":
            sources.setdefault(normalize(_v(p.trail)), set()).add(_v(p.src_ip))
    threats: dict[tuple[str, ...], RefThreat] = {}
    for p in rows:
        src, trail, info, ref = _v(p.src_ip), _v(p.trail), _v(p.info), _v(p.reference)
        kind = kind_of(info, ref)
        norm = normalize(trail)
        if kind == "default" and len(sources[norm]) > FLOOD_SOURCES:
            kind = "flood"
        key = {"dns": (kind, info, norm), "dga": (kind, src, info), "heur": (kind, src, trail, info),
               "flood": (kind, norm), "default": (kind, src, norm)}[kind]
        t = threats.get(key)
        if t is None:
            t = threats[key] = RefThreat(_v(p.type), trail, info, severity(info, ref))
        t.count += 1
        t.sev = max(t.sev, severity(info, ref))
        for name, value in (("src", src), ("dst", _v(p.dst_ip)), ("dport", _v(p.dst_port))):
            for part in value.split(","):
                if part.strip():
                    getattr(t, name).add(part.strip())
    return list(threats.values())
