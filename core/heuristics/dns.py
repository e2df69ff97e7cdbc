"""DNS heuristics: exhaustion, NXDOMAIN floods, DGA-like labels, long domains, sinkholed/parked answers.

Where it sits: the engine's `dns_query`, `dns_response` and `domain` hooks, called by detect.py
with a parsed `core.protocols.dns.DnsMessage` (qname lower-case, no trailing dot). State is
bounded tables keyed by base domain / name; the trail store answers "is this answer address a
sinkhole or a parking site".

- dns_exhaustion: >= DNS_EXHAUSTION_THRESHOLD distinct prefixes under one base domain inside 60 s
  → `DNS` `(prefix).base` `potential dns exhaustion (suspicious)`, once per domain per hour;
  while exhausted, queries under it skip the per-name checks (`dns_query` returns True): the
  detector then looks up only the name's own trail, never the parent walk, the long-domain
  heuristic or regex trails, so a burst of random prefixes is quiet but a listed name under the
  flooded domain is still reported.
- nxdomain: RA+NXDOMAIN responses. Per exact name (clients outside RFC1918/loopback, as the
  original) and per base domain counting DISTINCT failing prefixes (every client: retransmits
  and a resolver seen on both sides count once, so internal clients are covered too), in hour
  buckets; more than NO_SUCH_NAME_PER_HOUR_THRESHOLD → `excessive no such domain (suspicious)`.
- dga: 2-label NXDOMAIN names: entropy > 3.5 or more than 9 consonants in the label.
- long_domain: first label longer than 24 characters without '-' (blogspot exempt).
- sinkhole/parked: first A/AAAA answer of an RA+NOERROR response listed with `sinkhole` /
  `parking` in its info.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from core.addr import ip_text, is_local
from core.config import Config
from core.decode.packet import Decoded
from core.detect.domains import ignored_query
from core.events.event import Event, TrailType
from core.heuristics.state import MISSING, BoundedCache
from core.protocols.dns import DnsMessage
from core.trails.store import TrailStore
from core.trails.whitelist import Whitelist

REFERENCE = "(heuristic)"
EXHAUSTION_WINDOW = 60
EXHAUSTION_HOLD = 3600
EXHAUSTION_MAX_KEYS = 10000
NXDOMAIN_MAX_KEYS = 50000
NXDOMAIN_PREFIXES_SHOWN = 10
DGA_CACHE_ENTRIES = 20000
ENTROPY_THRESHOLD = 3.5
CONSONANT_THRESHOLD = 9
LONG_LABEL = 24
_IPLIKE = re.compile(r"\d{1,3}[-.]\d{1,3}[-.]\d{1,3}[-.]\d{1,3}")
_DNSBL = re.compile(r"bl\b")
_EXHAUSTION_SKIP = ("wpad", "autodiscover", "_ldap._tcp")
_CONSONANTS = frozenset("bcdfghjklmnpqrstvwxz")


def base_domain(name: str) -> tuple[str, str]:
    """(prefix, base): base is two labels, or three for `x.y.co.uk`-style names (SLD <= 3 chars)."""
    labels = name.split(".")
    keep = 3 if len(labels) > 3 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[:-keep]), ".".join(labels[-keep:])


def entropy(text: str) -> float:
    counts: dict[str, int] = {}
    for char in text:
        counts[char] = counts.get(char, 0) + 1
    total = len(text)
    return -sum(count / total * math.log2(count / total) for count in counts.values())


class DnsHeuristics:
    def __init__(self, config: Config, store: TrailStore, whitelist: Whitelist | None, emit: Callable[[Event], None],
                 enabled: Callable[[str], bool]) -> None:
        self.store = store
        self.whitelist = whitelist
        self.emit = emit
        self.use_exhaustion = enabled("dns_exhaustion")
        self.use_nxdomain = enabled("nxdomain")
        self.use_dga = enabled("dga")
        self.use_long = enabled("long_domain")
        self.use_sinkhole = enabled("dns_sinkhole")
        self.exhaustion_threshold = config.DNS_EXHAUSTION_THRESHOLD
        self.nxdomain_threshold = config.NO_SUCH_NAME_PER_HOUR_THRESHOLD
        # base -> [deadline, prefixes, exhausted]: deadline ends the 60 s counting window, or the
        # hold while exhausted (queries under the base then get their exact lookup only);
        # prefixes is the first prefix itself (most bases see one) until a second makes it a set
        self.exhaustion: dict[str, list] = {}
        # key -> [hour, count, prefixes (base keys only), alerted]
        self.nxdomain: dict[str, list] = {}
        self.dga_cache: BoundedCache[str | None] = BoundedCache("dga", DGA_CACHE_ENTRIES)
        self.refused = {"dns_exhaustion": 0, "nxdomain": 0}

    def tables(self) -> dict[str, dict[str, int]]:
        return {
            "dns_exhaustion": {"keys": len(self.exhaustion), "max_keys": EXHAUSTION_MAX_KEYS,
                               "refused": self.refused["dns_exhaustion"]},
            "nxdomain": {"keys": len(self.nxdomain), "max_keys": NXDOMAIN_MAX_KEYS,
                         "refused": self.refused["nxdomain"]},
            "dga_cache": self.dga_cache.stats(),
        }

    def _whitelisted(self, name: str) -> bool:
        return self.whitelist is not None and self.whitelist.domain(name)

    # --- queries -------------------------------------------------------------------------------

    def query(self, sec: int, usec: int, d: Decoded, msg: DnsMessage) -> bool:
        # hot path (every DNS query): base domain by two rfind()s, one dict lookup, one set test
        if not self.use_exhaustion:
            return False
        name = msg.qname
        last = name.rfind(".")
        cut = name.rfind(".", 0, last)
        if cut < 0:
            return False  # fewer than three labels
        if last - cut <= 4:  # second-level label of <= 3 chars: keep three labels when there are 4+
            third = name.rfind(".", 0, cut)
            if third >= 0:
                cut = third
        base = name[cut + 1:]
        prefix = name[:cut]
        entry = self.exhaustion.get(base)
        if entry is None:
            if len(self.exhaustion) >= EXHAUSTION_MAX_KEYS:
                self._sweep_exhaustion(sec)
                if len(self.exhaustion) >= EXHAUSTION_MAX_KEYS:
                    self.refused["dns_exhaustion"] += 1
                    return False
            entry = self.exhaustion[base] = [sec + EXHAUSTION_WINDOW, prefix, False]
            count = 1
        elif sec >= entry[0]:  # the counting window (or the hold) is over: start a new window
            entry[0], entry[1], entry[2] = sec + EXHAUSTION_WINDOW, prefix, False
            count = 1
        elif entry[2]:
            return True
        else:
            prefixes: str | set[str] = entry[1]
            if isinstance(prefixes, str):
                if prefixes == prefix:
                    return False
                prefixes = entry[1] = {prefixes, prefix}
            elif prefix in prefixes:
                return False
            else:
                prefixes.add(prefix)
            count = len(prefixes)
        if count < self.exhaustion_threshold:
            return False
        return self._exhausted(sec, usec, d, name, prefix, base, entry)

    def exhaustion_shortcut(self) -> tuple[dict[str, list], int, int, int] | None:
        """The window as core/accel/_dns.c query_seen steps it, the rules of `query` above
        (None: the heuristic is off, `query` keeps no state)."""
        if not self.use_exhaustion:
            return None
        return (self.exhaustion, self.exhaustion_threshold, EXHAUSTION_MAX_KEYS, EXHAUSTION_WINDOW)

    def _exhausted(self, sec: int, usec: int, d: Decoded, name: str, prefix: str, base: str, entry: list) -> bool:
        entry[1] = set()
        entry[2] = True
        if (_IPLIKE.match(prefix) or _DNSBL.search(name) or any(skip in name for skip in _EXHAUSTION_SKIP)
                or self._whitelisted(name)):
            entry[0] = sec + EXHAUSTION_WINDOW
            return False
        entry[0] = sec + EXHAUSTION_HOLD
        self.emit(Event(sec, usec, ip_text(d.src), d.sport, ip_text(d.dst), d.dport, "UDP", TrailType.DNS,
                        f"({prefix}).{base}", "potential dns exhaustion (suspicious)", REFERENCE))
        return True

    def _sweep_exhaustion(self, sec: int) -> None:
        # entry: [deadline (window end, or hold end when exhausted), prefixes, exhausted]
        doomed = [base for base, (deadline, prefixes, exhausted) in self.exhaustion.items()
                  if sec >= deadline or ((prefixes.__class__ is str or len(prefixes) <= 1) and not exhausted)]
        for base in doomed:
            del self.exhaustion[base]

    # --- responses -----------------------------------------------------------------------------

    def response(self, sec: int, usec: int, d: Decoded, msg: DnsMessage) -> None:
        if not msg.ra:
            return
        rcode = msg.rcode
        if rcode == 3:
            self._nxdomain(sec, usec, d, msg.qname)
        elif rcode == 0 and self.use_sinkhole and msg.answers:
            self._answers(sec, usec, d, msg)

    def _answers(self, sec: int, usec: int, d: Decoded, msg: DnsMessage) -> None:
        addresses = msg.a_records()
        if not addresses:
            return
        hit = self.store.ip(addresses[0])
        if hit is None:
            return
        info = hit.info
        name = msg.qname
        if "sinkhole" in info:
            words = info.split()
            label = f"sinkholed by {words[1] if len(words) > 1 else 'unknown'} (malware)"
        elif "parking" in info:
            label = "parked site (suspicious)"
        else:
            return
        if not name or self._whitelisted(name):
            return
        head, _, tld = name.rpartition(".")
        trail = f"({head}).{tld}" if head else name
        self.emit(Event(sec, usec, ip_text(d.src), d.sport, ip_text(d.dst), d.dport, "UDP", TrailType.DNS,
                        trail, label, REFERENCE))

    def _nxdomain(self, sec: int, usec: int, d: Decoded, name: str) -> None:
        if not name or "." not in name:
            return
        labels = name.split(".")
        if labels[-1].isdigit() or ignored_query(name) or self._whitelisted(name):
            return
        if len(labels) >= 4 and all(label.isdigit() for label in labels[:4]):
            return  # DNSBL-style reversed address lookups
        if self.use_dga and len(labels) == 2:
            self._dga(sec, usec, d, labels[0], labels[1])
        if not self.use_nxdomain:
            return
        prefix, base = base_domain(name)
        held = self.exhaustion.get(base)
        if held is not None and held[2] and sec < held[0]:
            return
        if self.store.get(name) is not None:
            return
        hour = sec // 3600
        if not is_local(d.dst):
            self._count_nxdomain(sec, usec, d, name, hour, None)
        if prefix:
            self._count_nxdomain(sec, usec, d, "*." + base, hour, prefix)

    def _count_nxdomain(self, sec: int, usec: int, d: Decoded, key: str, hour: int, prefix: str | None) -> None:
        table = self.nxdomain
        entry = table.get(key)
        if entry is None or entry[0] != hour:
            if entry is None and len(table) >= NXDOMAIN_MAX_KEYS:
                doomed = [k for k, e in table.items() if e[0] != hour or (e[1] <= 1 and not e[3])]
                for k in doomed:
                    del table[k]
                if len(table) >= NXDOMAIN_MAX_KEYS:
                    self.refused["nxdomain"] += 1
                    return
            entry = table[key] = [hour, 0, set() if prefix is not None else None, False]
        if prefix is not None:
            prefixes: set[str] = entry[2]
            if prefix in prefixes:
                return
            if len(prefixes) <= self.nxdomain_threshold + NXDOMAIN_PREFIXES_SHOWN:
                prefixes.add(prefix)
        entry[1] += 1
        if entry[1] > self.nxdomain_threshold and not entry[3]:
            entry[3] = True
            if prefix is None:
                trail = key
            else:
                shown = sorted(entry[2])[:NXDOMAIN_PREFIXES_SHOWN]
                trail = f"({','.join(shown)}{',...' if len(entry[2]) > len(shown) else ''}).{key[2:]}"
            self.emit(Event(sec, usec, ip_text(d.src), d.sport, ip_text(d.dst), d.dport, "UDP", TrailType.DNS,
                            trail, "excessive no such domain (suspicious)", REFERENCE))

    def _dga(self, sec: int, usec: int, d: Decoded, label: str, tld: str) -> None:
        if "-" in label or not label:
            return
        verdict = self.dga_cache.get(label)
        if verdict is MISSING:
            verdict = None
            if entropy(label) > ENTROPY_THRESHOLD:
                verdict = "entropy threshold no such domain (suspicious)"
            elif sum(1 for char in label if char in _CONSONANTS) > CONSONANT_THRESHOLD:
                verdict = "consonant threshold no such domain (suspicious)"
            self.dga_cache.put(label, verdict)
        if verdict is not None:
            self.emit(Event(sec, usec, ip_text(d.src), d.sport, ip_text(d.dst), d.dport, "UDP", TrailType.DNS,
                            f"({label}).{tld}", verdict, REFERENCE))

    # --- domain check step 5 -------------------------------------------------------------------

    def domain(self, name: str) -> tuple[str, str] | None:
        if not self.use_long:
            return None
        dot = name.find(".")
        if dot <= LONG_LABEL or "-" in name[:dot] or "blogspot" in name:
            return None
        if name.count(".") < 1 or self._whitelisted(name):
            return None
        prefix, base = base_domain(name)
        if not prefix:
            return None
        return f"({prefix}).{base}", "long domain (suspicious)"

    def expire(self, sec: int) -> None:
        hour = sec // 3600
        doomed = [key for key, entry in self.nxdomain.items() if entry[0] < hour]
        for key in doomed:
            del self.nxdomain[key]
        self._sweep_exhaustion(sec)
