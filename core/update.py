"""Trail update: public feeds + static + custom trails -> merged, filtered trails.csv, published atomically.

Where it sits: feeds/static/custom -> **update** -> trails.csv -> trail store (sensor, server /check).
Run by hand (`python3 core/update.py [-c CONF] [--offline] [--force]`, or `python3 -m core.update`),
by the server (USE_SERVER_UPDATE_TRAILS) or by the sensor's update timer (`update(config,
scheduled=True)`).

Steps (docs/trails.md has the details):
1. UPDATE_SERVER set: download the server's /trails CSV, validate, publish. Nothing else.
2. Otherwise rebuild when forced, when the trails file is missing/empty/older than UPDATE_PERIOD,
   or when a file under trails/ or CUSTOM_TRAILS_DIR is newer.
3. Sources in order, later ones winning by the merge rules: feeds (USE_FEED_UPDATES or --force, not
   --offline; DISABLED_FEEDS; DISABLED_TRAILS_INFO_REGEX on `__info__`), FEED_CONCURRENCY at a time,
   each isolated; a failed feed falls back to its cached previous trails for FEED_GRACE_PERIOD.
   Then trails/static, CUSTOM_TRAILS_DIR, CUSTOM_TRAILS_URL.
4. Keys are normalised on insert; final filters run while writing (IP_MINIMUM_FEEDS, whitelist,
   bogon/CDN ranges, bad prefixes, ...). Regex trails keep their `?` (the original cut them).
5. Written to a temporary file, fsynced, and `os.replace`d over TRAILS_FILE, unless the result is
   empty or below TRAIL_RELOAD_MIN_RATIO of the previous file (then kept aside, unless --force).
   A per-feed health report goes beside it as `<name>.health.json`; a summary is printed.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as `python3 core/update.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import bisect  # noqa: E402
import csv  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import ipaddress  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402
from concurrent.futures import ThreadPoolExecutor, as_completed  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

from core.config import ROOT_DIR, Config, ConfigError, fail, load_config, split_list  # noqa: E402
from core.feeds import FeedContext, FeedError, FeedSkipped, Trails, expand_cidr  # noqa: E402
from core.trails.whitelist import Whitelist  # noqa: E402

FEEDS_DIR = os.path.join(ROOT_DIR, "trails", "feeds")
STATIC_DIR = os.path.join(ROOT_DIR, "trails", "static")
DATA_DIR = os.path.join(ROOT_DIR, "data")
LOW_PRIORITY_INFO_KEYWORDS = ("reputation", "attacker", "spammer", "abuser", "malicious", "dnspod",
                              "nicru", "crawler", "compromised", "bad history")
HIGH_PRIORITY_INFO_KEYWORDS = ("mass scanner", "ipinfo")
FIXED_REFERENCES = frozenset(("(static)", "(custom)", "(remote custom)"))
BAD_TRAIL_PREFIXES = ("127.", "192.168.", "localhost")
API_KEYS = ("ABUSEIPDB_API_KEY", "OTX_API_KEY", "PHISHTANK_API_KEY")
_LEADING_IPV4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?=$|[:/])")
_REGEX_CHARS = re.compile(r"[\\()\[\]*+|^${}]")
_BAD_CHARS = re.compile("[\x00-\x20\x7f\ufffd]")

Printer = Callable[[str], None]


# --- address ranges (bogons, CDNs, whitelist CIDRs) ------------------------------------------------

class Ranges:
    """Sorted, merged IPv4 intervals with a bisect lookup."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        spans: list[tuple[int, int]] = []
        for text in cidrs:
            try:
                net = ipaddress.IPv4Network(text.strip(), strict=False)
            except ValueError:
                continue
            spans.append((int(net.network_address), int(net.broadcast_address)))
        spans.sort()
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.starts = [span[0] for span in merged]
        self.ends = [span[1] for span in merged]

    def __len__(self) -> int:
        return len(self.starts)

    def contains(self, value: int) -> bool:
        index = bisect.bisect_right(self.starts, value) - 1
        return index >= 0 and value <= self.ends[index]

    @classmethod
    def from_file(cls, path: str) -> Ranges:
        """One CIDR (or address) a line, `#` comments; a missing file is an empty set."""
        if not os.path.isfile(path):
            return cls()
        with open(path, encoding="utf-8") as handle:
            return cls(line.split("#", 1)[0].strip() for line in handle if line.split("#", 1)[0].strip())


# --- merge -----------------------------------------------------------------------------------------

def is_regex_trail(key: str) -> bool:
    """A trail written as a regular expression (such keys keep their `?`, case of escapes, `//`)."""
    return bool(_REGEX_CHARS.search(key))


def _lower_regex(key: str) -> str:
    """Lower-case a regex trail without changing escapes such as \\D or \\W."""
    return re.sub(r"(\\.)|([^\\]+)", lambda m: m.group(1) or m.group(2).lower(), key)


def normalise_key(key: str) -> str | None:
    """The original's key normalisation: IDNA, lower case, no `www.`, no `?query`, no `//` runs."""
    if not key or key[0] <= " " or key[-1] <= " ":
        key = key.strip()
    if not key or len(key) > 2048:
        return None
    regex = _REGEX_CHARS.search(key) is not None
    if not key.isascii() and not regex:
        host, sep, rest = key.partition("/")
        try:
            host = host.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            return None
        key = host + sep + rest
    lowered = _lower_regex(key) if regex else key.lower()
    if lowered != key:
        key = lowered
    if key.startswith("www."):
        key = key[4:]
    if not regex:
        if "?" in key and not key.startswith("/"):
            key = key.split("?", 1)[0]
        if "//" in key:
            key = re.sub(r"/{2,}", "/", key)
    return key or None


@dataclass
class MergeStats:
    """Why keys did not make it into trails.csv (reported in the summary and the health file)."""

    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


class TrailMerger:
    """The merged trail set: {key: (info, reference)} plus the extra references of duplicates."""

    def __init__(self) -> None:
        self.trails: dict[str, tuple[str, str]] = {}
        self.extra: dict[str, set[str]] = {}
        self.invalid = 0
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self.trails)

    def add(self, key: str, info: str, reference: str) -> None:
        self.add_pair(key, (info, reference))

    def add_pair(self, key: str, pair: tuple[str, str]) -> None:
        norm = normalise_key(key)
        if norm is None:
            self.invalid += 1
            return
        pair = self._pairs.setdefault(pair, pair)
        current = self.trails.get(norm)
        if current is None:
            self.trails[norm] = pair
            return
        if current is pair:
            return
        info, reference = pair
        cur_ref = current[1]
        if cur_ref != reference:
            self.extra.setdefault(norm, set()).update((cur_ref, reference))
        if (reference in FIXED_REFERENCES and "history" not in info) or \
                any(word in info for word in HIGH_PRIORITY_INFO_KEYWORDS):
            self.trails[norm] = pair
        elif cur_ref in FIXED_REFERENCES or any(word in info for word in LOW_PRIORITY_INFO_KEYWORDS):
            return
        else:
            self.trails[norm] = pair

    def add_all(self, trails: Trails | Iterable[tuple[str, str, str]]) -> None:
        add_pair = self.add_pair
        if isinstance(trails, dict):
            for key, pair in trails.items():
                add_pair(key, pair)
        else:
            for key, info, reference in trails:
                add_pair(key, (info, reference))

    def references(self, key: str, primary: str) -> list[str]:
        extra = self.extra.get(key)
        return sorted(extra - {primary}) if extra else []

    def rows(self, config: Config, whitelist: Whitelist, bogons: Ranges, cdns: Ranges,
             stats: MergeStats) -> Iterator[tuple[str, str, str]]:
        """Final rows with the original's post-processing and filters (streamed while writing)."""
        minimum = int(config.IP_MINIMUM_FEEDS or 1)
        disabled_info = re.compile(config.DISABLED_TRAILS_INFO_REGEX) if config.DISABLED_TRAILS_INFO_REGEX else None
        extra_map = self.extra
        domains = whitelist.domains  # suffix walk inlined: this loop runs once per trail (1.6M)
        bad_chars, regex_chars, leading_ipv4 = _BAD_CHARS.search, _REGEX_CHARS.search, _LEADING_IPV4.match
        for key, (info, reference) in self.trails.items():
            fixed = reference in FIXED_REFERENCES
            if bad_chars(key):
                stats.drop("malformed")
                continue
            if key.isalpha() and not fixed:
                stats.drop("tld-like")
                continue
            if key.startswith(BAD_TRAIL_PREFIXES):
                stats.drop("bad prefix")
                continue
            extra_set = extra_map.get(key)
            extra = sorted(extra_set - {reference}) if extra_set else ()
            leading = leading_ipv4(key) if key[0].isdigit() else None
            if leading:
                octets = [int(part) for part in leading.groups()]
                if max(octets) > 255:
                    stats.drop("bad octet")
                    continue
                value = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
                if "parking" not in info and "sinkhole" not in info:
                    if bogons.contains(value):
                        stats.drop("bogon")
                        continue
                    if cdns.contains(value):
                        stats.drop("cdn")
                        continue
                if leading.end() == len(key):  # bare IPv4
                    if not fixed and not any(ref in FIXED_REFERENCES for ref in extra) and \
                            1 + len(extra) < minimum:
                        stats.drop("ip below IP_MINIMUM_FEEDS")
                        continue
                    if info == "malware":
                        info = "potential malware site"
                if whitelist.ip_text(key[:leading.end()]):
                    stats.drop("whitelisted")
                    continue
            elif not regex_chars(key):
                host = key.split("/", 1)[0] if "/" in key else key
                if ":" in host:
                    listed = whitelist.ip_text(host)
                else:
                    listed = False
                    while host:
                        if host in domains:
                            listed = True
                            break
                        dot = host.find(".")
                        host = host[dot + 1:] if dot >= 0 else ""
                if listed:
                    stats.drop("whitelisted")
                    continue
            if info == "ransomware":
                info = "ransomware (malware)"
            if disabled_info is not None and disabled_info.search(info):
                stats.drop("DISABLED_TRAILS_INFO_REGEX")
                continue
            if extra:
                reference = f"{reference} (+{','.join(extra)})"
            yield key, info, reference


# --- feeds -----------------------------------------------------------------------------------------

@dataclass
class FeedStatus:
    """One line of the health report."""

    name: str
    status: str  # ok | stale | failed | skipped | disabled
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


def _run_feed(name: str, module: ModuleType, base: FeedContext) -> tuple[Trails | None, FeedStatus]:
    """Fetch one feed; every failure is caught here and becomes the feed's status."""
    status = FeedStatus(name=name, status="ok", url=str(getattr(module, "__url__", "")))
    ctx = base.for_feed(name, getattr(module, "__max_size__", None))
    started = time.monotonic()
    trails: Trails | None = None
    try:
        key_name = getattr(module, "__api_key__", None)
        if key_name and not ctx.api_key(key_name):
            raise FeedSkipped(f"{key_name} is not set")
        result = module.fetch(ctx)
        if not isinstance(result, dict):
            raise FeedError(f"fetch() returned {type(result).__name__}, not a dict")
        if not result:
            raise FeedError("no trails in the response")
        trails = result
        status.rows = len(result)
    except FeedSkipped as ex:
        status.status, status.error = "skipped", str(ex)
    except FeedError as ex:
        status.status, status.error = "failed", str(ex)
    except Exception as ex:  # isolation point: a broken module must not stop the update
        status.status, status.error = "failed", f"{type(ex).__name__}: {ex}"
    finally:
        ctx.close()
    status.seconds = round(time.monotonic() - started, 3)
    return trails, status


class Progress:
    """A one-line progress bar, drawn only when the output is a terminal."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled and total > 0

    def step(self, label: str) -> None:
        self.done += 1
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
              feeds_dir: str = FEEDS_DIR, progress: bool = False) -> list[tuple[FeedStatus, Trails | None]]:
    """Fetch the feeds FEED_CONCURRENCY at a time; results in name order (deterministic merge)."""
    results: dict[str, tuple[FeedStatus, Trails | None]] = {}
    modules: dict[str, ModuleType] = {}
    for name in names:
        try:
            modules[name] = load_feed(name, feeds_dir)
        except Exception as ex:  # isolation point: a module that does not import is one failed feed
            results[name] = (FeedStatus(name, "failed", error=f"import failed: {type(ex).__name__}: {ex}"), None)
    bar = Progress(len(modules), progress)
    grace = float(config.FEED_GRACE_PERIOD or 0)
    with ThreadPoolExecutor(max_workers=int(config.FEED_CONCURRENCY or 8)) as pool:
        futures = {pool.submit(_run_feed, name, module, base): name for name, module in modules.items()}
        for future in as_completed(futures):
            name = futures[future]
            trails, status = future.result()
            if trails is not None and cache is not None:
                try:
                    cache.save(name, trails)
                except OSError as ex:
                    status.error = f"cache not written: {ex.strerror or ex}"
            elif status.status == "failed" and cache is not None:
                cached, age = cache.load(name, grace)
                status.cache_age = None if age is None else round(age)
                if cached:
                    trails, status.status, status.rows = cached, "stale", len(cached)
                elif age is not None:
                    status.error = f"{status.error}; cached copy older than FEED_GRACE_PERIOD"
            results[name] = (status, trails)
            bar.step(name)
    bar.close()
    return [results[name] for name in names]


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

def fetch_custom_urls(config: Config, base: FeedContext) -> tuple[list[tuple[str, str, str]], list[FeedStatus]]:
    """CUSTOM_TRAILS_URL lists (`,`/`;` separated): info `blacklisted`, reference `(remote custom)`."""
    rows: list[tuple[str, str, str]] = []
    statuses: list[FeedStatus] = []
    for url in split_list(config.CUSTOM_TRAILS_URL or ""):
        status = FeedStatus("(remote custom)", "ok", url=url)
        ctx = base.for_feed("custom_url")
        started = time.monotonic()
        try:
            if "://" not in url:
                url = "http://" + url
            text = ctx.retrieve(url)
            for raw in text.splitlines():
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                for trail in expand_cidr(line) if "/" in line and line[0].isdigit() else [line]:
                    rows.append((trail, "blacklisted", "(remote custom)"))
                    status.rows += 1
        except FeedError as ex:
            status.status, status.error = "failed", str(ex)
        finally:
            ctx.close()
        status.seconds = round(time.monotonic() - started, 3)
        statuses.append(status)
    return rows, statuses


# --- publication -----------------------------------------------------------------------------------

def count_rows(path: str) -> int:
    """Lines in an existing trails file (0 when absent)."""
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse directory fsync; the rename itself is still atomic
    finally:
        os.close(fd)


def atomic_write(path: str, writer: Callable[[Any], int], mode: int = 0o644) -> tuple[str, int]:
    """Write through `writer(handle) -> count` into a fsynced temporary file beside `path`.

    Returns (temporary path, count); the caller publishes it with `publish_file` or deletes it.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            count = writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp, count


def publish_file(tmp: str, path: str) -> None:
    """Atomically replace `path` with the fully written `tmp` and make the rename durable."""
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)) or ".")


def health_path(trails_file: str) -> str:
    return os.path.splitext(trails_file)[0] + ".health.json"


def _refusal(count: int, previous: int, ratio: float, force: bool) -> str | None:
    if force:
        return None
    if count == 0:
        return "refusing to publish an empty trail set (use --force to override)"
    if previous and count < previous * ratio:
        return (f"refusing to publish {count} trails: below TRAIL_RELOAD_MIN_RATIO {ratio:.2f} "
                f"of the previous {previous} (use --force to override)")
    return None


# --- the update ------------------------------------------------------------------------------------

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
                       api_keys={key: config.get(key) for key in API_KEYS}, base_url=base_url)


def pull_from_server(config: Config, ctx: FeedContext, force: bool = False) -> UpdateResult:
    """UPDATE_SERVER mode: fetch the server's trails.csv, validate every row, publish atomically."""
    path = config.TRAILS_FILE
    previous = count_rows(path)
    started = time.monotonic()
    server_ctx = ctx.for_feed("update_server", max_size=max(ctx.max_size, 1 << 30))
    bad = 0

    def write(handle: Any) -> int:
        nonlocal bad
        writer = csv.writer(handle, lineterminator="\n")
        count = 0
        for row in csv.reader(server_ctx.lines(config.UPDATE_SERVER, ",")):
            if len(row) == 3 and row[0]:
                writer.writerow(row)
                count += 1
            elif row:
                bad += 1
        return count

    try:
        tmp, count = atomic_write(path, write)
    except (FeedError, csv.Error) as ex:
        return UpdateResult(False, path, 0, previous, f"UPDATE_SERVER {config.UPDATE_SERVER}: {ex}")
    except OSError as ex:
        return UpdateResult(False, path, 0, previous, f"cannot write {path}: {ex.strerror or ex}")
    finally:
        server_ctx.close()
    refusal = _refusal(count, previous, float(config.TRAIL_RELOAD_MIN_RATIO or 0), force)
    if refusal:
        os.unlink(tmp)
        return UpdateResult(False, path, count, previous, refusal)
    publish_file(tmp, path)
    message = f"{count} trails from {config.UPDATE_SERVER}" + (f" ({bad} malformed rows skipped)" if bad else "")
    return UpdateResult(True, path, count, previous, message, seconds=round(time.monotonic() - started, 3))


def update(config: Config, *, force: bool = False, offline: bool = False, scheduled: bool = False,
           base_url: str | None = None, feeds_dir: str = FEEDS_DIR, static_dir: str = STATIC_DIR,
           data_dir: str = DATA_DIR, retries: int = 3, backoff: float = 1.0, geo: bool = True,
           printer: Printer | None = None, progress: bool = False) -> UpdateResult:
    """Run one trail update and publish TRAILS_FILE. Never raises for feed/network problems."""
    say: Printer = printer or (lambda _text: None)
    path = config.TRAILS_FILE
    if scheduled and config.DISABLE_TRAIL_UPDATES:
        return UpdateResult(False, path, message="trail updates disabled (DISABLE_TRAIL_UPDATES)")
    ctx = make_context(config, base_url, retries, backoff)
    if config.UPDATE_SERVER and not offline:
        result = pull_from_server(config, ctx, force)
        say(("published " if result.published else "not published: ") + result.message)
        return result
    if not force and not needs_rebuild(config, path, (static_dir, feeds_dir)):
        return UpdateResult(False, path, count_rows(path), count_rows(path), "trails are up to date")

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
        results = run_feeds(config, names, ctx, cache, feeds_dir, progress)
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
        rows, url_statuses = fetch_custom_urls(config, ctx)
        statuses.extend(url_statuses)
        merger.add_all(rows)

    stats = MergeStats()
    whitelist = load_whitelist(config, data_dir, say)
    bogons = Ranges.from_file(os.path.join(data_dir, "bogon_ranges.txt"))
    cdns = Ranges.from_file(os.path.join(data_dir, "cdn_ranges.txt"))

    def write(handle: Any) -> int:
        writer = csv.writer(handle, lineterminator="\n")
        count = 0
        for row in merger.rows(config, whitelist, bogons, cdns, stats):
            writer.writerow(row)
            count += 1
        return count

    result = UpdateResult(False, path, 0, previous, feeds=statuses)
    try:
        tmp, count = atomic_write(path, write)
    except OSError as ex:
        result.message = f"cannot write {path}: {ex.strerror or ex}"
        say(result.message)
        return result
    result.rows, result.dropped = count, dict(stats.dropped)
    if merger.invalid:
        result.dropped["invalid key"] = merger.invalid
    refusal = _refusal(count, previous, float(config.TRAIL_RELOAD_MIN_RATIO or 0), force)
    if refusal:
        os.unlink(tmp)
        result.message = refusal
    else:
        publish_file(tmp, path)
        result.published = True
        result.message = f"published {count} trails to {path}"
    result.seconds = round(time.monotonic() - started, 3)
    result.health_file = _write_health(result)
    if geo and not offline:
        _update_geo(config, say)
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


def _write_health(result: UpdateResult) -> str | None:
    target = health_path(result.path)
    report = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "trails_file": result.path,
        "published": result.published,
        "message": result.message,
        "rows": result.rows,
        "previous_rows": result.previous_rows,
        "seconds": result.seconds,
        "dropped": result.dropped,
        "feeds": [asdict(status) for status in result.feeds],
    }

    def write(handle: Any) -> int:
        json.dump(report, handle, indent=1)
        handle.write("\n")
        return 1

    try:
        tmp, _count = atomic_write(target, write)
        publish_file(tmp, target)
    except OSError:
        return None
    return target


def _update_geo(config: Config, say: Printer) -> None:
    """Refresh the RIR country tables through core/geo.py when that module exists."""
    if importlib.util.find_spec("core.geo") is None:
        say("note: core/geo.py not present; geo tables not refreshed")
        return
    try:
        geo = importlib.import_module("core.geo")
        geo.update_geo(config)
    except Exception as ex:  # isolation point: geo data is optional for the trail update
        say(f"geo tables not refreshed: {type(ex).__name__}: {ex}")


def summary(result: UpdateResult) -> list[str]:
    """Human-readable lines: failed/stale feeds first, then totals."""
    lines: list[str] = []
    counts: dict[str, int] = {}
    for status in result.feeds:
        counts[status.status] = counts.get(status.status, 0) + 1
        if status.status in ("failed", "stale"):
            extra = f", cached {status.cache_age}s ago" if status.status == "stale" else ""
            lines.append(f"  {status.status:7} {status.name:28} {status.error}{extra}")
        elif status.status == "skipped":
            lines.append(f"  skipped {status.name:28} {status.error}")
    if result.feeds:
        lines.insert(0, "feeds: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if result.dropped:
        lines.append("dropped: " + ", ".join(f"{n} {r}" for r, n in sorted(result.dropped.items())))
    lines.append(f"{result.message} ({result.rows} rows, previous {result.previous_rows}, {result.seconds:.1f} s)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="core/update.py", description="Rebuild trails.csv from feeds, "
                                     "static and custom trails (or pull it from UPDATE_SERVER).")
    parser.add_argument("-c", dest="config", help="configuration file (default: maltrail.conf)")
    parser.add_argument("--offline", action="store_true", help="static and custom trails only, no network")
    parser.add_argument("--force", action="store_true",
                        help="rebuild now, run the feeds even without USE_FEED_UPDATES, publish even a small set")
    parser.add_argument("--feed-base-url", help="fetch every feed from <URL>/<feed>/<quoted original URL> "
                        "(local mirrors, tests, benchmarks)")
    parser.add_argument("--no-geo", action="store_true", help="do not refresh the geo tables")
    parser.add_argument("--list-feeds", action="store_true", help="print the feed modules and exit")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as ex:
        return fail(ex)
    if args.list_feeds:
        for name in discover_feeds():
            module = load_feed(name)
            print(f"{name:28} {getattr(module, '__info__', ''):40} {getattr(module, '__url__', '')}")
        return 0
    result = update(config, force=args.force, offline=args.offline, base_url=args.feed_base_url,
                    geo=not args.no_geo, printer=print, progress=sys.stdout.isatty())
    if result.published or result.message == "trails are up to date":
        if result.message == "trails are up to date":
            print(result.message)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
