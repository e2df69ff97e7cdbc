"""Login abuse against the real server.py on real sockets (distinct 127.x source addresses stand
for distinct clients): replayed challenge logins, throttling per account, per address and by a
global budget that a flood cannot flush, a NAT neighbour who fails continuously, login CSRF, and
the start-up warning for a network address without TLS."""

from __future__ import annotations

import concurrent.futures
import time
import urllib.parse

import pytest

from core.server.app import clear_text_warning
from tests.kit.logins import addresses, failing_neighbour, post, post_full
from tests.kit.server import Server, sha, solve_work

PASSWORD = "changeme!"


def challenge_body(server: Server, user: str, password: str, source: str) -> str:
    nonce = server.challenge(source)
    return f"username={user}&nonce={nonce}&hash={sha(sha(password) + nonce)}"


def wrong(n: int, user: str = "admin") -> str:
    return urllib.parse.urlencode({"username": user, "password": f"wrong-{n}"})


@pytest.fixture
def server(tmp_path):
    with Server(str(tmp_path), udp=False) as srv:
        yield srv


def test_a_sniffed_challenge_login_never_gives_a_session_again(server):
    sniffed = challenge_body(server, "admin", PASSWORD, "127.0.0.2")
    status, cookies = post(server, "/login", sniffed, "127.0.0.2")
    assert status == 200 and "maltrail_sessid" in cookies
    assert post(server, "/login", sniffed, "127.0.0.2")[0] == 401
    # a nonce the client chose itself is refused outright, even with the right password
    nonce = "abcdefgh12345678"
    assert post(server, "/login", f"username=admin&nonce={nonce}&hash={sha(sha(PASSWORD) + nonce)}",
                "127.0.0.4")[0] == 401
    # the replay: 10,050 junk challenge logins from other addresses (four each, under the
    # old per-address limit) pushed the sniffed nonce out of the server's memory
    junk = addresses(2513, first=1 << 16)

    def spam(n: int) -> int:
        nonce = f"junk{n:012d}"
        body = f"username=admin&nonce={nonce}&hash={sha(sha('guess') + nonce)}"
        return post(server, "/login", body, junk[n // 4])[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(spam, range(10_050)))
    assert set(statuses) <= {401, 429}
    for source in ("127.0.0.2", "127.0.0.3"):
        status, cookies = post(server, "/login", sniffed, source)
        assert status in (401, 429) and "maltrail_sessid" not in cookies


def test_300_addresses_get_a_handful_of_verdicts_on_one_account(server):
    """The issue: 300 addresses got 300 verdicts in 0.45 s. The account's own back-off stops that."""
    status, cookies = post(server, "/login", challenge_body(server, "admin", PASSWORD, "127.0.0.5"), "127.0.0.5")
    assert status == 200
    device = {"Cookie": f"maltrail_device={cookies['maltrail_device']}"}
    sources = addresses(300, first=1 << 8)

    def attempt(n: int) -> int:
        return post(server, "/login", wrong(n), sources[n])[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(attempt, range(300)))
    verdicts = statuses.count(401)
    assert verdicts + statuses.count(429) == 300
    assert verdicts <= 20, verdicts
    # the account is locked for clients it does not know; a browser that logged in before is not held
    assert post(server, "/login", challenge_body(server, "admin", PASSWORD, "127.0.0.6"), "127.0.0.6")[0] == 429
    assert post(server, "/login", challenge_body(server, "admin", PASSWORD, "127.0.0.5"), "127.0.0.5",
                device)[0] == 200


def test_4100_failures_cannot_flush_a_lock(server):
    """The issue: 4,100 failures flushed the 4,096-entry table and unlocked a locked address."""
    locked = "127.0.0.200"
    for n in range(20):                      # refused attempts count too: the lock reaches its cap
        post(server, "/login", wrong(n), locked)
    assert post(server, "/login", challenge_body(server, "admin", PASSWORD, locked), locked)[0] == 429
    sources = addresses(4100, first=2 << 16)

    def attempt(n: int) -> int:
        return post(server, "/login", wrong(n, f"nobody{n}"), sources[n])[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(attempt, range(4100)))
    assert statuses.count(401) == 4100           # every one of them was a counted failure
    assert post(server, "/login", challenge_body(server, "admin", PASSWORD, locked), locked)[0] == 429
    assert post(server, "/login", challenge_body(server, "admin", PASSWORD, "127.0.0.201"), "127.0.0.201")[0] == 200


def test_a_global_failure_budget_stops_spraying_over_accounts_and_addresses(tmp_path):
    """One wrong password per account, each from its own address: no account or address limit is
    reached, the global budget (100 failures, then exponential back-off) is."""
    users = [f"user{n}:{sha(f'pw{n}')}:0:" for n in range(150)]
    with Server(str(tmp_path), users=users, udp=False) as srv:
        status, cookies = post(srv, "/login", challenge_body(srv, "user0", "pw0", "127.0.0.9"), "127.0.0.9")
        assert status == 200
        device = {"Cookie": f"maltrail_device={cookies['maltrail_device']}"}
        sources = addresses(150, first=3 << 16)
        statuses = [post(srv, "/login", wrong(n, f"user{n}"), sources[n])[0] for n in range(150)]
        assert statuses[:100] == [401] * 100 and statuses.count(429) >= 45
        # untrusted clients of every account wait; the browser that logged in before does not
        assert post(srv, "/login", challenge_body(srv, "user1", "pw1", "127.0.0.10"), "127.0.0.10")[0] == 429
        assert post(srv, "/login", challenge_body(srv, "user0", "pw0", "127.0.0.9"), "127.0.0.9", device)[0] == 200


def timed_logins(srv, source: str, headers: dict[str, str] | None = None) -> list[tuple[int, bool, float]]:
    """60 correct admin logins from `source`, 0.25 s apart: (status, got a session, seconds) each."""
    results = []
    for _ in range(60):
        started = time.monotonic()
        status, cookies = post(srv, "/login", challenge_body(srv, "admin", PASSWORD, source), source, headers)
        results.append((status, "maltrail_sessid" in cookies, time.monotonic() - started))
        time.sleep(0.25)
    return results


def test_a_nat_neighbour_failing_continuously_does_not_lock_the_real_user_out(server):
    """The issue: an attacker on the user's address let 2 of 60 correct logins through in 30 s.
    The user's browser logged in before (its trusted-browser cookie); 60 logins in 15 s all pass."""
    nat = "127.0.0.77"
    status, cookies = post(server, "/login", challenge_body(server, "admin", PASSWORD, nat), nat)
    assert status == 200 and cookies.get("maltrail_device")
    device = {"Cookie": f"maltrail_device={cookies['maltrail_device']}"}
    with failing_neighbour(server, wrong, nat) as attacker:
        results = timed_logins(server, nat, device)
        # a client without that cookie on the same address is held by the attacker's lock ...
        fresh = post(server, "/login", challenge_body(server, "admin", PASSWORD, nat), nat)[0]
        # ... and one on another address is not (the attacker's refused attempts lock only its own keys)
        other = post(server, "/login", challenge_body(server, "admin", PASSWORD, "127.0.0.78"), "127.0.0.78")[0]
    assert [r[:2] for r in results] == [(200, True)] * 60
    assert max(r[2] for r in results) < 3.0
    assert attacker.count(429) > attacker.count(401) and len(attacker) > 100
    assert (fresh, other) == (429, 200)
    # with the attacker still there, a client with no cookie on the shared address gets in with work
    with failing_neighbour(server, wrong, nat):
        status, bits, rounds = login_with_work(server, "admin", PASSWORD, nat)
    assert status == 200 and bits >= 16 and rounds <= 2


def test_a_nat_neighbour_guessing_other_accounts_does_not_hold_a_fresh_client(tmp_path):
    """Someone logged in from the shared address before; a neighbour there then fails continuously
    on another account and on made-up usernames. A client with no cookie at all still logs in
    60 times in 15 s, each within 3 s (the address lock does not hold an address with a recent
    success; the attacker's own account+address pair does hold the attacker)."""
    users = [f"admin:{sha(PASSWORD)}:0:", f"ops:{sha('ops-pw')}:0:"]
    nat = "127.0.0.90"
    with Server(str(tmp_path), users=users, udp=False) as srv:
        assert post(srv, "/login", urllib.parse.urlencode({"username": "ops", "password": "ops-pw"}), nat)[0] == 200
        with failing_neighbour(srv, lambda n: wrong(n, "ops" if n % 2 else f"guest{n}"), nat) as attacker:
            results = timed_logins(srv, nat)
    assert [r[:2] for r in results] == [(200, True)] * 60
    assert max(r[2] for r in results) < 3.0
    assert attacker.count(429) > 0 and len(attacker) > 100


def login_with_work(srv, user: str, password: str, source: str) -> tuple[int, int, int]:
    """A client with no cookie logs in as the console does: on a 429 that asks for a proof of work,
    solve it on a fresh challenge and try again (four rounds at most). (final status, the bits
    asked last, rounds of work it took)."""
    bits, rounds = 0, 0
    for _ in range(5):
        nonce = srv.challenge(source)
        body = f"username={user}&nonce={nonce}&hash={sha(sha(password) + nonce)}"
        if bits:
            body += f"&work={solve_work(nonce, bits)}"
            rounds += 1
        status, _cookies, headers = post_full(srv, "/login", body, source)
        if status != 429 or not headers.get("x-maltrail-work"):
            return status, bits, rounds
        bits = int(headers["x-maltrail-work"])
    return status, bits, rounds


def test_strangers_keeping_the_account_locked_never_keep_a_new_client_out(server):
    """The attack the throttle itself invites: wrong passwords from ever new addresses keep the
    admin account (and the global budget) locked. A client with no cookie, on an address that never
    logged in, is still let in after one proof of work (two when the attack raised the price while
    it solved), each time; the attackers get almost nothing but refusals. (How long a proof takes
    is a matter of hashing speed: docs/security.md gives the browser's.)"""
    strangers = addresses(50_000, first=5 << 16)
    with failing_neighbour(server, wrong, lambda n: strangers[n % len(strangers)], threads=2) as attacker:
        refused = post_full(server, "/login", challenge_body(server, "admin", PASSWORD, "127.0.0.60"), "127.0.0.60")
        results = [login_with_work(server, "admin", PASSWORD, f"127.0.0.{61 + k}") for k in range(3)]
    assert refused[0] == 429 and int(refused[2]["x-maltrail-work"]) >= 16
    assert [status for status, _, _ in results] == [200] * 3, results
    assert all(16 <= bits <= 22 and 1 <= rounds <= 2 for _, bits, rounds in results), results
    assert attacker.count(401) <= 25 and attacker.count(429) > 10 * attacker.count(401), (
        attacker.count(401), attacker.count(429))


def test_login_csrf_post_only_and_cross_site_refused(server):
    # GET never logs in (passwords would sit in proxy logs and history)
    status, headers, _ = server.request("GET", "/login?username=admin&password=changeme%21")
    assert status == 405 and headers["allow"] == "POST" and "set-cookie" not in headers
    assert server.request("HEAD", "/login?username=admin&password=changeme%21")[0] == 405
    body = urllib.parse.urlencode({"username": "admin", "password": PASSWORD})
    # the cross-site form: another site's Origin, text/plain
    for hostile in ({"Origin": "http://evil.example", "Content-Type": "text/plain"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "null"}):
        status, cookies = post(server, "/login", body, "127.0.0.30", hostile)
        assert status == 403 and not cookies, hostile
    # the same site's own page, and scripts that send neither header, log in
    host = f"127.0.0.1:{server.port}"
    for friendly in ({"Origin": f"http://{host}", "Host": host}, {"Sec-Fetch-Site": "same-origin"}, {}):
        status, cookies = post(server, "/login", body, "127.0.0.31", friendly)
        assert status == 200 and cookies.get("maltrail_sessid"), friendly
    # logout changes state too: POST only, same rule
    sid = cookies["maltrail_sessid"]
    assert server.request("GET", "/logout", cookie=sid)[0] == 405
    status, _, _ = server.request("POST", "/logout", cookie=sid, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    assert server.get("/whoami", cookie=sid, source="127.0.0.31") == (200, b"admin")
    assert server.request("POST", "/logout", cookie=sid, source="127.0.0.31")[0] == 302
    assert server.get("/whoami", cookie=sid, source="127.0.0.31") == (200, b"")
    # reads stay GET-able from anywhere (a cross-site GET carries no SameSite=Strict cookie)
    assert server.request("GET", "/ping", headers={"Sec-Fetch-Site": "cross-site"})[0] == 200


def start_retrying(tmp: str, extra: str = "") -> Server:
    """A server whose free port may be taken meanwhile (on 0.0.0.0 it was checked on 127.0.0.1
    only, and other test runs share the machine): retry with another port on a clash."""
    for attempt in range(5):
        srv = Server(f"{tmp}/{attempt}", udp=False, extra=extra)
        try:
            return srv.start()
        except RuntimeError as ex:
            srv.stop()
            if "Address already in use" not in str(ex):
                raise
    raise RuntimeError("no free port")


def test_clear_text_warning_on_a_network_address_without_tls(tmp_path):
    srv = start_retrying(str(tmp_path / "a"), "HTTP_ADDRESS 0.0.0.0")
    srv.stop()
    assert "cross the network in clear" in srv.stderr and "USE_SSL true" in srv.stderr, srv.stderr
    assert "openssl req -new -x509" in srv.stderr
    srv = start_retrying(str(tmp_path / "b"))
    srv.stop()
    assert "listening on" in srv.stderr and "in clear" not in srv.stderr, srv.stderr
    for address in ("127.0.0.1", "::1", "localhost", "127.1.2.3"):
        assert clear_text_warning(address, False) is None
    for address in ("0.0.0.0", "", "::", "10.0.0.5", "sensor.example.org"):
        assert clear_text_warning(address, False) and clear_text_warning(address, True) is None
