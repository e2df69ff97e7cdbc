"""Address -> country table built from the RIRs' delegated statistics (no online lookups).

Where it sits: the trail update (core/update/) calls `update_geo(config, fetch)` which
downloads the five RIRs' `delegated-<rir>-extended-latest` files, merges them into one sorted
range table and writes it atomically beside the trails file (`ip2cc.csv.gz`). The server's /geo
endpoint (core/server/queries.py) maps event addresses to countries with `GeoTable.lookup`.

Delegated-statistics format (public, one record a line, `|` separated):
    registry|cc|type|start|value|date|status[|opaque-id[|extensions]]
`type` ipv4 (value = number of addresses), ipv6 (value = prefix length) or asn; header and
`summary` lines are skipped; only `allocated`/`assigned` records with a two-letter cc are used.
Table file: gzip text, one `<4|6>,<first int>,<last int>,<CC>` line per merged range, sorted.
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from core.addr import range_label
from core.config import Config

RIR_URLS = {
    "arin": "https://ftp.arin.net/pub/stats/arin/delegated-arin-extended-latest",
    "ripencc": "https://ftp.ripe.net/pub/stats/ripencc/delegated-ripencc-extended-latest",
    "apnic": "https://ftp.apnic.net/stats/apnic/delegated-apnic-extended-latest",
    "lacnic": "https://ftp.lacnic.net/pub/stats/lacnic/delegated-lacnic-extended-latest",
    "afrinic": "https://ftp.afrinic.net/pub/stats/afrinic/delegated-afrinic-extended-latest",
}
TABLE_NAME = "ip2cc.csv.gz"
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


def write_table(path: str, ranges: list[Range]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with gzip.open(tmp, "wt", encoding="ascii") as handle:
        for version, first, last, cc in ranges:
            handle.write(f"{version},{first},{last},{cc}\n")
    os.replace(tmp, path)


def update_geo(config: Config, fetch: Callable[[str], bytes | str],
               log: Callable[[str], None] | None = None) -> dict[str, int]:
    """Rebuild the table from the RIRs. Returns records per RIR (0 = failed); keeps the old table
    when every RIR failed. `fetch(url)` returns the body or raises."""
    report: dict[str, int] = {}
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
        report[rir] = len(rows)
        records.extend(rows)
    if records:
        write_table(geo_path(config), merge(records))
    elif log:
        log("geo: every RIR failed; keeping the previous table")
    return report


class GeoTable:
    """Lazy, reloading view of the table file. Thread-safe lookups by bisection."""

    RECHECK = 60.0

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.mtime = -1.0
        self.checked = 0.0
        self.starts: dict[int, list[int]] = {4: [], 6: []}
        self.rows: dict[int, list[tuple[int, str]]] = {4: [], 6: []}

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self.checked < self.RECHECK and self.mtime >= 0:
            return
        self.checked = now
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            self.mtime = 0.0
            self.starts, self.rows = {4: [], 6: []}, {4: [], 6: []}
            return
        if mtime == self.mtime:
            return
        starts: dict[int, list[int]] = {4: [], 6: []}
        rows: dict[int, list[tuple[int, str]]] = {4: [], 6: []}
        try:
            with gzip.open(self.path, "rt", encoding="ascii") as handle:
                for line in handle:
                    parts = line.rstrip("\n").split(",")
                    if len(parts) != 4 or parts[0] not in ("4", "6"):
                        continue
                    version = int(parts[0])
                    starts[version].append(int(parts[1]))
                    rows[version].append((int(parts[2]), parts[3]))
        except (OSError, ValueError, EOFError):
            return
        self.starts, self.rows, self.mtime = starts, rows, mtime

    def version(self) -> float:
        with self.lock:
            self._refresh()
            return self.mtime

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
