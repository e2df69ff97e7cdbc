"""Running the feed modules: discover, select, fetch (isolated, concurrent, cached) -> trails per feed.

Where it sits: feeds -> **feedrun** -> update (core/update/) -> merge (core/update/merge.py) -> trails.csv.
The update asks `select_feeds` which modules of trails/feeds/ to run (DISABLED_FEEDS;
DISABLED_TRAILS_INFO_REGEX on `__info__`) and `run_feeds` runs them FEED_CONCURRENCY at a time,
each isolated: whatever goes wrong in one feed becomes its `FeedStatus`, never an exception. A
failed feed falls back to its cached previous trails (`FeedCache`) for FEED_GRACE_PERIOD.
`fetch_custom_urls` fetches the CUSTOM_TRAILS_URL lists. The HTTP side and the parsers the feed
modules use are in core/update/feeds.py.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from core.config import ROOT_DIR, Config, split_list
from core.update.feeds import FeedContext, FeedError, FeedSkipped, Trails, expand_cidr
from core.update.publish import size_refusal

FEEDS_DIR = os.path.join(ROOT_DIR, "trails", "feeds")


@dataclass
class FeedStatus:
    """One line of the health report."""

    name: str
    status: str  # ok | stale | shrunk | failed | skipped | disabled
    rows: int = 0
    seconds: float = 0.0
    error: str | None = None
    url: str = ""
    cache_age: float | None = None


def discover_feeds(feeds_dir: str = FEEDS_DIR) -> list[str]:
    """Feed module names in trails/feeds/ (the original's convention: every `*.py` not starting `_`)."""
    if not os.path.isdir(feeds_dir):
        return []
    return sorted(name[:-3] for name in os.listdir(feeds_dir)
                  if name.endswith(".py") and not name.startswith("_"))


def load_feed(name: str, feeds_dir: str = FEEDS_DIR) -> ModuleType:
    """Import one feed module (as trails.feeds.<name> when it lives in the project's folder)."""
    if os.path.abspath(feeds_dir) == os.path.abspath(FEEDS_DIR):
        return importlib.import_module(f"trails.feeds.{name}")
    spec = importlib.util.spec_from_file_location(f"_maltrail_feed_{name}", os.path.join(feeds_dir, f"{name}.py"))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load feed {name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FeedCache:
    """The last good result of every feed (`<trails dir>/feeds/<name>.csv`), for the grace period."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.csv")

    def save(self, name: str, trails: Trails) -> None:
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerows((key, info, ref) for key, (info, ref) in trails.items())
            os.replace(tmp, self.path(name))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def row_count(self, name: str) -> int:
        """Rows of the last good copy (0 when there is none)."""
        try:
            with open(self.path(name), "rb") as handle:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        except OSError:
            return 0

    def load(self, name: str, grace: float) -> tuple[Trails | None, float | None]:
        """(trails, age in seconds); trails is None when there is no copy or it is older than grace."""
        path = self.path(name)
        try:
            age = max(0.0, time.time() - os.path.getmtime(path))
        except OSError:
            return None, None
        if age > grace:
            return None, age
        trails: Trails = {}
        with open(path, encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                if len(row) == 3:
                    trails[row[0]] = (row[1], row[2])
        return trails, age


def call_fetch(fetch: Callable[..., Any], ctx: FeedContext) -> Any:
    """A feed module's `fetch(ctx)`, or a `fetch()` that takes no context (it then fetches on its own,
    without the update's base URL, proxy and size settings)."""
    try:
        takes_context = bool(inspect.signature(fetch).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: pass the context
        takes_context = True
    return fetch(ctx) if takes_context else fetch()


def isolated(status: FeedStatus, ctx: FeedContext, fetch: Callable[[], Trails]) -> Trails | None:
    """One source's fetch (a feed module, an intel source): every failure is caught here and becomes
    the source's status; the source's context is closed in every case."""
    try:
        return fetch()
    except FeedSkipped as ex:
        status.status, status.error = "skipped", str(ex)
    except FeedError as ex:
        status.status, status.error = "failed", str(ex)
    except Exception as ex:  # isolation point: a broken module or a hostile body must not stop the update
        status.status, status.error = "failed", f"{type(ex).__name__}: {ex}"
    finally:
        ctx.close()
    return None


def _run_feed(name: str, module: ModuleType, base: FeedContext) -> tuple[Trails | None, FeedStatus]:
    """Fetch one feed (isolated: a failure becomes the feed's status)."""
    status = FeedStatus(name=name, status="ok", url=str(getattr(module, "__url__", "")))
    ctx = base.for_feed(name, getattr(module, "__max_size__", None))
    started = time.monotonic()

    def fetch() -> Trails:
        key_name = getattr(module, "__api_key__", None)
        if key_name and not ctx.api_key(key_name):
            raise FeedSkipped(f"{key_name} is not set")
        result = call_fetch(module.fetch, ctx)
        if not isinstance(result, dict):
            raise FeedError(f"fetch() returned {type(result).__name__}, not a dict")
        if not result:
            raise FeedError("no trails in the response")
        status.rows = len(result)
        return result

    trails = isolated(status, ctx, fetch)
    status.seconds = round(time.monotonic() - started, 3)
    return trails, status


class Progress:
    """A one-line progress bar, drawn only when the output is a terminal; or, with `lines`, a
    "feeds: done/total" line about every tenth of the feeds (for a log or a pipe)."""

    def __init__(self, total: int, enabled: bool, lines: Callable[[str], None] | None = None) -> None:
        self.total, self.done, self.enabled = total, 0, enabled and total > 0
        self.lines, self.every = lines, max(1, total // 10)

    def step(self, label: str) -> None:
        self.done += 1
        if self.lines is not None and (self.done % self.every == 0 or self.done == self.total):
            self.lines(f"feeds: {self.done}/{self.total} done")
        if self.enabled:
            width = 30
            filled = width * self.done // self.total
            bar = "#" * filled + "." * (width - filled)
            sys.stdout.write(f"\r[{bar}] {self.done}/{self.total} {label[:24]:24}")
            sys.stdout.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stdout.write("\r" + " " * 72 + "\r")
            sys.stdout.flush()


def run_feeds(config: Config, names: list[str], base: FeedContext, cache: FeedCache | None,
              feeds_dir: str = FEEDS_DIR, progress: bool = False,
              progress_lines: Callable[[str], None] | None = None) -> list[tuple[FeedStatus, Trails | None]]:
    """Fetch the feeds FEED_CONCURRENCY at a time; results in name order (deterministic merge).
    `progress` draws a bar on a terminal; `progress_lines` gets a line about every tenth feed."""
    results: dict[str, tuple[FeedStatus, Trails | None]] = {}
    modules: dict[str, ModuleType] = {}
    for name in names:
        try:
            modules[name] = load_feed(name, feeds_dir)
        except Exception as ex:  # isolation point: a module that does not import is one failed feed
            results[name] = (FeedStatus(name, "failed", error=f"import failed: {type(ex).__name__}: {ex}"), None)
    bar = Progress(len(modules), progress, progress_lines)
    grace = float(config.FEED_GRACE_PERIOD or 0)
    with ThreadPoolExecutor(max_workers=int(config.FEED_CONCURRENCY or 8)) as pool:
        futures = {pool.submit(_run_feed, name, module, base): name for name, module in modules.items()}
        for future in as_completed(futures):
            name = futures[future]
            trails, status = future.result()
            trails = keep_good_copy(name, trails, status, cache, grace, float(config.TRAIL_RELOAD_MIN_RATIO or 0))
            results[name] = (status, trails)
            bar.step(name)
    bar.close()
    return [results[name] for name in names]


def keep_good_copy(name: str, trails: Trails | None, status: FeedStatus, cache: FeedCache | None,
                   grace: float, ratio: float) -> Trails | None:
    """The per-source guard. A source that answered saves its answer as the last good copy, unless the
    answer shrank below `ratio` of that copy (a body cut short, a feed half-served, a poisoned
    mirror): then, like a failed source, it is served from its last good copy while that copy is
    younger than FEED_GRACE_PERIOD. The status says which and why, with the numbers."""
    if cache is None:
        return trails
    if trails is not None:
        last = cache.row_count(name)
        shrunk = size_refusal(len(trails), last, ratio)
        if shrunk is None:
            try:
                cache.save(name, trails)
            except OSError as ex:
                status.error = f"cache not written: {ex.strerror or ex}"
            return trails
        status.status, status.error = "shrunk", f"{name}: {shrunk}"
    elif status.status != "failed":
        return trails
    cached, age = cache.load(name, grace)
    status.cache_age = None if age is None else round(age)
    if cached:
        status.rows = len(cached)
        if status.status == "failed":
            status.status = "stale"
        else:
            status.error = f"{status.error}; its last good copy is used"
        return cached
    if status.status == "shrunk":  # no usable copy: the smaller answer is all there is
        status.error = f"{status.error}; no last good copy within FEED_GRACE_PERIOD, the answer is used"
        return trails
    if age is not None:
        status.error = f"{status.error}; cached copy older than FEED_GRACE_PERIOD"
    return None


def select_feeds(config: Config, feeds_dir: str = FEEDS_DIR) -> tuple[list[str], list[FeedStatus]]:
    """Feed names to run and the ones disabled by DISABLED_FEEDS / DISABLED_TRAILS_INFO_REGEX."""
    disabled = {name.lower().removesuffix(".py") for name in split_list(config.DISABLED_FEEDS or "")}
    info_regex = re.compile(config.DISABLED_TRAILS_INFO_REGEX) if config.DISABLED_TRAILS_INFO_REGEX else None
    run: list[str] = []
    skipped: list[FeedStatus] = []
    for name in discover_feeds(feeds_dir):
        if name.lower() in disabled:
            skipped.append(FeedStatus(name, "disabled", error="DISABLED_FEEDS"))
            continue
        if info_regex is not None:
            info = _module_info(os.path.join(feeds_dir, f"{name}.py"))
            if info and info_regex.search(info):
                skipped.append(FeedStatus(name, "disabled", error="DISABLED_TRAILS_INFO_REGEX"))
                continue
        run.append(name)
    return run, skipped


def _module_info(path: str) -> str | None:
    """`__info__` read from the source without importing the module."""
    try:
        with open(path, encoding="utf-8") as handle:
            match = re.search(r"^__info__\s*=\s*(['\"])(.*?)\1", handle.read(), re.M)
    except OSError:
        return None
    return match.group(2) if match else None


# --- custom URLs -----------------------------------------------------------------------------------

def fetch_custom_urls(config: Config, base: FeedContext, cache: FeedCache | None = None,
                      ) -> tuple[list[tuple[str, str, str]], list[FeedStatus]]:
    """CUSTOM_TRAILS_URL lists (`,`/`;` separated): info `blacklisted`, reference `(remote custom)`.
    Each URL is a source of its own for the per-source guard (`keep_good_copy`)."""
    rows: list[tuple[str, str, str]] = []
    statuses: list[FeedStatus] = []
    grace = float(config.FEED_GRACE_PERIOD or 0)
    ratio = float(config.TRAIL_RELOAD_MIN_RATIO or 0)
    for url in split_list(config.CUSTOM_TRAILS_URL or ""):
        status = FeedStatus("(remote custom)", "ok", url=url)
        ctx = base.for_feed("custom_url")
        started = time.monotonic()
        trails: Trails | None = None
        try:
            if "://" not in url:
                url = "http://" + url
            text = ctx.retrieve(url)
            trails = {}
            for raw in text.splitlines():
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                expanded = expand_cidr(line) if "/" in line and line[0].isdigit() else [line]
                if not expanded:
                    status.error = "CIDR lists wider than /22 (1,024 addresses) or malformed are skipped"
                for trail in expanded:
                    trails[trail] = ("blacklisted", "(remote custom)")
            if not trails:
                raise FeedError("no trails in the response")
            status.rows = len(trails)
        except FeedError as ex:
            status.status, status.error = "failed", str(ex)
            trails = None
        finally:
            ctx.close()
        name = "custom-url-" + hashlib.sha1(url.encode("utf-8", "replace")).hexdigest()[:12]
        trails = keep_good_copy(name, trails, status, cache, grace, ratio)
        if trails:
            rows.extend((key, info, reference) for key, (info, reference) in trails.items())
        status.seconds = round(time.monotonic() - started, 3)
        statuses.append(status)
    return rows, statuses
