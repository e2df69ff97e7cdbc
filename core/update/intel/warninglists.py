"""MISP warning lists: known-good values dropped from every imported intel source, counted per list.

Where it sits: intel sources (core/update/intel/) -> mapped trails -> **WarningFilter.apply** ->
the per-source guard (run.py) -> merge. On by default; `INTEL_WARNINGLISTS false` turns it off.
The lists come from the optional `pymispwarninglists` package (its shipped data, read offline);
without the package the filter is off and the update's report says to install it.

Which lists and how they match (docs/intel.md, "Filter"):
- `cidr` lists: an address trail (also the host of an `ip:port` or the start of a CIDR trail) inside
  a listed network (RFC 1918/bogon space, public resolvers, cloud and CDN ranges, scanners);
- `string` and `hostname` lists that apply to domains/hostnames/URLs: a domain trail equal to a
  listed value, or a URL trail that is only a listed host's root (`host/`). Hostname lists match
  exactly, not their subdomains: a top site's or a dynamic DNS provider's subdomains are where
  malicious content lives;
- `string` lists that apply to sha1 / x509-fingerprint-sha1 / ja3: certificate and JA3 trails;
- User-Agent trails (`ua:`) are not filtered: no list of known-good User-Agents is used;
- `substring` and `regex` lists (e-mail, phone numbers) are not used, nor lists over MAX_LIST_BYTES
  (the million-entry top lists and the benign file hash list: memory the update does not spend).
"""

from __future__ import annotations

import bisect
import glob
import importlib.util
import ipaddress
import json
import os
import socket
from dataclasses import dataclass, field

from core.trails.index import UA_PREFIX
from core.update.feeds import Trails
from core.update.intel.mapping import IntelStats

MAX_LIST_BYTES = 4 << 20
INSTALL_HINT = "pymispwarninglists not installed: install requirements-intel.txt to filter known-good values"
_DOMAIN_ATTRS = {"domain", "hostname", "domain|ip", "url", "uri"}
_IP_ATTRS = {"ip-src", "ip-dst", "domain|ip", "ip-dst|port", "ip-src|port"}
_HASH_ATTRS = {"sha1", "x509-fingerprint-sha1", "ja3-fingerprint-md5", "md5"}


class Networks:
    """Possibly overlapping integer intervals, each with a list name; `find(value)` -> a name or None."""

    def __init__(self, spans: list[tuple[int, int, str]]) -> None:
        spans.sort()
        self.starts = [span[0] for span in spans]
        self.ends = [span[1] for span in spans]
        self.names = [span[2] for span in spans]
        self.reach: list[int] = []  # the largest end among spans[0..i]
        for end in self.ends:
            self.reach.append(max(end, self.reach[-1]) if self.reach else end)

    def find(self, value: int) -> str | None:
        index = bisect.bisect_right(self.starts, value) - 1
        while index >= 0 and self.reach[index] >= value:
            if self.ends[index] >= value:
                return self.names[index]
            index -= 1
        return None


def _span(text: str) -> tuple[int, int, int] | None:
    """(version, first, last) of an address or network; IPv4 parsed directly (the lists hold 100k+)."""
    address, _, prefix = text.partition("/")
    if "." in address and ":" not in address:
        try:
            first = int.from_bytes(socket.inet_aton(address), "big")
        except OSError:
            return None
        bits = int(prefix) if prefix.isdigit() and int(prefix) <= 32 and address.count(".") == 3 else 32
        size = 1 << (32 - bits)
        first &= ~(size - 1) & 0xFFFFFFFF
        return 4, first, first + size - 1
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return net.version, int(net.network_address), int(net.broadcast_address)


@dataclass
class WarningFilter:
    """The selected lists, indexed for the trail kinds; `problem` says why filtering is off."""

    values: dict[str, str] = field(default_factory=dict)        # domain/hash value -> list name
    v4: Networks = field(default_factory=lambda: Networks([]))
    v6: Networks = field(default_factory=lambda: Networks([]))
    lists: int = 0
    problem: str | None = None

    @classmethod
    def load(cls, enabled: bool = True, lists_dir: str | None = None) -> WarningFilter:
        """The shipped lists (or those in `lists_dir`: one `<name>/list.json` each, the package's layout)."""
        if not enabled:
            return cls()
        if lists_dir is None:
            try:  # its data only: importing the package costs seconds
                spec = importlib.util.find_spec("pymispwarninglists")
            except (ImportError, ValueError):
                spec = None
            if spec is None or not spec.submodule_search_locations:
                return cls(problem=INSTALL_HINT)
            lists_dir = os.path.join(list(spec.submodule_search_locations)[0], "data", "misp-warninglists", "lists")
        found = cls()
        v4: list[tuple[int, int, str]] = []
        v6: list[tuple[int, int, str]] = []
        for path in sorted(glob.glob(os.path.join(lists_dir, "*", "list.json"))):
            try:
                if os.path.getsize(path) > MAX_LIST_BYTES:
                    continue
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                continue
            if found._add(data, v4, v6):
                found.lists += 1
        found.v4, found.v6 = Networks(v4), Networks(v6)
        if not found.lists:
            found.problem = f"no warning lists found in {lists_dir}"
        return found

    def _add(self, data: object, v4: list[tuple[int, int, str]], v6: list[tuple[int, int, str]]) -> bool:
        if not isinstance(data, dict) or not isinstance(data.get("list"), list):
            return False
        name = str(data.get("name") or "unnamed")[:96]
        kind = data.get("type")
        attrs = set(data.get("matching_attributes") or [])
        values = [str(value).strip().lower() for value in data["list"] if isinstance(value, str | int)]
        if kind == "cidr":
            for value in values:
                span = _span(value)
                if span is not None:
                    (v4 if span[0] == 4 else v6).append((span[1], span[2], name))
            return True
        if kind not in ("string", "hostname") or not attrs & (_DOMAIN_ATTRS | _IP_ATTRS | _HASH_ATTRS):
            return False
        for value in values:
            self.values.setdefault(value.lstrip("."), name)
        return True

    @property
    def enabled(self) -> bool:
        return self.lists > 0

    def listed(self, key: str) -> str | None:
        """The name of the list that holds this trail key's value, or None."""
        if not key or key.startswith(UA_PREFIX):  # User-Agent trails: no list of those is used
            return None
        host = key
        if key[0] == "[":  # [v6]:port
            host = key[1:key.find("]")] if "]" in key else key
        elif key.count(":") == 1:  # v4:port
            host = key.split(":", 1)[0]
        elif "/" in key:
            host, _, path = key.partition("/")
            if host.replace(".", "").isdigit() and path.isdigit():  # a CIDR trail: its first address
                pass
            elif path:
                return None  # a URL with a path is an indicator even on a known-good host
        if not (host[:1].isdigit() or ":" in host):  # a name: no address parse (most keys)
            return self.values.get(host)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return self.values.get(host)
        name = (self.v4 if address.version == 4 else self.v6).find(int(address))
        return name if name is not None else self.values.get(host)

    def apply(self, trails: Trails, stats: IntelStats) -> Trails:
        """The trails without listed values; each drop counted as `warning list: <name>`."""
        if not self.enabled:
            return trails
        kept: Trails = {}
        listed = self.listed
        for key, pair in trails.items():
            name = listed(key)
            if name is None:
                kept[key] = pair
            else:
                stats.skip(f"warning list: {name}")
        return kept
