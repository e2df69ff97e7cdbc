"""`GET /check_ip?address=A`: what the server knows of an address without asking anyone.

Where it sits: a route of api.py. Answer `{ipcat, worst_asns, country}`:
- `ipcat`: the datacenter / hosting class (the provider's name) when the address is in a
  datacenter range, else null;
- `worst_asns`: true when the address is in a range of the networks with the most abuse;
- `country`: the RIR table (core/update/geo.py), null when unknown.
The two range lists are the bundled seeds (data/ipcat_seed.csv, data/worst_asns_seed.txt) plus
the lists the update fetches (core/update/datasets.py, `lists/ipcat.txt`, `lists/worst_asns.txt`
beside the trails file); they are reloaded when those files change. A malformed address is 400;
a private or reserved one answers nulls (it is in no public list).

`addresses=A,B,...` (at most MAX_BATCH; the web client POSTs it) answers many at once, for the web
client's flags and world map: `{A: {ipcat, worst_asns, country}, ...}`, a malformed address
answered null instead of refusing the batch.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Callable

from core.addr import range_label
from core.config import ROOT_DIR, Config
from core.server.auth import Session
from core.server.messages import HttpError, Request, Response, json_response
from core.update.datasets import AddressRange, parse_cidr_label, parse_ipcat
from core.update.geo import GeoTable, merge
from core.update.publish import list_path

DATA_DIR = os.path.join(ROOT_DIR, "data")
MAX_BATCH = 5000


class RangeList:
    """Labelled, merged ranges from several files; reloaded (at most once a minute) on change."""

    RECHECK = 60.0

    def __init__(self, paths: list[str], parse: Callable[[str], AddressRange | None]) -> None:
        self.paths = paths
        self.parse = parse
        self.lock = threading.Lock()
        self.stamp: tuple[float, ...] = ()
        self.checked = 0.0
        self.starts: dict[int, list[int]] = {4: [], 6: []}
        self.rows: dict[int, list[tuple[int, str]]] = {4: [], 6: []}

    def _stamp(self) -> tuple[float, ...]:
        stamp = []
        for path in self.paths:
            try:
                stamp.append(os.stat(path).st_mtime)
            except OSError:
                stamp.append(0.0)
        return tuple(stamp)

    def _refresh(self) -> None:
        now = time.monotonic()
        if self.stamp and now - self.checked < self.RECHECK:
            return
        self.checked = now
        stamp = self._stamp()
        if stamp == self.stamp:
            return
        records: list[AddressRange] = []
        for path in self.paths:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    for line in handle:
                        if line.strip() and not line.lstrip().startswith("#"):
                            parsed = self.parse(line)
                            if parsed is not None:
                                records.append(parsed)
            except OSError:
                continue
        starts: dict[int, list[int]] = {4: [], 6: []}
        rows: dict[int, list[tuple[int, str]]] = {4: [], 6: []}
        for version, first, last, label in merge(records):
            starts[version].append(first)
            rows[version].append((last, label))
        self.starts, self.rows, self.stamp = starts, rows, stamp

    def __len__(self) -> int:
        with self.lock:
            self._refresh()
            return len(self.starts[4]) + len(self.starts[6])

    def lookup(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        with self.lock:
            self._refresh()
            starts, rows = self.starts[address.version], self.rows[address.version]
        return range_label(starts, rows, int(address))


class AddressInfo:
    def __init__(self, config: Config, geo: GeoTable, data_dir: str = DATA_DIR) -> None:
        trails = config.TRAILS_FILE
        self.ipcat = RangeList([os.path.join(data_dir, "ipcat_seed.csv"), list_path(trails, "ipcat")], parse_ipcat)
        self.worst = RangeList([os.path.join(data_dir, "worst_asns_seed.txt"), list_path(trails, "worst_asns")],
                               parse_cidr_label)
        self.geo = geo

    def describe(self, text: str) -> dict[str, object] | None:
        """What the local data says of one address; None when it is not an address."""
        try:
            address = ipaddress.ip_address(text.strip().strip("[]"))
        except ValueError:
            return None
        if not address.is_global:
            return {"ipcat": None, "worst_asns": False, "country": None}
        return {"ipcat": self.ipcat.lookup(address), "worst_asns": self.worst.lookup(address) is not None,
                "country": self.geo.lookup(str(address))}

    def check_ip(self, request: Request, session: Session | None) -> Response:
        assert session is not None
        if "addresses" in request.params:
            wanted = [a.strip()[:64] for a in request.params["addresses"].split(",") if a.strip()]
            if len(wanted) > MAX_BATCH:
                raise HttpError(400, f"at most {MAX_BATCH} addresses")
            return json_response({a: self.describe(a) for a in wanted})
        answer = self.describe(request.params.get("address", "")[:64])
        if answer is None:
            raise HttpError(400, "address must be an IPv4 or IPv6 address")
        return json_response(answer)
