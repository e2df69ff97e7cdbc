"""Authentication: USERS entries, password checks, login challenges, sessions, login throttling,
per-user scope.

Where it sits: the HTTP layer (httpd.py) asks `Auth` who a request belongs to (cookie + client
address) and the endpoints (api.py, queries.py, lists.py) ask `visible_line` what of a stored
event line a session may see.

USERS entries are `username:hash:UID:netfilter` (split on the first three colons, so IPv6 `::`
works in the filter). `hash` is either the original's `sha256hex(password)` or our salted slow
form `pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>` (`server.py --hash-password` prints one).
Login forms:
- challenge: `username`, `nonce` = a challenge from `GET /challenge` (server-issued, valid for
  CHALLENGE_TTL seconds, accepted once), `hash = sha256hex(sha256hex(password) + nonce)`; works
  for SHA-256 entries. A captured request never logs in again;
- password: `username`, `password`; works for every entry (scripts). It carries the password itself:
  use it over TLS or on loopback (the start-up banner warns while HTTP_ADDRESS is neither).
- HTTP Basic (`basic`): `Authorization: Basic base64(username:password)` on a read-only export
  (`/intel/...`, for feed subscribers that cannot hold a session): the password form's check and
  throttling, one request's session that is not kept.

Throttling (backoff.py): every failure counts against the account+address pair, the address,
the account and a global budget (the last two for existing accounts only), each with its own
exponential back-off; an attempt is refused while any of them is locked, and an attempt that is
refused counts against the keys that refused it. An address with a successful login in the last
KNOWN_ADDRESS_TTL (a shared NAT or VPN) is not held by the address key, only by the others, so a
neighbour guessing other accounts does not lock its users out. A browser that logged in before
carries a trusted-browser cookie (`maltrail_device`, signed for one username): its attempts for
that username are throttled by that cookie alone, so other people's failures never lock its
user out.

Proof of work (a correct password is never refused for long): the locks that strangers can set on
someone else (the account's, the global budget's, and the account+address pair's on an address with
a recent success, a shared NAT) are *shared* keys; the address's own keys and a trusted browser's
are not. An attempt that only shared keys refuse may go through anyway with a proof of work on its
challenge: `work` such that sha256(nonce + work) starts with `bits` zero bits, `bits` rising from
WORK_MIN_BITS by one per failure above the locking key's free allowance, up to WORK_MAX_BITS (a
browser solves the top level in a few seconds; a guesser pays it per guess). The 429 answer says
how many bits (`Outcome.work`, the `X-Maltrail-Work` header); the challenge is spent by that one
attempt, and its failure counts like any other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import os
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from core.config import ConfigError
from core.events.event import parse_line, safe_value
from core.server.backoff import Backoff, Policy
from core.server.storage import line_addresses

SESSION_COOKIE = "maltrail_sessid"
DEVICE_COOKIE = "maltrail_device"
SESSION_TTL = 24 * 3600
DEVICE_TTL = 30 * 24 * 3600
MAX_SESSIONS = 10000
CHALLENGE_TTL = 60
MAX_USED_CHALLENGES = 100_000
KNOWN_ADDRESS_TTL = 24 * 3600          # an address with a successful login is not held by its own lock
MAX_KNOWN_ADDRESSES = 10_000
PAIR_POLICY = Policy(free=5, leak=1 / 300, base=1.0, cap=900.0)      # one account from one address
ADDRESS_POLICY = Policy(free=10, leak=1 / 60, base=1.0, cap=900.0)   # any username from one address
ACCOUNT_POLICY = Policy(free=10, leak=1 / 60, base=1.0, cap=900.0)   # one account from anywhere
GLOBAL_POLICY = Policy(free=100, leak=1 / 10, base=1.0, cap=300.0)   # every account from anywhere
DEVICE_POLICY = Policy(free=5, leak=1 / 300, base=1.0, cap=900.0)    # one trusted browser
WORK_MIN_BITS = 16       # proof of work asked to pass a shared lock (see the module docstring) ...
WORK_MAX_BITS = 22       # ... rising one bit per failure above the lock's allowance, to this
PBKDF2_ITERATIONS = 200_000
DEFAULT_PASSWORD_SHA256 = hashlib.sha256(b"changeme!").hexdigest()
TOKEN_RE = re.compile(r"[0-9a-f]{56}")          # 8 expiry + 16 random + 32 MAC hex digits
WORK_RE = re.compile(r"[0-9a-f]{1,16}")
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
PBKDF2_RE = re.compile(r"pbkdf2_sha256\$(\d{1,7})\$([0-9a-f]{16,128})\$([0-9a-f]{64})")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The salted slow USERS hash of a password."""
    salt = os.urandom(16).hex()
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(salt), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${digest.hex()}"


def clean(text: str, limit: int = 64) -> str:
    """A username (or any client text) fit for a log line: no control characters, bounded."""
    return CONTROL_RE.sub("", text)[:limit]


class Scope:
    """A user's network filter: which event lines (by src/dst address) the user may see."""

    def __init__(self, networks: list[Network] | None = None) -> None:
        self.networks = networks or []
        self.v4 = [n for n in self.networks if n.version == 4]
        self.v6 = [n for n in self.networks if n.version == 6]
        self.key = ",".join(sorted(str(n) for n in self.networks))
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def restricted(self) -> bool:
        return bool(self.networks)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """`""`, `*`, `::`, `0.0.0.0/0` = everything; else `,`/`;` separated IPs, CIDRs and a-b ranges."""
        text = text.strip()
        if text in ("", "*", "::", "0.0.0.0/0", "::/0"):
            return cls([])
        networks: list[Network] = []
        for item in re.split(r"[,;]", text):
            item = item.strip()
            if not item:
                continue
            if "-" in item:
                try:
                    first, last = (ipaddress.ip_address(p.strip()) for p in item.split("-", 1))
                    if first.version != last.version or int(last) < int(first):
                        raise ValueError
                    networks.extend(ipaddress.summarize_address_range(first, last))
                except ValueError:
                    raise ConfigError("USERS", item, "bad address range in network filter") from None
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError("USERS", item, "bad address or CIDR in network filter") from None
        if any(n.prefixlen == 0 for n in networks):
            return cls([])
        return cls(networks)

    def allows_ip(self, text: str) -> bool:
        if not self.networks:
            return True
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        try:
            addr = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            result = False
        else:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            nets = self.v4 if addr.version == 4 else self.v6
            result = any(addr in n for n in nets)
        with self._lock:
            self._cache[text] = result
            if len(self._cache) > 65536:
                self._cache.popitem(last=False)
        return result

    def allows_pair(self, src: str, dst: str) -> bool:
        return self.allows_ip(src) or self.allows_ip(dst)


@dataclass(frozen=True)
class User:
    name: str
    secret: str          # sha256 hex (lower case) or the pbkdf2 form
    uid: int
    scope: Scope

    @property
    def is_default_password(self) -> bool:
        return self.secret == DEFAULT_PASSWORD_SHA256


def parse_users(entries: list[str]) -> dict[str, User]:
    """USERS lines -> users by name. Bad entries raise ConfigError (the server refuses to start)."""
    users: dict[str, User] = {}
    for entry in entries:
        parts = entry.strip().split(":", 3)
        if len(parts) < 3 or not parts[0]:
            raise ConfigError("USERS", entry.split(":", 1)[0] + ":…", "expected username:hash:UID[:netfilter]")
        name, secret, uid_text = parts[0], parts[1].strip(), parts[2].strip()
        if SHA256_RE.fullmatch(secret):
            secret = secret.lower()
        elif not PBKDF2_RE.fullmatch(secret):
            raise ConfigError("USERS", name, "hash must be sha256 hex or pbkdf2_sha256$... (server.py --hash-password)")
        if not uid_text.isdigit():
            raise ConfigError("USERS", name, "UID must be a whole number")
        users[name] = User(name, secret, int(uid_text), Scope.parse(parts[3] if len(parts) > 3 else ""))
    return users


@dataclass
class Session:
    sid: str
    user: User | None         # None = anonymous (no USERS configured)
    address: str
    expires: float
    mask_custom: bool
    attrs: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.user.name if self.user else "?"

    @property
    def scope(self) -> Scope:
        return self.user.scope if self.user else Scope([])


def in_scope(line: bytes, session: Session) -> bool:
    """The stored line is inside the session's network filter (source or destination)."""
    if session.user is None or not session.user.scope.restricted:
        return True
    addrs = line_addresses(line)
    return addrs is not None and session.user.scope.allows_pair(*addrs)


def masks_reference(reference: str) -> bool:
    """The event's info is a custom trail's (what ENABLE_MASK_CUSTOM hides from UID >= 1000)."""
    return reference.strip().lower() == "(custom)"


def visible_line(line: bytes, session: Session) -> bytes | None:
    """A stored line as this session may see it: None when out of its network scope, else the line
    with custom-trail info masked (`-`) when the session masks it (the same object when nothing
    changes). The one rule every data route applies before it shows, searches or counts a line."""
    if not in_scope(line, session):
        return None
    if session.mask_custom and b"(custom)" in line:
        parsed = parse_line(line.decode("utf-8", "replace"))
        if parsed is not None and masks_reference(parsed.reference):
            fields = list(parsed)
            fields[9] = "-"
            out = f'"{fields[0]}" ' + " ".join(safe_value(f) for f in fields[1:])
            return out.encode("utf-8") + b"\n"
    return line


def cross_site(headers: dict[str, str]) -> bool:
    """True when a browser says the request comes from another site: `Sec-Fetch-Site` other than
    same-origin/none, or (older browsers) an `Origin` whose host is not the `Host` asked for.
    Requests with neither header (scripts, fail2ban, curl) are not cross-site."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    netloc = urllib.parse.urlsplit(origin.strip()).netloc if "://" in origin else ""
    return not netloc or netloc.lower() != headers.get("host", "").strip().lower()


def address_key(address: str) -> str:
    """The throttling key of a client address: the address (IPv4) or its /64 (IPv6)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Key(NamedTuple):
    table: Backoff
    key: str
    shared: bool                 # a lock strangers can set on others: a proof of work passes it


def work_bits(nonce: str, work: str) -> int:
    """Leading zero bits of sha256(nonce + work) (0 for a malformed `work`)."""
    if not work or not WORK_RE.fullmatch(work):
        return 0
    digest = int.from_bytes(hashlib.sha256((nonce + work).encode("ascii", "replace")).digest(), "big")
    return 256 - digest.bit_length()


def work_needed(locked: list[Key], now: float) -> int:
    """The proof of work (bits) that passes these shared locks: WORK_MIN_BITS plus one per failure
    above the most failed lock's allowance, up to WORK_MAX_BITS."""
    extra = max(k.table.level(k.key, now) - k.table.policy.free for k in locked)
    return min(WORK_MAX_BITS, WORK_MIN_BITS + max(0, math.ceil(extra - 1e-9)))


class Outcome(NamedTuple):
    result: str                  # 'ok' | 'failed' | 'throttled'
    session: Session | None
    retry: float = 0.0           # throttled: seconds until the lock that refused ends
    work: int = 0                # throttled: the proof of work (bits) that would pass it, 0: none would


class Auth:
    """Users, sessions, login challenges and the failed-login throttle. Thread-safe."""

    def __init__(self, users: dict[str, User], mask_custom_enabled: bool = True, secure_cookie: bool = False,
                 syslog_path: str = "/dev/log",
                 forward: Callable[[bool, str, str, int, str], None] | None = None) -> None:
        self.users = users
        self.forward = forward            # remote collectors (authlog.AuthForwarder) or None
        self.mask_custom_enabled = mask_custom_enabled
        self.secure_cookie = secure_cookie
        self.syslog_path = syslog_path
        self.secret = os.urandom(32)      # signs challenges and trusted-browser cookies (this process)
        self.sessions: dict[str, Session] = {}
        self.used: OrderedDict[str, float] = OrderedDict()   # accepted challenges -> their expiry
        self.pairs = Backoff(PAIR_POLICY)
        self.addresses = Backoff(ADDRESS_POLICY)
        self.accounts = Backoff(ACCOUNT_POLICY)
        self.budget = Backoff(GLOBAL_POLICY, width=1, rows=1)
        self.devices = Backoff(DEVICE_POLICY)
        self.known: OrderedDict[str, float] = OrderedDict()   # address key -> last successful login
        self.lock = threading.Lock()
        self.counters = {"login_ok": 0, "login_failed": 0, "login_throttled": 0, "login_work": 0,
                         "syslog_errors": 0}
        self.anonymous = Session("?", None, "", float("inf"), False)

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def summary(self) -> str:
        """The login counters for the exit line (`login_work`: logins let through a lock by a proof
        of work)."""
        with self.lock:
            return "login: " + " ".join(f"{k}={v}" for k, v in self.counters.items())

    @property
    def default_password_in_use(self) -> bool:
        return any(u.is_default_password for u in self.users.values())

    # -- sessions ------------------------------------------------------------------------------

    def session_for(self, cookie_sid: str | None, address: str) -> Session | None:
        """The caller's session (anonymous when no USERS), or None when not logged in."""
        if not self.users:
            return self.anonymous
        if not cookie_sid:
            return None
        now = time.time()
        with self.lock:
            session = self.sessions.get(cookie_sid)
            if session is None:
                return None
            if session.expires < now:
                del self.sessions[cookie_sid]
                return None
        if not hmac.compare_digest(session.address, address):
            return None
        return session

    def logout(self, cookie_sid: str | None) -> None:
        if cookie_sid:
            with self.lock:
                self.sessions.pop(cookie_sid, None)

    def reap(self) -> int:
        now = time.time()
        with self.lock:
            dead = [sid for sid, s in self.sessions.items() if s.expires < now]
            for sid in dead:
                del self.sessions[sid]
        return len(dead)

    def cookie(self, session: Session) -> str:
        expires = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(session.expires))
        secure = "; Secure" if self.secure_cookie else ""
        return f"{SESSION_COOKIE}={session.sid}; expires={expires}; path=/; HttpOnly{secure}; SameSite=Strict"

    def clear_cookie(self) -> str:
        secure = "; Secure" if self.secure_cookie else ""
        return f"{SESSION_COOKIE}=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/; HttpOnly{secure}; SameSite=Strict"

    # -- signed tokens: challenges and trusted-browser cookies -----------------------------------

    def _token(self, purpose: str, ttl: float) -> str:
        head = f"{int(time.time() + ttl) & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"
        return head + self._mac(purpose, head)

    def _mac(self, purpose: str, head: str) -> str:
        return hmac.new(self.secret, f"{purpose}\0{head}".encode("utf-8", "replace"), "sha256").hexdigest()[:32]

    def _token_valid(self, purpose: str, token: str) -> bool:
        if not TOKEN_RE.fullmatch(token):
            return False
        head, mac = token[:24], token[24:]
        return hmac.compare_digest(self._mac(purpose, head), mac) and int(head[:8], 16) >= int(time.time())

    def challenge(self) -> str:
        """A fresh login challenge: signed, valid CHALLENGE_TTL seconds, accepted by one login only.
        Nothing is stored until a login uses it."""
        return self._token("challenge", CHALLENGE_TTL)

    def _use_challenge(self, nonce: str) -> bool:
        """True once per valid challenge (remembered until it expires); False for anything else."""
        if not self._token_valid("challenge", nonce):
            return False
        now = time.time()
        with self.lock:
            while self.used and next(iter(self.used.values())) < now:
                self.used.popitem(last=False)
            if nonce in self.used or len(self.used) >= MAX_USED_CHALLENGES:
                return False
            self.used[nonce] = float(int(nonce[:8], 16))
            return True

    def device_cookie(self, session: Session) -> str:
        """Set-Cookie for the trusted-browser cookie of a successful login (its username signed in)."""
        token = self._token("device\0" + session.name, DEVICE_TTL)
        secure = "; Secure" if self.secure_cookie else ""
        return f"{DEVICE_COOKIE}={token}; Max-Age={DEVICE_TTL}; path=/; HttpOnly{secure}; SameSite=Strict"

    def trusted(self, device: str | None, username: str) -> bool:
        return bool(device) and username in self.users and self._token_valid("device\0" + username, device or "")

    # -- login -----------------------------------------------------------------------------------

    def _keys(self, username: str, address: str, device: str | None) -> list[Key]:
        """The throttling keys of an attempt, each marked shared or not (see the module docstring)."""
        if device is not None:
            return [Key(self.devices, device, False)]
        where = address_key(address)
        known = self._known(where)
        keys = [Key(self.pairs, f"{username}\0{where}", known)]
        if not known:
            keys.append(Key(self.addresses, where, False))
        if username in self.users:
            keys += [Key(self.accounts, username, True), Key(self.budget, "", True)]
        return keys

    def _known(self, where: str) -> bool:
        """Someone logged in from this address within KNOWN_ADDRESS_TTL (a shared NAT or VPN)."""
        with self.lock:
            last = self.known.get(where)
        return last is not None and time.monotonic() - last < KNOWN_ADDRESS_TTL

    def _refusal(self, keys: list[Key], nonce: str, work: str) -> tuple[float, int]:
        """(seconds until the locks that refuse this attempt end, the proof of work in bits that
        would pass them); (0, 0) when nothing refuses it. A refused attempt counts as one more
        failure of the keys that refused it; an attempt with enough work passes shared locks."""
        now = time.monotonic()
        with self.lock:
            locked = [k for k in keys if k.table.locked_until(k.key) > now]
            if not locked:
                return 0.0, 0
            passable = all(k.shared for k in locked)
            if passable and work_bits(nonce, work) >= work_needed(locked, now) and \
                    self._token_valid("challenge", nonce):
                return 0.0, 0
            until = max(k.table.failed(k.key, now) for k in locked)
            return until - now, work_needed(locked, now) if passable else 0

    def _failed(self, keys: list[Key]) -> None:
        now = time.monotonic()
        with self.lock:
            for k in keys:
                k.table.failed(k.key, now)

    def _check(self, user: User, nonce: str, digest: str, password: str | None, spent: bool = False) -> bool:
        """The password (or challenge answer) is right; `spent`: the challenge was already used up by
        this attempt's proof of work."""
        secret = user.secret
        if password is not None:
            if secret.startswith("pbkdf2_sha256$"):
                m = PBKDF2_RE.fullmatch(secret)
                assert m is not None
                derived = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8", "replace"),
                                              bytes.fromhex(m.group(2)), int(m.group(1)))
                return hmac.compare_digest(derived.hex(), m.group(3))
            return hmac.compare_digest(hashlib.sha256(password.encode("utf-8", "replace")).hexdigest(), secret)
        if secret.startswith("pbkdf2_sha256$") or not SHA256_RE.fullmatch(digest):
            return False
        if not spent and not self._use_challenge(nonce):
            return False
        expected = hashlib.sha256((secret + nonce).encode("ascii")).hexdigest()
        return hmac.compare_digest(expected, digest.lower())

    def basic(self, header: str, address: str, port: int) -> Outcome:
        """An `Authorization: Basic ...` header checked as a password login (same check, same
        throttling, same logging); its session serves one request and is not kept. A header that
        does not decode is a failed attempt with an empty username."""
        scheme, _, encoded = header.strip().partition(" ")
        username, password = "", ""
        if scheme.lower() == "basic" and len(encoded) <= 2048:
            try:
                username, _, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                username, password = "", ""
        return self.login(username[:256], "", "", password[:1024], address, port, remember=False)

    def login(self, username: str, nonce: str, digest: str, password: str | None,
              address: str, port: int, device: str | None = None, work: str = "",
              remember: bool = True) -> Outcome:
        """Outcome('ok', session) | ('failed', None) | ('throttled', None, retry seconds, work bits).
        Never sleeps. `device` is the trusted-browser cookie the request carried, if any; `work` a
        proof of work on `nonce` (module docstring); `remember` false gives a session for the
        current request only (HTTP Basic)."""
        keys = self._keys(username, address, device if self.trusted(device, username) else None)
        retry, bits = self._refusal(keys, nonce, work)
        if retry > 0:
            with self.lock:
                self.counters["login_throttled"] += 1
            return Outcome("throttled", None, retry, bits)
        spent = False
        if work:                          # a proof of work is good for one attempt: spend its challenge
            spent = self._use_challenge(nonce)
            if not spent:
                password, digest = None, ""
            else:
                with self.lock:
                    self.counters["login_work"] += 1
        user = self.users.get(username)
        ok = False
        if user is not None and (password is not None or (nonce and digest)):
            ok = self._check(user, nonce, digest, password, spent)
        if not ok:
            self._failed(keys)
            with self.lock:
                self.counters["login_failed"] += 1
            self.log_auth(False, username, address, port)
            return Outcome("failed", None)
        assert user is not None
        session = Session(secrets.token_hex(16), user, address, time.time() + SESSION_TTL,
                          self.mask_custom_enabled and user.uid >= 1000)
        with self.lock:
            self.known.pop(address_key(address), None)
            self.known[address_key(address)] = time.monotonic()
            while len(self.known) > MAX_KNOWN_ADDRESSES:
                self.known.popitem(last=False)
            if remember:
                self.sessions[session.sid] = session
                while len(self.sessions) > MAX_SESSIONS:
                    self.sessions.pop(next(iter(self.sessions)))
            self.counters["login_ok"] += 1
        self.log_auth(True, username, address, port)
        return Outcome("ok", session)

    def log_auth(self, ok: bool, username: str, address: str, port: int) -> None:
        """sshd-style line to the local syslog (LOG_AUTH), through the /dev/log socket: no subprocess;
        then the same attempt to SYSLOG_SERVER/LOGSTASH_SERVER when configured (`forward`)."""
        word = "Accepted" if ok else "Failed"
        user, address = clean(username) or "-", clean(address, 64)
        text = f"{word} password for {user} from {address} port {int(port)}"
        if self.forward is not None:
            self.forward(ok, user, address, int(port), text)
        priority = 4 * 8 + (6 if ok else 4)   # LOG_AUTH | LOG_INFO / LOG_WARNING
        message = f"<{priority}>maltrail-server[{os.getpid()}]: {text}".encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.2)
                sock.connect(self.syslog_path)
                sock.send(message)
        except OSError:
            with self.lock:
                self.counters["syslog_errors"] += 1
