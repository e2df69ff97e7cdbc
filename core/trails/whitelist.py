"""Whitelist: well-known benign infrastructure that must never raise an event.

Where it sits: loaded once at startup (bundled `data/whitelist.txt` plus the operator's
`USER_WHITELIST` file) and passed explicitly to the trail store loader, `core/detect/domains.py`
(domain suffix check), the heuristics (scan sources, long domains, NXDOMAIN) and the event
filters (`core/events/filters.py`: drop an event whose src or dst is whitelisted unless its type
is DNS).

File format (same as the original's): one entry a line, `#` starts a comment.
- an IPv4 or IPv6 address (`8.8.8.8`, `2001:4860:4860::8888`);
- a CIDR range, IPv4 or IPv6 (`192.0.2.0/24`, `2001:db8::/32`); host bits are masked;
- a domain (`google.com`), matched as a suffix on label boundaries: `a.google.com` matches,
  `notgoogle.com` does not. A leading `*.` or `.` is accepted and ignored.
Malformed lines are counted in `rejected` (with the first few kept in `problems`), never fatal.

Lookups are cheap: exact addresses are a set of packed bytes; ranges are, per prefix length
present, a set of masked integers (a handful of set probes per lookup, whatever the list size).
"""

from __future__ import annotations

import ipaddress
import os
import socket

from core.config import ROOT_DIR, Config
from core.update.publish import list_path

BUNDLED_WHITELIST = os.path.join(ROOT_DIR, "data", "whitelist.txt")
_MAX_PROBLEMS = 10


class Whitelist:
    """Addresses, ranges (IPv4 and IPv6) and domain suffixes that are benign."""

    def __init__(self) -> None:
        self.addresses: set[bytes] = set()
        # prefix length -> masked network integers, one table per family
        self.ranges4: dict[int, set[int]] = {}
        self.ranges6: dict[int, set[int]] = {}
        self.domains: set[str] = set()
        self.rejected = 0
        self.problems: list[str] = []
        self._count = 0

    # --- loading -------------------------------------------------------------------------------

    @classmethod
    def load(cls, config: Config | None = None, bundled: str | None = BUNDLED_WHITELIST) -> Whitelist:
        """The bundled list, the update's fetched additions (core/update/datasets.py) when present,
        plus `config.USER_WHITELIST` (a file path; missing file = error)."""
        whitelist = cls()
        if bundled:
            whitelist.add_file(bundled)
        if config is not None and config.TRAILS_FILE:
            fetched = list_path(config.TRAILS_FILE, "whitelist")
            if os.path.isfile(fetched):
                whitelist.add_file(fetched)
        user = config.USER_WHITELIST if config is not None else None
        if user:
            path = os.path.expanduser(user)
            if not os.path.isabs(path):
                path = os.path.join(ROOT_DIR, path)
            whitelist.add_file(path)
        return whitelist

    @classmethod
    def from_entries(cls, entries: list[str]) -> Whitelist:
        whitelist = cls()
        for entry in entries:
            whitelist.add(entry)
        return whitelist

    def add_file(self, path: str) -> None:
        """Add every entry of a whitelist file. OSError propagates: the caller reports it."""
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                text = line.split("#", 1)[0].strip()
                if text and not self.add(text):
                    self._problem(f"{path}:{number}: {text!r}")

    def add(self, entry: str) -> bool:
        """Add one entry; False (and counted) when it is neither address, range nor domain."""
        text = entry.strip().lower()
        if not text:
            return False
        if "/" in text:
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                self.rejected += 1
                return False
            table = self.ranges4 if network.version == 4 else self.ranges6
            table.setdefault(network.prefixlen, set()).add(int(network.network_address))
            self._count += 1
            return True
        packed = _packed(text)
        if packed is not None:
            self.addresses.add(packed)
            self._count += 1
            return True
        if text.startswith("*."):
            text = text[2:]
        text = text.strip(".")
        if not text or " " in text or not all(part for part in text.split(".")):
            self.rejected += 1
            return False
        self.domains.add(text)
        self._count += 1
        return True

    def _problem(self, message: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(message)

    # --- lookups -------------------------------------------------------------------------------

    def ip(self, packed: bytes) -> bool:
        """Is this packed address (4 or 16 bytes) listed, exactly or inside a range?"""
        if packed in self.addresses:
            return True
        if len(packed) == 4:
            if not self.ranges4:
                return False
            value = int.from_bytes(packed, "big")
            for prefix, networks in self.ranges4.items():
                if (value >> (32 - prefix)) << (32 - prefix) in networks:
                    return True
            return False
        if not self.ranges6:
            return False
        value = int.from_bytes(packed, "big")
        for prefix, networks in self.ranges6.items():
            if (value >> (128 - prefix)) << (128 - prefix) in networks:
                return True
        return False

    def ip_text(self, text: str) -> bool:
        """Same as `ip` for an address in text form; anything that is not an address is False."""
        packed = _packed(text.strip().lower()) if text else None
        return packed is not None and self.ip(packed)

    def domain(self, name: str) -> bool:
        """Suffix match on label boundaries. Addresses never domain-match (use `ip_text`)."""
        if not name or not self.domains:
            return False
        name = name.lower().rstrip(".")
        if _looks_numeric(name):
            return False
        return self.listed_suffix(name)

    def listed_suffix(self, name: str) -> bool:
        """`domain` for a name already in its form: lower case, no trailing dot, not an address
        (the domain check's names, core/detect/domains.py)."""
        domains = self.domains
        if not domains:
            return False
        if name in domains:
            return True
        dot = name.find(".")
        while dot >= 0:
            if name[dot + 1:] in domains:
                return True
            dot = name.find(".", dot + 1)
        return False

    def __len__(self) -> int:
        return self._count

    def __contains__(self, item: object) -> bool:
        if isinstance(item, bytes):
            return self.ip(item)
        if isinstance(item, str):
            return self.ip_text(item) or self.domain(item)
        return False


def _packed(text: str) -> bytes | None:
    if ":" in text:
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        try:
            return socket.inet_pton(socket.AF_INET6, text)
        except OSError:
            return None
    if not text[:1].isdigit():
        return None
    try:
        return socket.inet_pton(socket.AF_INET, text)
    except OSError:
        return None


def _looks_numeric(name: str) -> bool:
    """A bare dotted quad (or IPv6 literal) is an address, never a domain."""
    if ":" in name:
        return True
    return name.replace(".", "").isdigit() and name.count(".") == 3
