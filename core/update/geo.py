"""Address -> country table built from the RIRs' delegated statistics (no online lookups).

Where it sits: the trail update (core/update/) calls `update_geo(config, fetch)` which, when the
table beside the trails file (`ip2cc.csv.gz`) is missing or older than MAX_AGE (30 days), downloads
the five RIRs' `delegated-<rir>-extended-latest` files, merges them into one sorted range table
and writes it atomically there. Until then the server reads the bundled copy, data/ip2cc.csv.gz
(BUNDLED_TABLE, built by tools/build_geo_table.py with these same functions). The server's /geo
and /check_ip (core/server/queries.py, addrinfo.py) map addresses to countries with `GeoTable.lookup`.

Delegated-statistics format (public, one record a line, `|` separated):
    registry|cc|type|start|value|date|status[|opaque-id[|extensions]]
`type` ipv4 (value = number of addresses), ipv6 (value = prefix length) or asn; header and
`summary` lines are skipped; only `allocated`/`assigned` records with a two-letter cc are used.
Table file: gzip text. First line `#ip2cc/2` then `key=value` notes (`built=` date, `<registry>=`
records); then one `<4|6>,<gap>,<size>,<CC>` line per merged range, sorted, where gap (hex) is
the distance from the end of the previous range of that version (the first range: from address
0) and size (hex) the number of addresses. A file without that first line is not read.

A new table replaces the current one only when every registry delivered records, no registry
delivered fewer than TRAIL_RELOAD_MIN_RATIO of its count in the current table, and the merged
ranges pass the same ratio against the current table (core/update/publish.py `size_refusal`).
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from core.addr import range_label
from core.config import ROOT_DIR, Config
from core.update.publish import size_refusal

RIR_URLS = {
    "arin": "https://ftp.arin.net/pub/stats/arin/delegated-arin-extended-latest",
    "ripencc": "https://ftp.ripe.net/pub/stats/ripencc/delegated-ripencc-extended-latest",
    "apnic": "https://ftp.apnic.net/stats/apnic/delegated-apnic-extended-latest",
    "lacnic": "https://ftp.lacnic.net/pub/stats/lacnic/delegated-lacnic-extended-latest",
    "afrinic": "https://ftp.afrinic.net/pub/stats/afrinic/delegated-afrinic-extended-latest",
}
TABLE_NAME = "ip2cc.csv.gz"
BUNDLED_TABLE = os.path.join(ROOT_DIR, "data", TABLE_NAME)  # tools/build_geo_table.py
Range = tuple[int, int, int, str]      # (version, first, last, cc)
IP_IN_TRAIL = re.compile(r"(?<![\w.:])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.])")


def geo_path(config: Config) -> str:
    trails = config.TRAILS_FILE
    return os.path.join(os.path.dirname(os.path.abspath(trails)), TABLE_NAME)


def parse_delegated(text: str) -> Iterator[Range]:
    """Records of one delegated-statistics file as (version, first, last, cc); bad lines skipped."""
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        parts = line.split("|")
        if len(parts) < 7 or parts[2] not in ("ipv4", "ipv6") or parts[6] not in ("allocated", "assigned"):
            continue
        cc = parts[1].upper()
        if not re.fullmatch(r"[A-Z]{2}", cc):
            continue
        try:
            start = ipaddress.ip_address(parts[3])
            value = int(parts[4])
        except ValueError:
            continue
        if parts[2] == "ipv4":
            if start.version != 4 or not 0 < value <= 1 << 32:
                continue
            first = int(start)
            last = min(first + value - 1, (1 << 32) - 1)
            yield 4, first, last, cc
        else:
            if start.version != 6 or not 0 <= value <= 128:
                continue
            first = int(start) & ~((1 << (128 - value)) - 1) & ((1 << 128) - 1)
            yield 6, first, first + (1 << (128 - value)) - 1, cc


def merge(records: Iterable[Range]) -> list[Range]:
    """Sorted ranges with adjacent/overlapping same-country ranges merged (overlaps: first wins)."""
    out: list[Range] = []
    for version, first, last, cc in sorted(records):
        if out and out[-1][0] == version:
            pv, pf, pl, pcc = out[-1]
            if first <= pl:
                if last <= pl:
                    continue
                first = pl + 1
            if pcc == cc and first == pl + 1:
                out[-1] = (pv, pf, last, pcc)
                continue
        out.append((version, first, last, cc))
    return out


MAGIC = "#ip2cc/2"
MAX_AGE = 30 * 86400  # the registries' files change slowly: refresh the table monthly


def write_table(path: str, ranges: list[Range], notes: dict[str, str | int] | None = None) -> None:
    """Write `ranges` (sorted, disjoint: `merge`'s output) atomically in the table format."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    header = " ".join([MAGIC, *(f"{key}={value}" for key, value in (notes or {}).items())])
    previous = {4: -1, 6: -1}
    with gzip.open(tmp, "wt", encoding="ascii") as handle:
        handle.write(header + "\n")
        for version, first, last, cc in ranges:
            handle.write(f"{version},{first - previous[version] - 1:x},{last - first + 1:x},{cc}\n")
            previous[version] = last
    os.replace(tmp, path)


def read_notes(path: str) -> dict[str, str]:
    """The `key=value` notes of a table file's first line. Raises OSError/ValueError/EOFError when
    the file is unreadable or not a table."""
    with gzip.open(path, "rt", encoding="ascii") as handle:
        header = handle.readline().split()
    if not header or header[0] != MAGIC:
        raise ValueError(f"{path}: not a {MAGIC} table")
    return dict(item.split("=", 1) for item in header[1:] if "=" in item)


def iter_table(path: str) -> Iterator[Range]:
    """The ranges of a table file, in order. Raises like `read_notes`, also part way through."""
    previous = {4: -1, 6: -1}
    countries: dict[str, str] = {}  # one string per country, not one per range
    with gzip.open(path, "rt", encoding="ascii") as handle:
        header = handle.readline()
        if not header.startswith(MAGIC):
            raise ValueError(f"{path}: not a {MAGIC} table")
        for line in handle:
            parts = line.rstrip("\n").split(",")
            if len(parts) != 4 or parts[0] not in ("4", "6"):
                continue
            version = int(parts[0])
            first = previous[version] + 1 + int(parts[1], 16)
            last = first + int(parts[2], 16) - 1
            if last < first:
                raise ValueError(f"{path}: empty range")
            yield version, first, last, countries.setdefault(parts[3], parts[3])
            previous[version] = last


def read_table(path: str) -> tuple[dict[str, str], list[Range]]:
    """The notes and ranges of a table file. Raises like `read_notes`."""
    return read_notes(path), list(iter_table(path))


def table_age(path: str, now: float | None = None) -> float | None:
    """Seconds since `path` was written, or None when there is no such file."""
    try:
        return (time.time() if now is None else now) - os.stat(path).st_mtime
    except OSError:
        return None


def current_table(config: Config) -> tuple[dict[str, str], list[Range]]:
    """The table the server reads now: the updated one, else the bundled one (empty if neither)."""
    for path in (geo_path(config), BUNDLED_TABLE):
        try:
            return read_table(path)
        except (OSError, ValueError, EOFError):
            continue
    return {}, []


@dataclass
class GeoReport:
    records: dict[str, int] = field(default_factory=dict)  # records per registry (0 = failed)
    written: bool = False
    reason: str = ""                                        # why nothing was written


def update_geo(config: Config, fetch: Callable[[str], bytes | str],
               log: Callable[[str], None] | None = None, *, force: bool = False) -> GeoReport:
    """Rebuild the table from the RIRs when it is missing, unreadable or older than MAX_AGE (or
    `force`). `fetch(url)` returns the body or raises. The current table is kept unless the new one
    passes the rules of the module docstring."""
    path = geo_path(config)
    age = table_age(path)
    if not force and age is not None and age < MAX_AGE:
        try:
            for _range in iter_table(path):  # whole: a truncated file is rebuilt now
                pass
            return GeoReport(reason=f"the table is {age / 86400:.0f} days old (refreshed every {MAX_AGE // 86400})")
        except (OSError, ValueError, EOFError):
            pass  # unreadable: rebuild it
    report = GeoReport()
    records: list[Range] = []
    for rir, url in RIR_URLS.items():
        try:
            body = fetch(url)
            text = body.decode("ascii", "replace") if isinstance(body, bytes) else body
            rows = list(parse_delegated(text))
        except Exception as ex:  # noqa: BLE001 - isolation point: one RIR
            rows = []
            if log:
                log(f"geo: {rir}: {ex}")
        report.records[rir] = len(rows)
        records.extend(rows)
    ranges = merge(records)
    notes, current = current_table(config)
    ratio = float(config.TRAIL_RELOAD_MIN_RATIO or 0)
    failed = [rir for rir, count in report.records.items() if not count]
    if failed:
        report.reason = f"no records from {', '.join(failed)}"
    for rir, count in report.records.items():
        if report.reason:
            break
        why = size_refusal(count, int(notes.get(rir, "0") or 0), ratio)
        report.reason = f"{rir}: {why}" if why else ""
    if not report.reason:
        why = size_refusal(len(ranges), len(current), ratio)
        report.reason = f"merged ranges: {why}" if why else ""
    if report.reason:
        if log:
            log(f"geo: keeping the current table: {report.reason}")
        return report
    write_table(path, ranges, {"built": time.strftime("%Y-%m-%d", time.gmtime()), **report.records})
    report.written = True
    return report


class GeoTable:
    """Lazy, reloading view of the table: `path` (the updated one) when readable, else `fallback`
    (the bundled one). Thread-safe lookups by bisection."""

    RECHECK = 60.0

    def __init__(self, path: str, fallback: str | None = BUNDLED_TABLE) -> None:
        self.paths = [path] if fallback is None else [path, fallback]
        self.lock = threading.Lock()
        self.stamp: tuple[str, float] | None = None
        self.unreadable: set[tuple[str, float]] = set()  # not read again until rewritten
        self.checked = 0.0
        self.starts: dict[int, list[int]] = {4: [], 6: []}
        self.rows: dict[int, list[tuple[int, str]]] = {4: [], 6: []}

    def _refresh(self) -> None:
        now = time.monotonic()
        if self.stamp is not None and now - self.checked < self.RECHECK:
            return
        self.checked = now
        for path in self.paths:
            try:
                stamp = (path, os.stat(path).st_mtime)
                if stamp == self.stamp:
                    return
                if stamp in self.unreadable:
                    continue
                starts: dict[int, list[int]] = {4: [], 6: []}
                rows: dict[int, list[tuple[int, str]]] = {4: [], 6: []}
                for version, first, last, cc in iter_table(path):
                    starts[version].append(first)
                    rows[version].append((last, cc))
            except (ValueError, EOFError, gzip.BadGzipFile):
                self.unreadable.add(stamp)
                continue
            except OSError:
                continue
            self.starts, self.rows, self.stamp = starts, rows, stamp
            return
        self.starts, self.rows, self.stamp = {4: [], 6: []}, {4: [], 6: []}, ("", 0.0)

    def version(self) -> float:
        with self.lock:
            self._refresh()
            return self.stamp[1] if self.stamp else 0.0

    def available(self) -> bool:
        with self.lock:
            self._refresh()
            return bool(self.starts[4] or self.starts[6])

    def lookup(self, text: str) -> str | None:
        """Two-letter country of an address, or None (unknown, private or malformed)."""
        try:
            addr = ipaddress.ip_address(text.strip().strip("[]"))
        except ValueError:
            return None
        with self.lock:
            self._refresh()
            starts, rows = self.starts[addr.version], self.rows[addr.version]
        return range_label(starts, rows, int(addr))


def event_country(event_type: str, trail: str, src_ip: str, dst_ip: str) -> str | None:
    """Which address of an event to place on the map (the original's rule):
    an IP inside the trail; DNS unmapped; PATH/PORT the source; otherwise the destination."""
    found = IP_IN_TRAIL.search(trail or "")
    if found:
        return found.group(1)
    if event_type == "DNS":
        return None
    if event_type in ("PATH", "PORT"):
        return src_ip if src_ip != "-" else None
    return dst_ip if dst_ip != "-" else None
