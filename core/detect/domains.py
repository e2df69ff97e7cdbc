"""Domain checks: the original's `_check_domain` order, shared by DNS, HTTP Host, TLS and QUIC SNI.

Where it sits: detect.py calls `DomainChecker.check(name)` for every DNS query name, every SNI,
every proxy/CONNECT target (and every Host header when CHECK_HOST_DOMAINS is set). It asks the
trail store and returns what to report; it never writes events itself.

Order (spec §1.7):
1. strip `:port`, fold case, skip numeric names; names cached as misses are skipped;
2. the name must look like a DNS name and must not be whitelisted (suffix match);
3. `X.ip-adress.com` reports `X(.ip-adress.com)` when X is listed;
4. exact / parent-domain walk: `name` or `(sub).parent`, with two exclusions — `ns|rns|dns|nf|mx|nic<digits>.`
   names are not flagged by `suspicious`/`sinkhole` trails, and a dynamic-DNS or free-web-hosting
   provider's own domain (or its `www.`) is not flagged, only its subdomains;
5. the long-domain heuristic (through the heuristics engine);
6. wildcard/regex trails, tried on the name and on each parent (`(prefix.)match`);
7. `.onion` gateways: `x.onion.to` reports `x.onion(.to)` when `x.onion` is listed;
8. the answer, hit or miss, is cached (LRU of DOMAIN_CACHE_ENTRIES names; cleared when the trails
   change), so the names a network repeats all day cost one dictionary lookup.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import NamedTuple

from core.heuristics import Heuristics
from core.heuristics.state import MISSING
from core.trails.store import Trail, TrailStore
from core.trails.whitelist import Whitelist

VALID_DNS_NAME = re.compile(r"[0-9a-z_-]+(?:\.[0-9a-z_-]+)*\Z")
NUMERIC_NAME = re.compile(r"[\d.]+\Z")
SERVICE_PREFIX = re.compile(r"(?:ns|rns|dns|nf|mx|nic)\d*\.")
HEURISTIC_REFERENCE = "(heuristic)"

# Query names never checked (hard-coded in the original; `dev` and `int` are real TLDs, not skipped).
IGNORE_DNS_QUERY_SUFFIXES = frozenset((
    "arpa", "local", "guest", "intranet", "corp", "home", "lan", "intra", "intran", "workgroup",
    "localdomain", "url", "alienvault", "example", "internal", "localnet", "test",
))


class DomainHit(NamedTuple):
    """What to report for a name: the trail text as logged, plus the trail's info and reference."""

    trail: str
    info: str
    reference: str


def ignored_query(name: str) -> bool:
    """DNS query names the sensor never checks (local suffixes, `.intranet.` names)."""
    tld = name.rpartition(".")[2]
    return tld in IGNORE_DNS_QUERY_SUFFIXES or ".intranet." in name


def _normal(name: str) -> str:
    """Lower case, without `:port` and trailing dots."""
    name = name.lower()
    if ":" in name:
        name = name.split(":", 1)[0]
    return name.rstrip(".")


class DomainChecker:
    """Runs the check order against one trail store; holds the answer cache (`cache`: name as
    passed to `check` -> its answer, least recently used first; `generation`: the store
    generation its answers belong to). The detector's compiled DNS query path reads and reorders
    `cache` as `check` would (core/detect/detector.py _udp)."""

    def __init__(self, store: TrailStore, whitelist: Whitelist | None, heuristics: Heuristics,
                 cache_entries: int = 16384) -> None:
        self.store = store
        self.whitelist = whitelist
        self.heuristics = heuristics
        self.cache_entries = cache_entries
        self.cache: OrderedDict[str, DomainHit | None] = OrderedDict()
        self.generation = store.generation
        self.cache_hits = 0
        self.cache_evictions = 0

    def swap_store(self, store: TrailStore) -> None:
        """Use a reloaded trail set: cached answers of the old one are dropped."""
        self.store = store
        self.cache.clear()
        self.generation = store.generation

    def _remember(self, name: str, hit: DomainHit | None) -> DomainHit | None:
        if self.cache_entries > 0:
            cache = self.cache
            cache[name] = hit
            if len(cache) > self.cache_entries:
                cache.popitem(last=False)
                self.cache_evictions += 1
        return hit

    def check(self, name: str) -> DomainHit | None:
        """The hit to report for `name`, or None."""
        if self.store.generation != self.generation:
            self.cache.clear()
            self.generation = self.store.generation
        cache = self.cache
        hit = cache.get(name, MISSING)
        if hit is not MISSING:
            cache.move_to_end(name)
            self.cache_hits += 1
            return hit
        key = name
        name = _normal(name)
        if not name or NUMERIC_NAME.match(name):
            return None
        if not self._checkable(name):
            return self._remember(key, None)
        return self._remember(key, self._lookup(name))

    def exact(self, name: str) -> DomainHit | None:
        """Only the name's own trail (no parent, heuristic or regex step, no cache): what a DNS
        query under a flooded base domain still gets (core/heuristics/dns.py, exhaustion)."""
        name = _normal(name)
        if not name or NUMERIC_NAME.match(name) or not self._checkable(name):
            return None
        trail = self.store.get(name)
        if trail is None or self._excluded(name, name, trail):
            return None
        return DomainHit(name, trail.info, trail.reference)

    def _checkable(self, name: str) -> bool:
        # valid names are lower case without a trailing dot, and never numeric (check skips those)
        return len(name) <= 255 and VALID_DNS_NAME.match(name) is not None and not (
            self.whitelist is not None and self.whitelist.listed_suffix(name))

    def _lookup(self, name: str) -> DomainHit | None:
        get = self.store.get
        if name.endswith(".ip-adress.com"):
            head = name[: -len(".ip-adress.com")]
            trail = get(head)
            if trail is not None:
                return DomainHit(head + "(.ip-adress.com)", trail.info, trail.reference)

        # the name, then each parent down to the last label (names are valid: no empty labels);
        # only the candidates the bloom lets through (bit k: the name without its first k labels)
        maybe = self.store.domain_suffixes(name)
        start, k = 0, 0
        while maybe >> k:  # -1 (every bit) never reaches 0: the walk then ends at the last label
            if maybe >> k & 1:
                candidate = name[start:]
                trail = get(candidate)
                if trail is not None and not self._excluded(name, candidate, trail):
                    text = name if start == 0 else "(" + name[:start - 1] + ")." + candidate
                    return DomainHit(text, trail.info, trail.reference)
            dot = name.find(".", start)
            if dot < 0:
                break
            start, k = dot + 1, k + 1

        long_domain = self.heuristics.domain(name)
        if long_domain is not None:
            return DomainHit(long_domain[0], long_domain[1], HEURISTIC_REFERENCE)

        parts = name.split(".")
        for i in range(len(parts) - 1 if self.store.regex_may_match(name) else 0):
            candidate = name if i == 0 else ".".join(parts[i:])
            found = self.store.match_regex(candidate)
            if found is not None:
                _, trail = found
                text = name if i == 0 else "(" + ".".join(parts[:i]) + ".)" + candidate
                return DomainHit(text, trail.info, trail.reference)

        index = name.find(".onion.")
        if index > 0:
            onion = name[: index + 6]
            trail = get(onion)
            if trail is not None:
                return DomainHit(onion + "(" + name[index + 6:] + ")", trail.info, trail.reference)
        return None

    @staticmethod
    def _excluded(name: str, candidate: str, trail: Trail) -> bool:
        return provider_exempt(name, candidate, trail.info)


def provider_exempt(name: str, candidate: str, info: str) -> bool:
    """The two exclusions of the parent walk: a trail `candidate` with `info` is not reported for
    `name` (also the update's canary check, core/update/canary.py)."""
    if ("suspicious" in info or "sinkhole" in info) and SERVICE_PREFIX.match(name):
        return True
    if ("dynamic" in info or "free web" in info) and (name == candidate or name == "www." + candidate):
        return True
    return False
