"""core/server/auth.py in process: USERS entries, network scopes, both login forms, server-issued
single-use challenges, the failed-login throttle (backoff.py), trusted-browser cookies, the
cross-site rule, sessions bound to an address, cookies, and the sshd-style line on a real syslog
datagram socket (a Unix socket in the test's folder)."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from core.config import ConfigError
from core.server.auth import (
    PAIR_POLICY,
    SESSION_COOKIE,
    WORK_MAX_BITS,
    WORK_MIN_BITS,
    Auth,
    Scope,
    cross_site,
    hash_password,
    parse_users,
    work_bits,
)
from core.server.backoff import Backoff, Policy
from tests.kit.server import solve_work


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def challenge(password: str, nonce: str) -> str:
    return sha(sha(password) + nonce)


def test_parse_users_forms_and_errors():
    slow = hash_password("pw", iterations=1000)
    users = parse_users([f"admin:{sha('a').upper()}:0:", f"ops:{slow}:1000:2001:db8::/32, 10.0.0.0/8",
                         f"all:{sha('b')}:5"])
    assert users["admin"].secret == sha("a") and users["admin"].uid == 0
    assert not users["admin"].scope.restricted
    assert users["ops"].secret == slow and users["ops"].scope.key == "10.0.0.0/8,2001:db8::/32"
    for bad in ["nobody", ":x:0", f"x:{sha('a')[:-1]}:0", f"x:{sha('a')}:uid", "x:pbkdf2_sha256$1$zz$00:0",
                f"x:{sha('a')}:0:10.0.0.0/33", f"x:{sha('a')}:0:10.0.0.9-10.0.0.1"]:
        with pytest.raises(ConfigError):
            parse_users([bad])


def test_scope_rules():
    assert not Scope.parse("*").restricted and not Scope.parse("10.0.0.0/8, 0.0.0.0/0").restricted
    scope = Scope.parse("192.168.0.0/16; 10.0.0.1-10.0.0.6, 2001:db8::/32")
    assert [scope.allows_ip(a) for a in ("192.168.4.4", "10.0.0.6", "10.0.0.7", "::ffff:192.168.1.1",
                                         "[2001:db8::1]", "2001:db9::1", "not-an-ip", "")] \
        == [True, True, False, True, True, False, False, False]
    assert scope.allows_pair("8.8.8.8", "192.168.1.1") and not scope.allows_pair("8.8.8.8", "1.1.1.1")


@pytest.fixture
def syslog(tmp_path):
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def make_auth(syslog_path: str, **kw) -> tuple[Auth, list[tuple]]:
    forwarded: list[tuple] = []
    users = parse_users([f"admin:{sha('changeme!')}:0:", f"viewer:{hash_password('s3cret', 1000)}:1000:10.0.0.0/8"])
    return Auth(users, syslog_path=syslog_path, forward=lambda *a: forwarded.append(a), **kw), forwarded


def test_challenge_login_is_server_issued_and_single_use(syslog):
    auth, forwarded = make_auth(syslog[0])
    nonce = auth.challenge()
    result, session, *_ = auth.login("admin", nonce, challenge("changeme!", nonce), None, "127.0.0.1", 5000)
    assert result == "ok" and session is not None and not session.mask_custom
    assert syslog[1].recv(4096).decode().endswith("Accepted password for admin from 127.0.0.1 port 5000")
    # the same challenge never works twice, even with the right hash
    assert auth.login("admin", nonce, challenge("changeme!", nonce), None, "127.0.0.1", 5000)[:2] == ("failed", None)
    # a nonce the client made up, a forged or altered challenge, an expired one: refused
    forged = nonce[:24] + "0" * 32
    expired = auth._token("challenge", -5)
    for n, bad in enumerate(("abcdefgh1234", "x" * 56, forged, nonce[:-1] + ("0" if nonce[-1] != "0" else "1"),
                             expired)):
        assert auth.login("admin", bad, challenge("changeme!", bad), None, f"127.0.1.{n}", 1)[0] == "failed"
    # another server's (or a restarted one's) challenges are worthless here
    other = Auth(auth.users, syslog_path=syslog[0]).challenge()
    assert auth.login("admin", other, challenge("changeme!", other), None, "127.0.0.2", 1)[0] == "failed"
    assert auth.login("admin", nonce, challenge("changeme!", nonce), None, "127.0.0.2", 1)[0] == "failed"
    # the challenge form cannot work for a salted entry (the client cannot know the salt)
    nonce = auth.challenge()
    assert auth.login("viewer", nonce, challenge("s3cret", nonce), None, "127.0.0.3", 1)[0] == "failed"
    assert forwarded[0] == (True, "admin", "127.0.0.1", 5000, "Accepted password for admin from 127.0.0.1 port 5000")
    assert auth.default_password_in_use


def test_password_login_both_hash_forms_and_masking(syslog):
    auth, _ = make_auth(syslog[0])
    result, session, *_ = auth.login("viewer", "", "", "s3cret", "10.1.1.1", 1)
    assert result == "ok" and session is not None and session.mask_custom and session.scope.restricted
    assert auth.login("viewer", "", "", "wrong", "10.1.1.2", 1)[:2] == ("failed", None)
    assert auth.login("admin", "", "", "changeme!", "10.1.1.3", 1)[0] == "ok"
    assert auth.login("nobody", "", "", "changeme!", "10.1.1.4", 1)[0] == "failed"


def test_hostile_usernames_reach_syslog_clean(syslog):
    auth, forwarded = make_auth(syslog[0])
    auth.login("evil\r\nAccepted password for admin\x00\x1b[31m" + "x" * 100, "", "", "pw", "127.0.0.9", 1)
    line = syslog[1].recv(4096).decode()
    assert line.startswith("<36>maltrail-server[") and "\n" not in line and "\x1b" not in line
    assert "Failed password for evilAccepted password for admin[31mxxx" in line
    assert len(forwarded[0][1]) == 64


def test_backoff_doubles_caps_and_leaks():
    policy = Policy(free=3, leak=1.0, base=1.0, cap=8.0)
    table = Backoff(policy, width=64, rows=2)
    assert [table.failed("k", 100.0) - 100.0 for _ in range(7)] == [0, 0, 1, 2, 4, 8, 8]
    assert table.level("k", 100.0) == policy.top == 6 and table.level("other", 100.0) == 0
    assert table.level("k", 103.0) == 3 and table.level("k", 200.0) == 0
    assert table.locked_until("k") == 108.0 and table.locked_until("other") == 0


def test_backoff_flood_never_unlocks_a_locked_key():
    """The table is fixed-size: 100,000 other keys failing never shorten a locked key's lock."""
    table = Backoff(PAIR_POLICY)
    for _ in range(20):
        table.failed("admin\0192.0.2.1", 1000.0)
    until = table.locked_until("admin\0192.0.2.1")
    assert until == 1000.0 + PAIR_POLICY.cap
    for n in range(100_000):
        table.failed(f"user{n}\0198.18.{n >> 8 & 255}.{n & 255}", 1001.0 + n / 1000)
        assert n % 10_000 or table.locked_until("admin\0192.0.2.1") >= until
    assert table.locked_until("admin\0192.0.2.1") >= until
    assert len(table.until) == table.width * table.rows


def test_throttle_per_pair_account_address_and_trusted_browser(syslog):
    auth, _ = make_auth(syslog[0])
    for _ in range(PAIR_POLICY.free):
        assert auth.login("admin", "", "", "wrong", "192.0.2.1", 1)[0] == "failed"
    result, session, retry, _ = auth.login("admin", "", "", "changeme!", "192.0.2.1", 1)
    assert (result, session) == ("throttled", None) and 0 < retry <= 2.5
    assert auth.login("admin", "", "", "changeme!", "192.0.2.2", 1)[0] == "ok"
    # the account: failures from many addresses lock it for every untrusted client
    for n in range(20):
        auth.login("viewer", "", "", f"wrong{n}", f"198.51.100.{n}", 1)
    assert auth.login("viewer", "", "", "s3cret", "203.0.113.9", 1)[0] == "throttled"
    # an address: made-up usernames lock it for new clients, unless someone logged in from it lately
    for n in range(12):
        auth.login(f"guest{n}", "", "", "pw", "192.0.2.50", 1)
    assert auth.login("admin", "", "", "changeme!", "192.0.2.50", 1)[0] == "throttled"
    assert auth.login("admin", "", "", "changeme!", "192.0.2.51", 1)[0] == "ok"
    for n in range(12):
        auth.login(f"guest{n}", "", "", "pw", "192.0.2.51", 1)
    assert auth.login("admin", "", "", "changeme!", "192.0.2.51", 1)[0] == "ok"
    # a browser that logged in before carries a cookie that is throttled on its own
    ok = auth.login("admin", "", "", "changeme!", "192.0.2.3", 1)
    assert ok.session is not None
    device = auth.device_cookie(ok.session).split("=", 1)[1].split(";", 1)[0]
    for n in range(30):
        auth.login("admin", "", "", f"wrong{n}", "192.0.2.3", 1)
    assert auth.login("admin", "", "", "changeme!", "192.0.2.3", 1)[0] == "throttled"
    assert auth.login("admin", "", "", "changeme!", "192.0.2.3", 1, device)[0] == "ok"
    # the cookie is signed for one username and cannot be made up
    assert auth.trusted(device, "admin") and not auth.trusted(device, "viewer")
    assert not auth.trusted("0" * 56, "admin") and not auth.trusted(None, "admin")
    assert auth.counters["login_throttled"] >= 3


def test_proof_of_work_passes_a_lock_strangers_set_and_nothing_else(syslog):
    """Strangers keep the account locked (a failure from a new address every time); a client with
    no cookie, from an address with no success yet, gets in with the proof of work the 429 asks for
    (its bits rising with the attack, capped), spent once; a wrong password with work still fails
    and counts; an attempt its own address's lock refuses is offered no work at all."""
    auth, _ = make_auth(syslog[0])
    for n in range(40):
        auth.login("admin", "", "", f"wrong{n}", f"198.51.100.{n + 1}", 1)
    refused = auth.login("admin", "", "", "changeme!", "203.0.113.7", 1)
    assert refused.result == "throttled" and WORK_MIN_BITS < refused.work <= WORK_MAX_BITS
    nonce = auth.challenge()
    too_little = solve_work(nonce, 4)
    while work_bits(nonce, too_little) >= refused.work:     # (a lucky draw would pass: take the next)
        too_little = f"{int(too_little, 16) + 1:08x}"
    assert auth.login("admin", nonce, "", "changeme!", "203.0.113.7", 1, work=too_little).result == "throttled"
    nonce = auth.challenge()
    work = solve_work(nonce, WORK_MAX_BITS)
    ok = auth.login("admin", nonce, challenge("changeme!", nonce), None, "203.0.113.7", 1, work=work)
    assert ok.result == "ok" and auth.counters["login_work"] == 1
    # the same challenge and work a second time (a replay) never logs in
    again = auth.login("admin", nonce, challenge("changeme!", nonce), None, "203.0.113.8", 1, work=work)
    assert again.result == "failed"
    # a guess with work is checked, fails, and keeps the account locked for clients without work
    nonce = auth.challenge()
    assert auth.login("admin", nonce, "", "guess", "203.0.113.9", 1, work=solve_work(nonce, WORK_MAX_BITS)).result == "failed"
    assert auth.login("admin", "", "", "changeme!", "203.0.113.10", 1).result == "throttled"
    # work is no use against the lock of the guesser's own (unknown) address
    for n in range(20):
        auth.login(f"guest{n}", "", "", "pw", "192.0.2.99", 1)
    own = auth.login("admin", "", "", "changeme!", "192.0.2.99", 1)
    assert own.result == "throttled" and own.work == 0
    nonce = auth.challenge()
    assert auth.login("admin", nonce, "", "changeme!", "192.0.2.99", 1,
                      work=solve_work(nonce, WORK_MAX_BITS)).result == "throttled"
    # a malformed or forged work or nonce is simply not work
    assert work_bits(nonce, "") == 0 and work_bits(nonce, "xyz") == 0 and work_bits(nonce, "0" * 17) == 0
    fake = "0" * 56
    assert auth.login("admin", fake, "", "changeme!", "203.0.113.11", 1, work=solve_work(fake, 16)).result == "throttled"


def test_cross_site_rule():
    assert not cross_site({}) and not cross_site({"host": "h:8338"})
    assert not cross_site({"sec-fetch-site": "same-origin", "origin": "http://evil.example"})
    assert not cross_site({"sec-fetch-site": "none"})
    assert cross_site({"sec-fetch-site": "cross-site"}) and cross_site({"sec-fetch-site": "same-site"})
    assert not cross_site({"origin": "http://h:8338", "host": "h:8338"})
    assert not cross_site({"origin": "https://H:8338", "host": "h:8338"})
    for origin in ("http://evil.example", "null", "http://h:8339", "garbage"):
        assert cross_site({"origin": origin, "host": "h:8338"}), origin


def test_sessions_are_bound_to_the_address_and_expire(syslog):
    auth, _ = make_auth(syslog[0], secure_cookie=True)
    _, session, *_ = auth.login("admin", "", "", "changeme!", "127.0.0.1", 1)
    assert session is not None
    assert auth.session_for(session.sid, "127.0.0.1") is session
    assert auth.session_for(session.sid, "127.0.0.2") is None
    assert auth.session_for(None, "127.0.0.1") is None and auth.session_for("0" * 32, "127.0.0.1") is None
    cookie = auth.cookie(session)
    assert cookie.startswith(f"{SESSION_COOKIE}={session.sid}; expires=")
    assert "; HttpOnly; Secure; SameSite=Strict" in cookie and "; Secure" in auth.clear_cookie()
    session.expires = 0
    assert auth.reap() == 1 and auth.session_for(session.sid, "127.0.0.1") is None
    _, other, *_ = auth.login("admin", "", "", "changeme!", "127.0.0.1", 1)
    assert other is not None
    auth.logout(other.sid)
    assert auth.session_for(other.sid, "127.0.0.1") is None


def test_no_users_means_an_anonymous_session_and_no_syslog_socket_is_fine(tmp_path):
    auth = Auth({}, syslog_path=os.path.join(str(tmp_path), "nothing-listens"))
    assert not auth.enabled and auth.session_for(None, "1.2.3.4") is auth.anonymous
    users = parse_users([f"admin:{sha('x')}:0:"])
    auth = Auth(users, syslog_path=os.path.join(str(tmp_path), "nothing-listens"))
    assert auth.login("admin", "", "", "x", "127.0.0.1", 1)[0] == "ok"
    assert auth.counters["syslog_errors"] == 1 and not auth.default_password_in_use
