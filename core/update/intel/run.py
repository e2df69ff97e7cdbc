"""Running the INTEL_SOURCES: each source isolated like a feed, filtered, guarded by its last good copy.

Where it sits: update (core/update/orchestrate.py, after CUSTOM_TRAILS_URL, skipped by --offline)
-> **run_intel** -> each kind's module (stix.py, taxii.py, misp_feed.py, misp.py) -> the warning
lists (warninglists.py) -> the per-source guard shared with the feeds (`keep_good_copy`,
`FeedCache` in core/update/feedrun.py) -> rows for the merge, where every row passes the one row
validation (core/update/sanity.py).

Whatever goes wrong in one source (a bad line, the network, a hostile body) becomes its
`FeedStatus`, named `intel:<kind>:<name>`; the counts (loaded, keys, reasons for the rest, values
dropped per warning list) go to the update's report under the same name.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.config import Config, ConfigError, parse_size
from core.update.feedrun import FeedCache, FeedStatus, isolated, keep_good_copy
from core.update.feeds import FeedContext, FeedError, Trails
from core.update.intel import misp, misp_feed, stix, taxii
from core.update.intel.mapping import IntelStats
from core.update.intel.source import IntelSource, StateFiles, parse_source
from core.update.intel.warninglists import WarningFilter

Fetcher = Callable[[IntelSource, FeedContext, StateFiles, IntelStats, float], Trails]
FETCHERS: dict[str, Fetcher] = {"stix": stix.fetch, "taxii": taxii.fetch, "misp-feed": misp_feed.fetch,
                                "misp": misp.fetch}


@dataclass
class IntelResult:
    """Trails for the merge (one dict per source, in order), one status per source and the counts."""

    trails: list[Trails] = field(default_factory=list)
    statuses: list[FeedStatus] = field(default_factory=list)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_intel(config: Config, base: FeedContext, trails_dir: str, *,
              warning_filter: WarningFilter | None = None) -> IntelResult:
    """Fetch every INTEL_SOURCES line in order. Never raises for a source's problems."""
    result = IntelResult()
    lines: list[str] = list(config.INTEL_SOURCES or [])
    if not lines:
        return result
    cache = FeedCache(os.path.join(trails_dir, "feeds"))
    states = StateFiles(os.path.join(trails_dir, "intel"))
    grace = float(config.FEED_GRACE_PERIOD or 0)
    ratio = float(config.TRAIL_RELOAD_MIN_RATIO or 0)
    if warning_filter is None:
        warning_filter = WarningFilter.load(config.INTEL_WARNINGLISTS is not False)
    if warning_filter.problem:
        result.statuses.append(FeedStatus("intel:warninglists", "skipped", error=warning_filter.problem))
    for line in lines:
        try:
            source = parse_source(line)
            max_size = parse_size("max_size", source.option("max_size") or "0") or None
        except (ValueError, ConfigError) as ex:
            result.statuses.append(FeedStatus("intel:?", "failed", error=f"INTEL_SOURCES {line!r}: {ex}"))
            continue
        label = f"intel:{source.kind}:{source.name}"
        if label in result.counts:  # two sources would share a last good copy and state files
            result.statuses.append(FeedStatus(label, "failed", error=f"INTEL_SOURCES {line!r}: another source "
                                              "of this kind has the same name; give each a name="))
            continue
        status = FeedStatus(label, "ok", url=source.url if "://" in source.url else "")
        stats = IntelStats()
        ctx = base.for_feed(source.cache_name, max_size)  # max_size=: all pages of the source together
        started = time.monotonic()

        def fetch(source: IntelSource = source, ctx: FeedContext = ctx, stats: IntelStats = stats,
                  status: FeedStatus = status) -> Trails:
            trails = warning_filter.apply(FETCHERS[source.kind](source, ctx, states, stats, time.time()), stats)
            if not trails:
                raise FeedError("every indicator was filtered out")
            status.rows = len(trails)
            return trails

        trails = isolated(status, ctx, fetch)
        trails = keep_good_copy(source.cache_name, trails, status, cache, grace, ratio)
        if status.status == "ok" and trails:  # the answer is the new good copy: so are its object ids
            _save_ids(states, source, trails, stats.ids)
        if trails:
            result.trails.append(trails)
        status.seconds = round(time.monotonic() - started, 3)
        result.statuses.append(status)
        result.counts[label] = {"loaded": stats.loaded, "keys": stats.keys, "skipped": dict(stats.skipped)}
    return result


def _save_ids(states: StateFiles, source: IntelSource, trails: Trails, ids: dict[str, str]) -> None:
    """`<trails dir>/intel/<source>.ids.csv`: trail, source object id, reference (server /reference)."""
    os.makedirs(states.directory, exist_ok=True)
    path = os.path.join(states.directory, f"{source.cache_name}.ids.csv")
    reference = source.reference
    try:
        with open(path + ".tmp", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerows((key, ids[key], reference) for key in trails if key in ids)
        os.replace(path + ".tmp", path)
    except OSError:
        return  # the drawer loses the object ids of this source; the trails are unaffected
