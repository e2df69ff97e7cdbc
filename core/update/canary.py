"""Canary check: no published domain or regex trail may fire on a popular domain.

Where it sits: update (core/update/orchestrate.py) -> after every source is merged and before the
rows are written: `load_canaries()` gives the popular names (the top `CANARY_TOP` of a public
top-sites list fetched at each update, kept as a last good copy under the same shrink guard as the
feeds, `keep_good_copy` in core/update/feedrun.py, plus the small bundled seed
data/canary_domains.txt); `canary_hits()` finds the trails that would fire on one of them, and
`TrailRules` (core/update/sanity.py) refuses those rows, so the one validation stays the one place
a row is refused. Each refusal names the trail, its source (reference) and the canary.

"Would fire" follows the sensor's domain rules (core/detect/domains.py): a domain trail fires on
itself and on every name below it, except where `provider_exempt` says the sensor would not report
it (a dynamic-DNS or free-hosting provider's own name, service prefixes); a regex trail fires when
the store's regex matcher (core/trails/regex.py) matches the name or one of its parents. The
operator's own `(custom)` rows are not checked: they say what the operator wants reported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.detect.domains import provider_exempt
from core.trails import index as ix
from core.trails.regex import RegexTrails
from core.update.feedrun import FeedCache, FeedStatus, keep_good_copy
from core.update.feeds import FeedContext, FeedError

CANARY_URL = "https://downloads.majestic.com/majestic_million.csv"
CANARY_TOP = 10_000  # the most popular names only: further down, real malicious domains appear
CANARY_NAME = "canary"
CANARY_MIN = 100  # a fetched list with fewer valid names is refused as broken
CANARY_GRACE = 30 * 86400  # top-sites lists change slowly: a month-old copy is still good
SEED_FILE = "canary_domains.txt"
CUSTOM_REFERENCE = "(custom)"
_NAME = re.compile(r"(?=.{4,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")
_REGEX_HINT = re.compile(r"[\\()\[\]*+|^${}?]")  # cheap test before the index's classification


@dataclass
class Canaries:
    """The popular names and where they came from (reported in the summary and health file)."""

    names: frozenset[str]
    source: str
    status: str = "ok"
    error: str | None = None
    fetched: int = 0
    seed: int = 0


@dataclass
class CanaryHit:
    trail: str
    source: str
    canary: str


@dataclass
class CanaryReport:
    hits: dict[str, CanaryHit] = field(default_factory=dict)

    def as_list(self) -> list[dict[str, str]]:
        return [{"trail": h.trail, "source": h.source, "canary": h.canary} for h in self.hits.values()]


def parse_top_list(lines: Iterable[str], top: int = CANARY_TOP) -> list[str]:
    """Domain names of a ranked list, most popular first: Majestic's CSV (`rank,tldrank,domain,...`),
    `rank,domain` or one name a line. Lines that hold no valid name are skipped."""
    names: list[str] = []
    for line in lines:
        if len(names) >= top:
            break
        fields = line.strip().lower().split(",")
        name = fields[2] if len(fields) > 2 else fields[-1]
        name = name.strip().strip('"').rstrip(".")
        if name.startswith("www."):
            name = name[4:]
        if _NAME.match(name):
            names.append(name)
    return names


def load_seed(data_dir: str) -> list[str]:
    path = os.path.join(data_dir, SEED_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_top_list((line for line in handle if not line.startswith("#")), top=1 << 20)
    except OSError:
        return []


def load_canaries(ctx: FeedContext | None, cache: FeedCache | None, data_dir: str, ratio: float,
                  url: str = CANARY_URL) -> Canaries:
    """The seed plus, when `ctx` is given (not offline), the fetched top list; a failed, broken or
    shrunken answer falls back to the last good copy (core/update/feedrun.py `keep_good_copy`)."""
    seed = load_seed(data_dir)
    names = set(seed)
    status = FeedStatus(CANARY_NAME, "ok")
    fetched: dict[str, tuple[str, str]] | None = None
    if ctx is None:
        status.status, status.error = "failed", "not fetched (offline or feed updates off)"
    else:
        list_ctx = ctx.for_feed(CANARY_NAME)
        try:
            top = parse_top_list(list_ctx.lines(url))
            if len(top) < CANARY_MIN:
                raise FeedError(f"only {len(top)} valid names (at least {CANARY_MIN} expected)")
            fetched = dict.fromkeys(top, ("canary", url))
        except FeedError as ex:
            status.status, status.error = "failed", str(ex)
        finally:
            list_ctx.close()
    kept = keep_good_copy(CANARY_NAME, fetched, status, cache, CANARY_GRACE, ratio)
    if kept:
        names.update(kept)
    source = url if kept else "bundled seed"
    return Canaries(frozenset(names), source, status.status, status.error, len(kept or ()), len(seed))


def _regex_hits(rows: Mapping[str, tuple[str, str]], names: frozenset[str]) -> dict[str, str]:
    """Regex trail -> the first canary it fires on, with the store's matcher; a matched trail is
    taken out and the scan repeated so every offending trail is found, not just the first."""
    patterns = [key for key, (_info, ref) in rows.items()
                if ref != CUSTOM_REFERENCE and _REGEX_HINT.search(key) and ix.is_regex_trail(key)]
    hits: dict[str, str] = {}
    while patterns:
        matcher = RegexTrails([(text, i) for i, text in enumerate(patterns)])
        found: dict[str, str] = {}
        for name in sorted(names):
            if not matcher.may_match_suffix(name):
                continue
            labels = name.split(".")
            for i in range(len(labels) - 1):
                match = matcher.match(".".join(labels[i:]))
                if match is not None and match[0] not in found:
                    found[match[0]] = name
                    break
        if not found:
            break
        hits.update(found)
        patterns = [text for text in patterns if text not in found]
    return hits


def canary_hits(rows: Mapping[str, tuple[str, str]], canaries: Canaries) -> CanaryReport:
    """Every domain or regex trail of the merged set that would fire on a canary name."""
    report = CanaryReport()
    for name in sorted(canaries.names):
        candidate, start = name, 0
        while True:
            pair = rows.get(candidate)
            if pair is not None and pair[1] != CUSTOM_REFERENCE and candidate not in report.hits \
                    and not provider_exempt(name, candidate, pair[0]):
                report.hits[candidate] = CanaryHit(candidate, pair[1], name)
            dot = name.find(".", start)
            if dot < 0:
                break
            start = dot + 1
            candidate = name[start:]
    for trail, name in _regex_hits(rows, canaries.names).items():
        report.hits[trail] = CanaryHit(trail, rows[trail][1], name)
    return report


def canary_summary(canaries: Canaries, report: CanaryReport) -> dict[str, Any]:
    """The canary part of the health report."""
    return {"source": canaries.source, "names": len(canaries.names), "fetched": canaries.fetched,
            "seed": canaries.seed, "status": canaries.status, "error": canaries.error,
            "refused": len(report.hits), "trails": report.as_list()}


def sanity_lines(never: Mapping[str, int], canary: Mapping[str, Any], limit: int = 20) -> list[str]:
    """Summary lines (also `sensor.py -T`): the two counts, then each refused trail by name."""
    lines = [f"never match: {sum(never.values())} rows"
             + (" (" + ", ".join(f"{n} {why}" for why, n in sorted(never.items())) + ")" if never else "")]
    if canary:
        lines.append(f"canary: {canary.get('refused', 0)} trails refused for firing on one of "
                     f"{canary.get('names', 0)} popular domains ({canary.get('source')})")
        trails = canary.get("trails") or []
        for item in trails[:limit]:
            lines.append(f"  refused {item['trail']} from {item['source']}: fires on {item['canary']}")
        if len(trails) > limit:
            lines.append(f"  ... and {len(trails) - limit} more (health report)")
    return lines
