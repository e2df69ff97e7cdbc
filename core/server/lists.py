"""Block lists for firewalls: /fail2ban and /blacklist[/<NAME>], with allow lists and cleared.txt.

Where it sits: called by api.py's route table. Both endpoints read **today's** stored lines (the day
file; ClickHouse when EVENT_STORE names it alone: `day_lines`, set by app.py from threats.py) and
answer a newline list of source addresses, one per line, first-seen order, no duplicates:
- /fail2ban: lines matching FAIL2BAN_REGEX (case-insensitive); only callers inside
  FAIL2BAN_ALLOWLIST (IPv4 or IPv6 CIDRs); everyone else gets 404.
- /blacklist[/NAME]: lines matching any rule of BLACKLIST[_NAME]; a logged-in session (rules see
  the lines as that session does: auth.visible_line) or a caller inside BLACKLIST_ALLOWLIST
  (falling back to FAIL2BAN_ALLOWLIST).
Rule syntax: clauses `<field> <~|!~> <regex>` joined with ` and `; fields src_ip, src_port,
dst_ip, dst_port, protocol, type, trail, filter (= info + " " + reference).
Remediation: `LOG_DIR/cleared.txt` lines `<ip> [YYYY-MM-DD HH:MM:SS]` hide that address's events
from before the mark (no time given: the file's modification time). Answers are cached 8 s.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from core.config import Config, ConfigError
from core.events.event import ParsedLine, parse_line
from core.server.auth import Session, visible_line
from core.server.messages import Request, Response, text
from core.server.storage import Storage, iter_lines

CACHE_SECONDS = 8.0
FIELDS = {"src_ip": 2, "src_port": 3, "dst_ip": 4, "dst_port": 5, "protocol": 6, "proto": 6,
          "type": 7, "trail": 8}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Rule = list[tuple[str, bool, "re.Pattern[str]"]]
DayLines = Callable[[datetime.date], Iterable[bytes]]  # a day's stored lines, in stored order


def parse_allowlist(key: str, raw: str | None) -> list[Network] | None:
    """None when unset; else the networks (bad items raise ConfigError)."""
    if raw is None:
        return None
    nets: list[Network] = []
    for item in re.split(r"[,;\s]+", raw.strip()):
        if item:
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(key, item, "expected an IP address or CIDR") from None
    return nets


def parse_rules(name: str, lines: list[str]) -> list[Rule]:
    rules: list[Rule] = []
    key = "BLACKLIST" + (f"_{name}" if name else "")
    for line in lines:
        rule: Rule = []
        for clause in re.split(r"\s+and\s+", line.strip()):
            m = re.fullmatch(r"(\w+)\s+(!~|~)\s+(.+)", clause.strip())
            if not m or m.group(1) not in FIELDS and m.group(1) != "filter":
                raise ConfigError(key, clause, "expected '<field> ~|!~ <regex>' with field one of "
                                  + ", ".join(sorted(set(FIELDS) | {"filter"})))
            try:
                pattern = re.compile(m.group(3).strip())
            except re.error as ex:
                raise ConfigError(key, clause, f"bad regular expression ({ex})") from None
            rule.append((m.group(1), m.group(2) == "!~", pattern))
        if rule:
            rules.append(rule)
    return rules


def _field(parsed: ParsedLine, name: str) -> str:
    if name == "filter":
        return f"{parsed.info} {parsed.reference}"
    return parsed[FIELDS[name]]


def rule_matches(rules: list[Rule], parsed: ParsedLine) -> bool:
    for rule in rules:
        if all(bool(pattern.search(_field(parsed, name))) != negate for name, negate, pattern in rule):
            return True
    return False


def _allowed(nets: list[Network] | None, address: str) -> bool:
    if not nets:
        return False
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in nets)


class Lists:
    def __init__(self, config: Config, storage: Storage) -> None:
        self.config = config
        self.storage = storage
        regex = config.FAIL2BAN_REGEX
        self.fail2ban_regex = re.compile(regex, re.IGNORECASE) if regex else None
        self.fail2ban_allow = parse_allowlist("FAIL2BAN_ALLOWLIST", config.FAIL2BAN_ALLOWLIST)
        blacklist_allow = parse_allowlist("BLACKLIST_ALLOWLIST", config.BLACKLIST_ALLOWLIST)
        self.blacklist_allow = blacklist_allow if blacklist_allow is not None else self.fail2ban_allow
        self.rules = {name.upper(): parse_rules(name, lines) for name, lines in config.blacklists.items()}
        self.cache: dict[tuple[Any, ...], tuple[float, bytes]] = {}
        self.lock = threading.Lock()
        self.day_lines: DayLines = self._day_file_lines

    def _day_file_lines(self, day: datetime.date) -> Iterable[bytes]:
        return iter_lines(self.storage.segments([day]))

    def _cached(self, key: tuple[Any, ...]) -> bytes | None:
        with self.lock:
            hit = self.cache.get(key)
            if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
                return hit[1]
        return None

    def _store(self, key: tuple[Any, ...], body: bytes) -> None:
        with self.lock:
            if len(self.cache) > 256:
                self.cache.clear()
            self.cache[key] = (time.monotonic(), body)

    def _collect(self, match: Callable[[bytes, ParsedLine], object], session: Session | None) -> bytes:
        marks = self.storage.cleared()
        default_mark = ""
        if marks:
            default_mark = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.storage.cleared_mtime()))
        seen: dict[str, None] = {}
        for stored in self.day_lines(datetime.date.today()):
            line = visible_line(stored, session) if session is not None else stored
            parsed = parse_line(line.decode("utf-8", "replace")) if line is not None else None
            if line is None or parsed is None or parsed.src_ip in seen:
                continue
            if not match(line, parsed):
                continue
            mark = marks.get(parsed.src_ip)
            if mark is not None and parsed.time[:19] < (mark or default_mark):
                continue
            try:
                ipaddress.ip_address(parsed.src_ip)
            except ValueError:
                continue
            seen[parsed.src_ip] = None
        return "".join(ip + "\n" for ip in seen).encode("ascii")

    def fail2ban(self, request: Request, session: Session | None) -> Response:
        if not _allowed(self.fail2ban_allow, request.address):
            return text(404, "Not found\n")
        if self.fail2ban_regex is None:
            return text(404, "FAIL2BAN_REGEX is not set\n")
        regex = self.fail2ban_regex
        key = ("fail2ban", datetime.date.today(), self.storage.cleared_mtime())
        body = self._cached(key)
        if body is None:
            body = self._collect(lambda line, parsed: regex.search(line.decode("utf-8", "replace")), None)
            self._store(key, body)
        return Response(200, body)

    def blacklist(self, request: Request, session: Session | None) -> Response:
        name = request.path.rstrip("/")[len("/blacklist"):].lstrip("/").upper()
        if not re.fullmatch(r"\w{0,64}", name):
            return text(404, "Not found\n")
        logged_in = session is not None and (session.user is not None or session.sid == "?")
        if not logged_in and not _allowed(self.blacklist_allow, request.address):
            return text(404, "Not found\n")
        rules = self.rules.get(name)
        if not rules:
            return text(404, f"BLACKLIST{'_' + name if name else ''} is not set\n")
        view = (session.scope.key, session.mask_custom) if session is not None else ("", False)
        key = ("blacklist", name, datetime.date.today(), self.storage.cleared_mtime(), view)
        body = self._cached(key)
        if body is None:
            body = self._collect(lambda line, parsed: rule_matches(rules, parsed), session)
            self._store(key, body)
        return Response(200, body)
