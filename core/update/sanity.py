"""Trail sanity: the one validation every row of every source passes before it can be published.

Where it sits: update (core/update/orchestrate.py) -> merge (core/update/merge.py `TrailMerger.rows`,
which runs every feed, static, custom and CUSTOM_TRAILS_URL row through `TrailRules.reject`) and the
UPDATE_SERVER pull (every downloaded row, same rules) -> publication. A rejected row is dropped and
counted by reason and by source (its reference), in the summary and the health file.

What is rejected (docs/trails.md, "Sanity"):
- control bytes, white space, U+FFFD, markup characters (`<`, `>`, backquote: never in a host or a
  request path as sent),
  keys longer than MAX_KEY_LENGTH;
- regex trails that do not compile or that match an empty name, a bare TLD or an ordinary domain
  (`.*`, `[a-z]+`): they would fire on everything;
- addresses that are private, loopback, link-local, multicast, unspecified or reserved (IPv4 and
  IPv6; answers of sinkholes and parking services keep theirs, as before), octets above 255;
- `a.b.c.d/n` keys wider than TRAIL_CIDR_MIN_PREFIX (default /16) or covering private, loopback or
  reserved space;
- names that are not DNS syntax (empty labels, `*`, `.`, labels over 63 bytes, names over 253);
- a bare TLD or public suffix (`com`, `co.uk`; ICANN section of the Public Suffix List in
  data/public_suffixes.txt) — except in the operator's own local lists (static, custom), as the
  original allows;
- URL trails whose host fails the rules above, and the bare path `/`.
- trails the canary check (core/update/canary.py) found firing on a popular domain (`refused`).
Rejection reasons in NEVER_MATCH mean the row could never fire on the wire (the update reports
their count apart from the rows refused because they would fire too widely). Names under a suffix
the sensor never checks in DNS queries (`.local`, `.lan`, `.arpa`, ...) are counted by
`dns_ignored` but kept: HTTP Host headers and TLS SNI still check them.
TLS fingerprint keys (JA3/JA3S MD5, certificate SHA-1, JA4; `fingerprint_kind`) are not names and
pass the name rules untouched. User-Agent trails (`ua:<value>`) have their own rules: no control
bytes, the length cap, and not empty or too generic (under UA_MIN_LENGTH characters, or a bare
`Mozilla/<version>`, the start of every browser's User-Agent).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.detect.domains import ignored_query
from core.protocols.fingerprints import fingerprint_kind
from core.trails.index import UA_PREFIX

MAX_KEY_LENGTH = 1024
CANARY = "fires on a popular domain"
IGNORED_IN_DNS = "ignored suffix in DNS (kept)"
# Reasons (here, and the merge's "invalid key" for names IDNA refuses and "whitelisted" for trails a
# whitelisted parent or address shadows) under which a row could never fire on the wire.
NEVER_MATCH = frozenset(("invalid key", "whitelisted", "empty", "too long", "control bytes", "markup characters",
                         "bad regex", "bad port", "bad octet", "bad address", "bad domain", "bad cidr"))
LOCAL_REFERENCES = frozenset(("(static)", "(custom)"))
_REGEX_CHARS = re.compile(r"[\\()\[\]*+|^${}]")
_BAD_CHARS = re.compile("[\x00-\x20\x7f-\x9f\ufffd]")
_MARKUP = re.compile("[<>`]")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")
_IPV4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\Z")
_CIDR = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/\d{1,2}\Z")
_REGEX_PROBES = ("", "com", "example.com", "www.example.com", "a")
_UA_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ufffd]")
_GENERIC_UA = re.compile(r"mozilla(?:/[0-9.]*)?")  # the token every browser's User-Agent starts with
UA_MIN_LENGTH = 4
UA_GENERIC = "user-agent too generic"


class PublicSuffixes:
    """The ICANN public suffixes with their wildcard (`*.ck`) and exception (`!www.ck`) rules."""

    def __init__(self, rules: set[str]) -> None:
        self.rules = rules

    @classmethod
    def load(cls, path: str) -> PublicSuffixes:
        """One rule a line (`//` and `#` comments); a missing file leaves only the single-label rule."""
        rules: set[str] = set()
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    text = line.strip().lower()
                    if text and not text.startswith(("//", "#")):
                        rules.add(text)
        return cls(rules)

    def is_suffix(self, name: str) -> bool:
        if "." not in name or name in self.rules:
            return True
        if "!" + name in self.rules:
            return False
        return "*." + name.split(".", 1)[1] in self.rules


def _bad_address(text: str) -> str | None:
    """Why an address may not be a trail, or None (a valid public address)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return "bad address"
    if (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_unspecified or address.is_reserved):
        return "private or reserved address"
    return None


@dataclass(frozen=True)
class TrailRules:
    """The sanity rules with their data (public suffixes)."""

    suffixes: PublicSuffixes
    min_cidr_prefix: int = 16
    refused: Mapping[str, object] = field(default_factory=dict)  # canary hits by trail

    @classmethod
    def load(cls, data_dir: str, min_cidr_prefix: int = 16) -> TrailRules:
        return cls(PublicSuffixes.load(os.path.join(data_dir, "public_suffixes.txt")), min_cidr_prefix)


    def reject(self, key: str, info: str, reference: str) -> str | None:
        """Why the (normalised) row must not be published, or None to keep it."""
        if key in self.refused:
            return CANARY
        if not key or len(key) > MAX_KEY_LENGTH:
            return "too long" if key else "empty"
        if key.startswith(UA_PREFIX):
            return _user_agent(key[len(UA_PREFIX):])
        if _BAD_CHARS.search(key):
            return "control bytes"
        if _MARKUP.search(key):
            return "markup characters"
        if _REGEX_CHARS.search(key):
            return self._regex(key)
        if fingerprint_kind(key):  # JA3/JA3S MD5, certificate SHA-1, JA4: not names
            return None
        local = reference in LOCAL_REFERENCES
        if key.startswith("/"):
            return "bare path" if key == "/" else None
        host, slash, _path = key.partition("/")
        if _CIDR.match(key):
            return self._cidr(key, info)
        return self._host(host, info, local, url=bool(slash))

    def _host(self, host: str, info: str, local: bool, url: bool) -> str | None:
        if host.startswith("[") or host.count(":") > 1:  # IPv6, bare or [v6]:port
            text = host[1:host.index("]")] if host.startswith("[") and "]" in host else host
            return self._address(text, info)
        name, colon, port = host.partition(":")
        if colon and not (port.isdigit() and 0 < int(port) < 65536):
            return "bad port"
        ipv4 = _IPV4.match(name)
        if ipv4:
            if max(int(part) for part in ipv4.groups()) > 255:
                return "bad octet"
            return self._address(name, info)
        if name.replace(".", "").isdigit():
            return "bad address"
        if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
            return "bad domain"
        if not local and not url and self.suffixes.is_suffix(name):
            return "tld-like" if "." not in name else "public suffix"
        return None

    def _cidr(self, key: str, info: str) -> str | None:
        try:
            network = ipaddress.IPv4Network(key, strict=False)
        except ValueError:
            return "bad cidr"
        if network.prefixlen < self.min_cidr_prefix:
            return "cidr too wide"
        if "sinkhole" in info or "parking" in info:
            return None
        if (network.is_private or network.is_loopback or network.is_link_local or network.is_multicast
                or network.is_reserved or network.is_unspecified):
            return "private or reserved address"
        return None

    @staticmethod
    def _address(text: str, info: str) -> str | None:
        if "sinkhole" in info or "parking" in info:
            return None if _bad_address(text) != "bad address" else "bad address"
        return _bad_address(text)

    @staticmethod
    def _regex(key: str) -> str | None:
        try:
            pattern = re.compile(key)
        except (re.error, RecursionError, OverflowError):
            return "bad regex"
        if any(pattern.fullmatch(probe) for probe in _REGEX_PROBES):
            return "regex too broad"
        return None


def _user_agent(value: str) -> str | None:
    """Why a User-Agent trail's value may not be published, or None. Spaces and markup are part of
    User-Agents as sent (the client escapes what it shows); control bytes are not."""
    if not value.strip():
        return "empty"
    if _UA_BAD_CHARS.search(value):
        return "control bytes"
    if len(value.strip()) < UA_MIN_LENGTH or _GENERIC_UA.fullmatch(value.strip().lower()):
        return UA_GENERIC
    return None


def never_match(dropped: Mapping[str, int]) -> dict[str, int]:
    """The part of an update's drop counts made of rows that could never fire on the wire."""
    return {reason: count for reason, count in sorted(dropped.items()) if reason in NEVER_MATCH}


def dns_ignored(key: str) -> bool:
    """A domain trail under a suffix the sensor never checks in DNS queries (counted, kept)."""
    return "/" not in key and ":" not in key and not _REGEX_CHARS.search(key) and ignored_query(key)
