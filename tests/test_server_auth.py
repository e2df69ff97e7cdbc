"""core/server/auth.py in process: USERS entries, network scopes, both login forms, nonce reuse,
the failed-login throttle, sessions bound to an address, cookies, and the sshd-style line on a
real syslog datagram socket (a Unix socket in the test's folder)."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from core.config import ConfigError
from core.server.auth import (
    SESSION_COOKIE,
    THROTTLE_FAILURES,
    Auth,
    Scope,
    hash_password,
    parse_users,
)


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


def test_challenge_login_and_nonce_reuse(syslog):
    auth, forwarded = make_auth(syslog[0])
    nonce = "abcdefgh1234"
    result, session = auth.login("admin", nonce, challenge("changeme!", nonce), None, "127.0.0.1", 5000)
    assert result == "ok" and session is not None and not session.mask_custom
    assert syslog[1].recv(4096).decode().endswith("Accepted password for admin from 127.0.0.1 port 5000")
    # the same nonce never works twice, even with the right hash
    assert auth.login("admin", nonce, challenge("changeme!", nonce), None, "127.0.0.1", 5000) == ("failed", None)
    for nonce in ("short", "has space!", "x" * 65):
        assert auth.login("admin", nonce, challenge("changeme!", nonce), None, "127.0.0.2", 1)[0] == "failed"
    # the challenge form cannot work for a salted entry (the client cannot know the salt)
    nonce = "zyxwvuts9876"
    assert auth.login("viewer", nonce, challenge("s3cret", nonce), None, "127.0.0.3", 1)[0] == "failed"
    assert forwarded[0] == (True, "admin", "127.0.0.1", 5000, "Accepted password for admin from 127.0.0.1 port 5000")
    assert auth.default_password_in_use


def test_password_login_both_hash_forms_and_masking(syslog):
    auth, _ = make_auth(syslog[0])
    result, session = auth.login("viewer", "", "", "s3cret", "10.1.1.1", 1)
    assert result == "ok" and session is not None and session.mask_custom and session.scope.restricted
    assert auth.login("viewer", "", "", "wrong", "10.1.1.2", 1) == ("failed", None)
    assert auth.login("admin", "", "", "changeme!", "10.1.1.3", 1)[0] == "ok"
    assert auth.login("nobody", "", "", "changeme!", "10.1.1.4", 1)[0] == "failed"


def test_hostile_usernames_reach_syslog_clean(syslog):
    auth, forwarded = make_auth(syslog[0])
    auth.login("evil\r\nAccepted password for admin\x00\x1b[31m" + "x" * 100, "", "", "pw", "127.0.0.9", 1)
    line = syslog[1].recv(4096).decode()
    assert line.startswith("<36>maltrail-server[") and "\n" not in line and "\x1b" not in line
    assert "Failed password for evilAccepted password for admin[31mxxx" in line
    assert len(forwarded[0][1]) == 64


def test_throttle_is_per_address(syslog):
    auth, _ = make_auth(syslog[0])
    for _ in range(THROTTLE_FAILURES):
        assert auth.login("admin", "", "", "wrong", "192.0.2.1", 1)[0] == "failed"
    assert auth.login("admin", "", "", "changeme!", "192.0.2.1", 1) == ("throttled", None)
    assert auth.login("admin", "", "", "changeme!", "192.0.2.2", 1)[0] == "ok"
    assert auth.counters["login_throttled"] == 1 and auth.counters["login_failed"] == THROTTLE_FAILURES


def test_sessions_are_bound_to_the_address_and_expire(syslog):
    auth, _ = make_auth(syslog[0], secure_cookie=True)
    _, session = auth.login("admin", "", "", "changeme!", "127.0.0.1", 1)
    assert session is not None
    assert auth.session_for(session.sid, "127.0.0.1") is session
    assert auth.session_for(session.sid, "127.0.0.2") is None
    assert auth.session_for(None, "127.0.0.1") is None and auth.session_for("0" * 32, "127.0.0.1") is None
    cookie = auth.cookie(session)
    assert cookie.startswith(f"{SESSION_COOKIE}={session.sid}; expires=")
    assert "; HttpOnly; Secure; SameSite=Strict" in cookie and "; Secure" in auth.clear_cookie()
    session.expires = 0
    assert auth.reap() == 1 and auth.session_for(session.sid, "127.0.0.1") is None
    _, other = auth.login("admin", "", "", "changeme!", "127.0.0.1", 1)
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
