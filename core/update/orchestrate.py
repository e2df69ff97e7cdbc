"""Trail update: public feeds + static + custom trails -> merged, filtered trails.csv, published atomically.

Where it sits: feeds/static/custom -> **update** -> trails.csv -> trail store (sensor, server /check).
Run by hand (`python3 -m core.update [-c CONF] [--offline] [--force]`, or `python3 -m core.update.orchestrate`),
by the server (USE_SERVER_UPDATE_TRAILS) or by the sensor's update timer (`update(config,
scheduled=True)`). This module is the orchestration; the jobs it runs live beside it in
core/update/: feedrun.py (running the feed modules), merge.py (merge rules and final filters),
publish.py (atomic publication, the size rule and the health report) and geo.py (country tables).

Steps (docs/trails.md has the details):
1. UPDATE_SERVER set: download the server's /trails CSV, validate, publish. Nothing else.
2. Otherwise rebuild when forced, when the trails file is missing/empty/older than UPDATE_PERIOD,
   or when a file under trails/ or CUSTOM_TRAILS_DIR is newer.
3. Sources in order, later ones winning by the merge rules: feeds (USE_FEED_UPDATES or --force, not
   --offline; core/update/feedrun.py), then trails/static, CUSTOM_TRAILS_DIR, CUSTOM_TRAILS_URL,
   INTEL_SOURCES (not --offline; core/update/intel/).
4. Keys are normalised on insert; final filters run while writing (core/update/merge.py); trails that
   would fire on a popular domain are refused (core/update/canary.py), and the rows that could
   never fire are counted (`never_match`).
5. Written to a temporary file, fsynced, and `os.replace`d over TRAILS_FILE, unless the result is
   empty or below TRAIL_RELOAD_MIN_RATIO of the previous file (then kept aside, unless --force;
   core/update/publish.py). A per-feed health report goes beside it as `<name>.health.json`; a summary
   is printed.
"""

from __future__ import annotations

import csv
import enum
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TextIO

from core.config import ROOT_DIR, Config
from core.trails.whitelist import Whitelist
from core.update import geo as geo_tables
from core.update.canary import canary_hits, canary_summary, load_canaries, sanity_lines
from core.update.datasets import bundled_counts, list_lines, refresh_lists
from core.update.feedrun import (
    FEEDS_DIR,
    FeedCache,
    FeedStatus,
    fetch_custom_urls,
    run_feeds,
    select_feeds,
)
from core.update.feeds import FeedContext, FeedError
from core.update.merge import MergeStats, Ranges, TrailMerger, normalise_key
from core.update.publish import (
    PublishHistory,
    atomic_write,
    count_rows,
    publish_file,
    size_refusal,
    write_health,
)
from core.update.sanity import IGNORED_IN_DNS, TrailRules, dns_ignored, never_match

STATIC_DIR = os.path.join(ROOT_DIR, "trails", "static")
DATA_DIR = os.path.join(ROOT_DIR, "data")


def api_keys(config: Config) -> dict[str, str | None]:
    """The feed API keys by name (a feed module names its key in `__api_key__`)."""
    return {"ABUSEIPDB_API_KEY": config.ABUSEIPDB_API_KEY, "OTX_API_KEY": config.OTX_API_KEY,
            "PHISHTANK_API_KEY": config.PHISHTANK_API_KEY}


Printer = Callable[[str], None]


# --- the update ------------------------------------------------------------------------------------

class UpdateStatus(enum.Enum):
    """How an update ended; `message` says it in words for people."""

    PUBLISHED = "published"
    UP_TO_DATE = "up to date"
    DISABLED = "disabled"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass
class UpdateResult:
    """What an update did. `published` is False when nothing was replaced (up to date, refused, error)."""

    published: bool
    path: str
    rows: int = 0
    previous_rows: int = 0
    message: str = ""
    feeds: list[FeedStatus] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    health_file: str | None = None
    status: UpdateStatus = UpdateStatus.FAILED
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> sanity reason -> rows
    intel: dict[str, dict[str, Any]] = field(default_factory=dict)  # intel source -> loaded, keys, skipped
    never_match: dict[str, int] = field(default_factory=dict)  # rows that could never fire, by reason
    canary: dict[str, Any] = field(default_factory=dict)  # the canary check (core/update/canary.py)
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)  # fetched data sets (core/update/datasets.py)

    @property
    def ok(self) -> bool:
        """The trails file is current: published now, or already up to date."""
        return self.status in (UpdateStatus.PUBLISHED, UpdateStatus.UP_TO_DATE)


def needs_rebuild(config: Config, path: str, extra_dirs: Iterable[str] = ()) -> bool:
    """The original's rule: missing/empty/older than UPDATE_PERIOD, or a source file is newer."""
    try:
        stat = os.stat(path)
    except OSError:
        return True
    if stat.st_size == 0 or time.time() - stat.st_mtime > int(config.UPDATE_PERIOD or 86400):
        return True
    for directory in (os.path.join(ROOT_DIR, "trails"), config.CUSTOM_TRAILS_DIR, *extra_dirs):
        if not directory or not os.path.isdir(directory):
            continue
        for root, _dirs, files in os.walk(directory):
            for name in files:
                try:
                    if os.path.getmtime(os.path.join(root, name)) > stat.st_mtime:
                        return True
                except OSError:
                    continue
    return False


def make_context(config: Config, base_url: str | None = None, retries: int = 3, backoff: float = 1.0) -> FeedContext:
    return FeedContext(timeout=float(config.FEED_TIMEOUT or 30), max_size=int(config.FEED_MAX_SIZE or 64 << 20),
                       retries=retries, backoff=backoff, proxy=config.PROXY_ADDRESS,
                       api_keys=api_keys(config), base_url=base_url)


def pull_from_server(config: Config, url: str, ctx: FeedContext, force: bool = False,
                     data_dir: str = DATA_DIR) -> UpdateResult:
    """UPDATE_SERVER mode: fetch the server's trails.csv, validate every row with the same sanity
    rules as every other source, and publish atomically under the same size guard."""
    path = config.TRAILS_FILE
    previous = count_rows(path)
    started = time.monotonic()
    server_ctx = ctx.for_feed("update_server", max_size=max(ctx.max_size, 1 << 30))
    rules = TrailRules.load(data_dir, int(config.TRAIL_CIDR_MIN_PREFIX))
    stats = MergeStats()
    source = "UPDATE_SERVER"

    def write(handle: TextIO) -> int:
        writer = csv.writer(handle, lineterminator="\n")
        count = 0
        for row in csv.reader(server_ctx.lines(url, ",")):
            if len(row) != 3 or not row[0]:
                if row:
                    stats.reject(source, "malformed row")
                continue
            key = normalise_key(row[0])
            why = "bad key" if key is None else rules.reject(key, row[1], row[2])
            if why is not None:
                stats.reject(source, why)
                continue
            writer.writerow((key, row[1], row[2]))
            count += 1
        return count

    try:
        tmp, count = atomic_write(path, write)
    except (FeedError, csv.Error) as ex:
        return UpdateResult(False, path, 0, previous, f"UPDATE_SERVER {url}: {ex}")
    except OSError as ex:
        return UpdateResult(False, path, 0, previous, f"cannot write {path}: {ex.strerror or ex}")
    finally:
        server_ctx.close()
    history = PublishHistory(path)
    refusal = publish_refusal(config, count, previous, force, history.baseline(), source)
    bad = sum(stats.dropped.values())
    skipped = f" ({bad} rows rejected: {_reasons(stats.dropped)})" if bad else ""
    if refusal:
        os.unlink(tmp)
        return UpdateResult(False, path, count, previous, refusal + skipped, status=UpdateStatus.REFUSED,
                            dropped=dict(stats.dropped), rejected=stats.rejected)
    publish_file(tmp, path)
    history.record(count)
    message = f"{count} trails from {url}{skipped}"
    return UpdateResult(True, path, count, previous, message, seconds=round(time.monotonic() - started, 3),
                        status=UpdateStatus.PUBLISHED, dropped=dict(stats.dropped), rejected=stats.rejected)


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))


def update(config: Config, *, force: bool = False, offline: bool = False, scheduled: bool = False,
           base_url: str | None = None, feeds_dir: str = FEEDS_DIR, static_dir: str = STATIC_DIR,
           data_dir: str = DATA_DIR, retries: int = 3, backoff: float = 1.0, geo: bool = True,
           printer: Printer | None = None, progress: bool = False, progress_lines: bool = False) -> UpdateResult:
    """Run one trail update and publish TRAILS_FILE. Never raises for feed/network problems.
    `progress` draws a feed bar on a terminal; `progress_lines` sends feed progress lines to `printer`."""
    say: Printer = printer or (lambda _text: None)
    path = config.TRAILS_FILE
    if scheduled and config.DISABLE_TRAIL_UPDATES:
        return UpdateResult(False, path, message="trail updates disabled (DISABLE_TRAIL_UPDATES)",
                            status=UpdateStatus.DISABLED)
    ctx = make_context(config, base_url, retries, backoff)
    if config.UPDATE_SERVER and not offline:
        result = pull_from_server(config, config.UPDATE_SERVER, ctx, force, data_dir)
        say(("published " if result.published else "not published: ") + result.message)
        return result
    if not force and not needs_rebuild(config, path, (static_dir, feeds_dir)):
        current = count_rows(path)
        return UpdateResult(False, path, current, current, "trails are up to date", status=UpdateStatus.UP_TO_DATE)

    started = time.monotonic()
    previous = count_rows(path)
    merger = TrailMerger()
    statuses: list[FeedStatus] = []
    use_feeds = (config.USE_FEED_UPDATES or force) and not offline
    if use_feeds:
        names, disabled = select_feeds(config, feeds_dir)
        statuses.extend(disabled)
        cache = FeedCache(os.path.join(os.path.dirname(path), "feeds"))
        say(f"fetching {len(names)} feeds ({int(config.FEED_CONCURRENCY or 8)} at a time)")
        results = run_feeds(config, names, ctx, cache, feeds_dir, progress, say if progress_lines else None)
        for index, (status, feed_trails) in enumerate(results):
            statuses.append(status)
            if feed_trails:
                merger.add_all(feed_trails)
            results[index] = (status, None)  # release the feed's dict once merged
            del feed_trails
    import trails.custom as custom_source
    import trails.static as static_source

    merger.add_all(static_source.load(static_dir))
    merger.add_all(custom_source.load(config.CUSTOM_TRAILS_DIR))
    if config.CUSTOM_TRAILS_URL and not offline:
        rows, url_statuses = fetch_custom_urls(config, ctx, FeedCache(os.path.join(os.path.dirname(path), "feeds")))
        statuses.extend(url_statuses)
        merger.add_all(rows)
    intel_counts: dict[str, dict[str, Any]] = {}
    if config.INTEL_SOURCES and not offline:
        from core.update.intel.run import run_intel  # docs/intel.md

        intel = run_intel(config, ctx, os.path.dirname(path))
        statuses.extend(intel.statuses)
        for source_trails in intel.trails:
            merger.add_all(source_trails)
        intel_counts = intel.counts
        del intel

    stats = MergeStats()
    canaries = load_canaries(ctx if use_feeds else None, FeedCache(os.path.join(os.path.dirname(path), "feeds")),
                             data_dir, float(config.TRAIL_RELOAD_MIN_RATIO or 0))
    refused = canary_hits(merger.trails, canaries)
    rules = replace(TrailRules.load(data_dir, int(config.TRAIL_CIDR_MIN_PREFIX)), refused=refused.hits)
    # the fetched data sets first: their whitelist additions apply to this run's trails already
    lists = refresh_lists(ctx, path, data_dir, float(config.TRAIL_RELOAD_MIN_RATIO or 0)) if use_feeds else {}
    whitelist = load_whitelist(config, data_dir, say)
    bogons = Ranges.from_file(os.path.join(data_dir, "bogon_ranges.txt"))
    cdns = Ranges.from_file(os.path.join(data_dir, "cdn_ranges.txt"))

    kept_unchecked = [0]  # published names under a suffix DNS queries never check (never_match)

    def write(handle: TextIO) -> int:
        writer = csv.writer(handle, lineterminator="\n")
        count = 0
        for row in merger.rows(config, whitelist, bogons, cdns, stats, rules):
            writer.writerow(row)
            count += 1
            if dns_ignored(row[0]):
                kept_unchecked[0] += 1
        return count

    result = UpdateResult(False, path, 0, previous, feeds=statuses, intel=intel_counts, lists=lists)
    try:
        tmp, count = atomic_write(path, write)
    except OSError as ex:
        result.message = f"cannot write {path}: {ex.strerror or ex}"
        say(result.message)
        return result
    result.rows, result.dropped, result.rejected = count, dict(stats.dropped), stats.rejected
    if merger.invalid:
        result.dropped["invalid key"] = merger.invalid
    result.never_match = never_match(result.dropped)
    if kept_unchecked[0]:
        result.never_match[IGNORED_IN_DNS] = kept_unchecked[0]
    result.canary = canary_summary(canaries, refused)
    history = PublishHistory(path)
    refusal = publish_refusal(config, count, previous, force, history.baseline())
    if refusal:
        os.unlink(tmp)
        result.message, result.status = refusal, UpdateStatus.REFUSED
    else:
        publish_file(tmp, path)
        history.record(count)
        result.published, result.status = True, UpdateStatus.PUBLISHED
        result.message = f"published {count} trails to {path}"
    result.seconds = round(time.monotonic() - started, 3)
    result.health_file = write_health(result.path, health_report(result))
    if geo and not offline:
        _update_geo(config, ctx, say, force)
    for line in summary(result):
        say(line)
    return result


def load_whitelist(config: Config, data_dir: str, say: Printer) -> Whitelist:
    """data/whitelist.txt plus USER_WHITELIST (core/trails/whitelist.py); a missing file is reported."""
    bundled = os.path.join(data_dir, "whitelist.txt")
    try:
        return Whitelist.load(config, bundled=bundled if os.path.isfile(bundled) else None)
    except OSError as ex:
        say(f"whitelist not fully loaded: {ex.filename}: {ex.strerror or ex}")
        return Whitelist.load(None, bundled=bundled if os.path.isfile(bundled) else None)


def health_report(result: UpdateResult) -> dict[str, Any]:
    """The content of `<name>.health.json` for one run."""
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "trails_file": result.path,
        "published": result.published,
        "message": result.message,
        "rows": result.rows,
        "previous_rows": result.previous_rows,
        "seconds": result.seconds,
        "dropped": result.dropped,
        "rejected": result.rejected,
        "never_match": result.never_match,
        "canary": result.canary,
        "lists": result.lists,
        "feeds": [asdict(status) for status in result.feeds],
        "intel": result.intel,
    }


def publish_refusal(config: Config, count: int, previous: int, force: bool, baseline: int = 0,
                    source: str = "the merged set") -> str | None:
    """Why this update must not publish `count` rows (the shared size rule, measured against the
    larger of the previous set and the long-term baseline), or None. `--force` overrides it."""
    if force:
        return None
    reference = max(previous, baseline)
    why = size_refusal(count, reference, float(config.TRAIL_RELOAD_MIN_RATIO or 0))
    if why is None:
        return None
    if reference > previous:
        why += f" (the baseline: largest of the last published sets; the previous one had {previous:,})"
    return f"refusing to publish {source}: {why} (use --force to override)"


def _update_geo(config: Config, ctx: FeedContext, say: Printer, force: bool) -> None:
    """Refresh the RIR country table (core/update/geo.py) through the update's own fetcher, so the
    proxy, timeouts and `--feed-base-url` apply to it as to the feeds (one fetch name per RIR).
    Only when it is older than geo.MAX_AGE, or with `--force`."""
    names = {url: f"geo-{rir}" for rir, url in geo_tables.RIR_URLS.items()}

    def fetch(url: str) -> str:
        rir_ctx = ctx.for_feed(names.get(url, "geo"), max_size=max(ctx.max_size, 256 << 20))
        try:
            return rir_ctx.retrieve(url)
        finally:
            rir_ctx.close()

    try:
        report = geo_tables.update_geo(config, fetch, log=say, force=force)
    except Exception as ex:  # isolation point: geo data is optional for the trail update
        say(f"geo table not refreshed: {type(ex).__name__}: {ex}")
        return
    if report.written:
        say(f"geo table refreshed from {len(report.records)} registries ({sum(report.records.values()):,} records)")
    else:
        say(f"geo table kept: {report.reason}")


def summary(result: UpdateResult) -> list[str]:
    """Human-readable lines: failed/stale feeds first, then totals."""
    lines: list[str] = []
    counts: dict[str, int] = {}
    for status in result.feeds:
        counts[status.status] = counts.get(status.status, 0) + 1
        if status.status in ("failed", "stale", "shrunk"):
            extra = f", cached {status.cache_age}s ago" if status.status == "stale" else ""
            lines.append(f"  {status.status:7} {status.name:28} {status.error}{extra}")
        elif status.status == "skipped":
            lines.append(f"  skipped {status.name:28} {status.error}")
    if result.feeds:
        lines.insert(0, "feeds: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if result.dropped:
        lines.append("dropped: " + _reasons(result.dropped))
    for name, intel in sorted(result.intel.items()):
        skipped = f"; not loaded: {_reasons(intel['skipped'])}" if intel.get("skipped") else ""
        lines.append(f"  {name}: {intel.get('loaded', 0)} indicators, {intel.get('keys', 0)} trails{skipped}")
    for source, reasons in sorted(result.rejected.items()):
        lines.append(f"  rejected from {source}: {_reasons(reasons)}")
    lines.extend(sanity_lines(result.never_match, result.canary))
    lines.extend(list_lines(result.lists, bundled_counts(DATA_DIR)))
    lines.append(f"{result.message} ({result.rows} rows, previous {result.previous_rows}, {result.seconds:.1f} s)")
    return lines
