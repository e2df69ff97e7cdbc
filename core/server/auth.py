"""Authentication: USERS entries, password checks, sessions, login throttling, per-user scope.

Where it sits: the HTTP layer (httpd.py) asks `Auth` who a request belongs to (cookie + client
address) and the endpoints (api.py) ask the session's `Scope` which event lines the user may see.

USERS entries are `username:hash:UID:netfilter` (split on the first three colons, so IPv6 `::`
works in the filter). `hash` is either the original's `sha256hex(password)` or our salted slow
form `pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>` (`server.py --hash-password` prints one).
Login forms:
- challenge (the original's): `username`, `nonce` (8-64 alphanumerics, never reused),
  `hash = sha256hex(sha256hex(password) + nonce)`; works for SHA-256 entries;
- password: `username`, `password`; works for every entry (the client sends it only over TLS or
  to a loopback address).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from core.config import ConfigError

SESSION_COOKIE = "maltrail_sessid"
SESSION_TTL = 24 * 3600
MAX_SESSIONS = 10000
MAX_NONCES = 10000
THROTTLE_FAILURES = 5
THROTTLE_WINDOW = 5.0
THROTTLE_MAX_ADDRESSES = 4096
PBKDF2_ITERATIONS = 200_000
DEFAULT_PASSWORD_SHA256 = hashlib.sha256(b"changeme!").hexdigest()
NONCE_RE = re.compile(r"[A-Za-z0-9]{8,64}")
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


class Auth:
    """Users, sessions, nonces and the failed-login throttle. Thread-safe."""

    def __init__(self, users: dict[str, User], mask_custom_enabled: bool = True, secure_cookie: bool = False,
                 syslog_path: str = "/dev/log",
                 forward: Callable[[bool, str, str, int, str], None] | None = None) -> None:
        self.users = users
        self.forward = forward            # remote collectors (authlog.AuthForwarder) or None
        self.mask_custom_enabled = mask_custom_enabled
        self.secure_cookie = secure_cookie
        self.syslog_path = syslog_path
        self.sessions: dict[str, Session] = {}
        self.nonces: OrderedDict[str, None] = OrderedDict()
        self.failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.lock = threading.Lock()
        self.counters = {"login_ok": 0, "login_failed": 0, "login_throttled": 0, "syslog_errors": 0}
        self.anonymous = Session("?", None, "", float("inf"), False)

    @property
    def enabled(self) -> bool:
        return bool(self.users)

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

    # -- login -----------------------------------------------------------------------------------

    def throttled(self, address: str) -> bool:
        with self.lock:
            entry = self.failures.get(address)
            if entry is None:
                return False
            count, last = entry
            if time.monotonic() - last >= THROTTLE_WINDOW:
                if count >= THROTTLE_FAILURES:
                    del self.failures[address]
                return False
            return count >= THROTTLE_FAILURES

    def _failed(self, address: str) -> None:
        with self.lock:
            count, _ = self.failures.pop(address, (0, 0.0))
            self.failures[address] = (count + 1, time.monotonic())
            while len(self.failures) > THROTTLE_MAX_ADDRESSES:
                self.failures.popitem(last=False)

    def _use_nonce(self, nonce: str) -> bool:
        with self.lock:
            if nonce in self.nonces:
                return False
            self.nonces[nonce] = None
            while len(self.nonces) > MAX_NONCES:
                self.nonces.popitem(last=False)
            return True

    def _check(self, user: User, nonce: str, digest: str, password: str | None) -> bool:
        secret = user.secret
        if password is not None:
            if secret.startswith("pbkdf2_sha256$"):
                m = PBKDF2_RE.fullmatch(secret)
                assert m is not None
                derived = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8", "replace"),
                                              bytes.fromhex(m.group(2)), int(m.group(1)))
                return hmac.compare_digest(derived.hex(), m.group(3))
            return hmac.compare_digest(hashlib.sha256(password.encode("utf-8", "replace")).hexdigest(), secret)
        if secret.startswith("pbkdf2_sha256$") or not NONCE_RE.fullmatch(nonce) or not SHA256_RE.fullmatch(digest):
            return False
        if not self._use_nonce(nonce):
            return False
        expected = hashlib.sha256((secret + nonce).encode("ascii")).hexdigest()
        return hmac.compare_digest(expected, digest.lower())

    def login(self, username: str, nonce: str, digest: str, password: str | None,
              address: str, port: int) -> tuple[str, Session | None]:
        """('ok', session) | ('failed', None) | ('throttled', None). Never sleeps."""
        if self.throttled(address):
            with self.lock:
                self.counters["login_throttled"] += 1
            return "throttled", None
        user = self.users.get(username)
        ok = False
        if user is not None and (password is not None or (nonce and digest)):
            ok = self._check(user, nonce, digest, password)
        if not ok:
            self._failed(address)
            with self.lock:
                self.counters["login_failed"] += 1
            self.log_auth(False, username, address, port)
            return "failed", None
        assert user is not None
        session = Session(secrets.token_hex(16), user, address, time.time() + SESSION_TTL,
                          self.mask_custom_enabled and user.uid >= 1000)
        with self.lock:
            self.failures.pop(address, None)
            self.sessions[session.sid] = session
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.pop(next(iter(self.sessions)))
            self.counters["login_ok"] += 1
        self.log_auth(True, username, address, port)
        return "ok", session

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
