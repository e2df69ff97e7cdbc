"""Fuller data sets: the original project's published suspicious User-Agent list, whitelist and
worst-ASN ranges, and the public datacenter range list, fetched at update time and added to the
bundled ones.

Where it sits: update (core/update/orchestrate.py) calls `refresh_lists()` when it fetches feeds;
each list goes through the same fetcher as the feeds (proxy, timeouts, size cap, `--feed-base-url`)
and the same last-good-copy guard (`keep_good_copy`, core/update/feedrun.py: a failed, broken or
shrunken answer never replaces a good copy). The accepted entries are written to
`<trails folder>/lists/<name>.txt` (`list_path`, core/update/publish.py); the sensor adds them to the bundled data:
core/heuristics/patterns.py (User-Agents, next to data/ua.txt) and core/trails/whitelist.py
(whitelist, next to data/whitelist.txt); the server's /check_ip (core/server/addrinfo.py) reads
the two range lists next to data/ipcat_seed.csv and data/worst_asns_seed.txt. Offline, or before the first fetch, only the bundled
lists are used.

Every fetched entry is checked before it is kept (a hostile list must not blind the sensor or
flood it):
- User-Agent entries: at most 512 characters, no control bytes; entries holding ` (compatible`
  are literal UA strings and are escaped (the original's rule); an entry that does not compile
  is escaped too; an entry that matches the empty string or one of a few common browser
  User-Agents (`BROWSER_UAS`) is dropped ("too broad").
- Whitelist entries: an address, a CIDR no wider than /16 (IPv4) or /32 (IPv6), or a domain that
  is DNS syntax and not a public suffix (data/public_suffixes.txt); anything else is dropped.
- Range entries (datacenter `start,end,name`, worst-ASN `cidr,name`): they must parse, be no wider
  than a /8 (IPv6 /32) and not start in private or reserved space.
A list with fewer than `min_entries` accepted entries is a failed fetch.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from core.update.publish import atomic_write, list_path, publish_file
from core.update.sanity import PublicSuffixes

if TYPE_CHECKING:  # the server reads the parsers below and runs on the standard library alone
    from core.update.feeds import FeedContext

GRACE = 30 * 86400
BROWSER_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
)
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))+\Z")


@dataclass(frozen=True)
class Dataset:
    name: str
    url: str
    min_entries: int
    check: Callable[[str, PublicSuffixes], tuple[str | None, str | None]]  # (entry to keep, why dropped)


def check_ua(line: str, _suffixes: PublicSuffixes) -> tuple[str | None, str | None]:
    entry = line.strip()
    if not entry or len(entry) > 512 or _CONTROL.search(entry):
        return None, "malformed"
    if " (compatible" in entry:
        entry = re.escape(entry)
    try:
        pattern = re.compile(entry, re.I)
    except (re.error, RecursionError, OverflowError):
        entry = re.escape(entry)
        pattern = re.compile(entry, re.I)
    if pattern.search("") or any(pattern.search(ua) for ua in BROWSER_UAS):
        return None, "too broad"
    return entry, None


def check_whitelist(line: str, suffixes: PublicSuffixes) -> tuple[str | None, str | None]:
    entry = line.split("#", 1)[0].strip().lower()
    if not entry:
        return None, "malformed"
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return None, "malformed"
        return (entry, None) if network.prefixlen >= (16 if network.version == 4 else 32) else (None, "too broad")
    try:
        ipaddress.ip_address(entry)
        return entry, None
    except ValueError:
        pass
    name = entry[2:] if entry.startswith("*.") else entry
    if not _NAME.match(name):
        return None, "malformed"
    if suffixes.is_suffix(name):
        return None, "too broad"
    return name, None


AddressRange = tuple[int, int, int, str]  # (IP version, first, last, label): core/update/geo.py's Range


def parse_ipcat(line: str) -> AddressRange | None:
    """`start,end,name[,url]` (the datacenter list's CSV) → a range; None when malformed."""
    parts = line.strip().split(",")
    if len(parts) < 3 or not parts[2].strip():
        return None
    try:
        first, last = ipaddress.ip_address(parts[0].strip()), ipaddress.ip_address(parts[1].strip())
    except ValueError:
        return None
    if first.version != last.version or int(last) < int(first):
        return None
    return first.version, int(first), int(last), parts[2].strip()[:64]


def parse_cidr_label(line: str) -> AddressRange | None:
    """`cidr,label` (the worst-ASN ranges) → a range; None when malformed."""
    cidr, _, label = line.strip().partition(",")
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return None
    return network.version, int(network.network_address), int(network.broadcast_address), \
        (label.strip() or "-")[:64]


def _check_range(parsed: AddressRange | None, text: str) -> tuple[str | None, str | None]:
    if parsed is None:
        return None, "malformed"
    version, first, last, _ = parsed
    if last - first >= (1 << 24 if version == 4 else 1 << 96):  # wider than a /8 (IPv6 /32)
        return None, "too broad"
    address = ipaddress.ip_address(first)
    if address.is_private or address.is_loopback or address.is_multicast or address.is_reserved:
        return None, "private or reserved"
    return text, None


def check_ipcat(line: str, _suffixes: PublicSuffixes) -> tuple[str | None, str | None]:
    parsed = parse_ipcat(line)
    return _check_range(parsed, ",".join(line.strip().split(",")[:3]))


def check_worst(line: str, _suffixes: PublicSuffixes) -> tuple[str | None, str | None]:
    return _check_range(parse_cidr_label(line), line.strip())


ORIGINAL = "https://raw.githubusercontent.com/stamparm/maltrail/master/data"
DATASETS = (
    Dataset("ua", f"{ORIGINAL}/ua.txt", 100, check_ua),
    Dataset("whitelist", f"{ORIGINAL}/whitelist.txt", 100, check_whitelist),
    Dataset("ipcat", "https://raw.githubusercontent.com/client9/ipcat/master/datacenters.csv", 100, check_ipcat),
    Dataset("worst_asns", f"{ORIGINAL}/worst_asns.txt", 100, check_worst),
)


def _fetch(ctx: FeedContext, dataset: Dataset, suffixes: PublicSuffixes,
           dropped: dict[str, int]) -> dict[str, tuple[str, str]]:
    from core.update.feeds import FeedError

    list_ctx = ctx.for_feed(f"list-{dataset.name}")
    try:
        kept: dict[str, tuple[str, str]] = {}
        for line in list_ctx.lines(dataset.url):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            entry, why = dataset.check(line, suffixes)
            if entry is None:
                dropped[why or "malformed"] = dropped.get(why or "malformed", 0) + 1
            else:
                kept[entry] = (dataset.name, dataset.url)
    finally:
        list_ctx.close()
    if len(kept) < dataset.min_entries:
        raise FeedError(f"only {len(kept)} acceptable entries (at least {dataset.min_entries} expected)")
    return kept


def _writer(entries: list[str]) -> Callable[[TextIO], int]:
    def write(handle: TextIO) -> int:
        handle.write("".join(f"{entry}\n" for entry in entries))
        return len(entries)
    return write


def refresh_lists(ctx: FeedContext, trails_file: str, data_dir: str, ratio: float,
                  datasets: tuple[Dataset, ...] = DATASETS) -> dict[str, dict[str, Any]]:
    """Fetch, check and keep every list; the per-list report (status, entries, dropped, error)."""
    from core.update.feedrun import FeedCache, FeedStatus, keep_good_copy
    from core.update.feeds import FeedError

    suffixes = PublicSuffixes.load(os.path.join(data_dir, "public_suffixes.txt"))
    cache = FeedCache(os.path.join(os.path.dirname(os.path.abspath(trails_file)), "feeds"))
    report: dict[str, dict[str, Any]] = {}
    for dataset in datasets:
        status = FeedStatus(f"list-{dataset.name}", "ok", url=dataset.url)
        dropped: dict[str, int] = {}
        entries: dict[str, tuple[str, str]] | None = None
        try:
            entries = _fetch(ctx, dataset, suffixes, dropped)
        except FeedError as ex:
            status.status, status.error = "failed", str(ex)
        kept = keep_good_copy(status.name, entries, status, cache, GRACE, ratio)
        if kept:
            path = list_path(trails_file, dataset.name)
            try:
                tmp, _ = atomic_write(path, _writer(list(kept)))
                publish_file(tmp, path)
            except OSError as ex:
                status.status, status.error = "failed", f"cannot write: {ex.strerror or ex}"
        report[dataset.name] = {"status": status.status, "entries": len(kept or ()), "dropped": dropped,
                                "error": status.error, "url": dataset.url}
    return report


def list_lines(report: dict[str, dict[str, Any]], bundled: dict[str, int]) -> list[str]:
    """Summary lines: each list's fetched and bundled counts."""
    lines = []
    for name, item in report.items():
        dropped = sum(item["dropped"].values())
        extra = f", {dropped} entries refused ({', '.join(f'{n} {w}' for w, n in sorted(item['dropped'].items()))})" \
            if dropped else ""
        error = f" ({item['error']})" if item.get("error") else ""
        lines.append(f"list {name}: {item['entries']} fetched entries [{item['status']}]{error} "
                     f"+ {bundled.get(name, 0)} bundled{extra}")
    return lines


def bundled_counts(data_dir: str) -> dict[str, int]:
    counts = {}
    for name, filename in (("ua", "ua.txt"), ("whitelist", "whitelist.txt"), ("ipcat", "ipcat_seed.csv"),
                           ("worst_asns", "worst_asns_seed.txt")):
        try:
            with open(os.path.join(data_dir, filename), encoding="utf-8") as handle:
                counts[name] = sum(1 for line in handle if line.strip() and not line.lstrip().startswith("#"))
        except OSError:
            counts[name] = 0
    return counts
