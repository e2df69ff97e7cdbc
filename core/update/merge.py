"""Trail merge rules: keys from every source -> one normalised set -> the filtered rows of trails.csv.

Where it sits: feeds/static/custom -> update (core/update/) -> **merge** -> publication
(core/update/publish.py) -> trails.csv. The update adds every source in order to a `TrailMerger`;
later items win by the merge rules below, and `TrailMerger.rows()` streams the final rows through
the filters while the file is written (docs/trails.md has the rules).

- Keys are normalised on insert (IDNA, lower case, no `www.`, no `?query`, no `//` runs). Regex
  trails keep their `?` (the original cut them).
- Final filters run while writing (IP_MINIMUM_FEEDS, whitelist, bogon/CDN `Ranges`, bad
  prefixes, ...); every dropped key is counted in `MergeStats` by reason.
"""

from __future__ import annotations

import bisect
import ipaddress
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from core.config import Config
from core.trails.index import UA_PREFIX
from core.trails.whitelist import Whitelist
from core.update.feeds import Trails
from core.update.sanity import TrailRules

LOW_PRIORITY_INFO_KEYWORDS = ("reputation", "attacker", "spammer", "abuser", "malicious", "dnspod",
                              "nicru", "crawler", "compromised", "bad history")
HIGH_PRIORITY_INFO_KEYWORDS = ("mass scanner", "ipinfo")
FIXED_REFERENCES = frozenset(("(static)", "(custom)", "(remote custom)"))
BAD_TRAIL_PREFIXES = ("127.", "192.168.", "localhost")
_LEADING_IPV4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?=$|[:/])")
_REGEX_CHARS = re.compile(r"[\\()\[\]*+|^${}]")


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
    """The original's key normalisation: IDNA, lower case, no `www.`, no `?query`, no `//` runs.
    A User-Agent trail (`ua:<value>`) keeps its value as written, only stripped (the index and the
    sensor compare User-Agents without case: core/trails/index.py `user_agent_key`)."""
    if not key or key[0] <= " " or key[-1] <= " ":
        key = key.strip()
    if not key or len(key) > 2048:
        return None
    if key[2:3] == ":" and key[:2].lower() == "ua":
        value = key[3:].strip()
        return UA_PREFIX + value if value else None
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
    """Why keys did not make it into trails.csv (reported in the summary and the health file):
    `dropped` by reason, and the sanity rejections (core/update/sanity.py) by source and reason."""

    dropped: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def reject(self, source: str, reason: str) -> None:
        self.drop(reason)
        per_source = self.rejected.setdefault(source, {})
        per_source[reason] = per_source.get(reason, 0) + 1


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
             stats: MergeStats, rules: TrailRules) -> Iterator[tuple[str, str, str]]:
        """Final rows with the original's post-processing and filters (streamed while writing); every
        row passes the sanity rules first (core/update/sanity.py)."""
        minimum = int(config.IP_MINIMUM_FEEDS or 1)
        disabled_info = re.compile(config.DISABLED_TRAILS_INFO_REGEX) if config.DISABLED_TRAILS_INFO_REGEX else None
        extra_map = self.extra
        domains = whitelist.domains  # suffix walk inlined: this loop runs once per trail (1.6M)
        regex_chars, leading_ipv4 = _REGEX_CHARS.search, _LEADING_IPV4.match
        reject = rules.reject
        for key, (info, reference) in self.trails.items():
            fixed = reference in FIXED_REFERENCES
            why = reject(key, info, reference)
            if why is not None:
                stats.reject(reference, why)
                continue
            if key.startswith(BAD_TRAIL_PREFIXES):
                stats.drop("bad prefix")
                continue
            extra_set = extra_map.get(key)
            extra = sorted(extra_set - {reference}) if extra_set else ()
            leading = leading_ipv4(key) if key[0].isdigit() else None
            if leading:
                octets = [int(part) for part in leading.groups()]
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

