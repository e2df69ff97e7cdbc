"""Scoped users on every data route of the real server.py: a property test. Random events inside
and outside a user's network filter (some with custom-trail info that UID >= 1000 sees masked)
are written to two day files; random queries go to /events, /counts, /hunt, /geo and /blacklist
as three users (unrestricted, scoped, scoped and masked). Each answer must equal what an
independent statement of the rule gives over the lines that user may see: nothing out of scope
and no masked text is ever shown, matched or counted."""

from __future__ import annotations

import datetime
import ipaddress
import json
import random
import re
import socket
import time
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kit.server import Server, sha

TODAY = datetime.date.today()
YESTERDAY = TODAY - datetime.timedelta(days=1)
SCOPE = "10.1.0.0/16, 2001:db8:1::/48"
NETS = [ipaddress.ip_network(n.strip()) for n in SCOPE.split(",")]
USERS = {"admin": ("pw-admin", 0, ""), "ops": ("pw-ops", 0, SCOPE), "viewer": ("pw-viewer", 1000, SCOPE)}
RULES = {"": r"filter ~ SECRET", "SRC": r"src_ip ~ ^10\.", "DNS": r"type ~ ^DNS$ and filter ~ (?i)secret|attacker"}


def in_scope(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == n.version and ip in n for n in NETS)


class Event:
    def __init__(self, day: datetime.date, rng: random.Random, n: int) -> None:
        inside = [f"10.1.{rng.randrange(4)}.{rng.randrange(1, 255)}", f"2001:db8:1::{rng.randrange(1, 4096):x}"]
        outside = [f"10.2.{rng.randrange(4)}.{rng.randrange(1, 255)}", f"192.168.1.{rng.randrange(1, 255)}",
                   f"8.8.{rng.randrange(4)}.{rng.randrange(1, 255)}", f"2001:db8:2::{rng.randrange(1, 4096):x}"]
        self.src = rng.choice(rng.choice([inside, outside]))
        family = ":" in self.src
        dsts = [a for a in inside + outside if (":" in a) == family]
        self.dst = rng.choice(dsts)
        self.type = rng.choice(["IP", "DNS", "URL", "UA"])
        self.trail = {"IP": self.dst, "DNS": f"evil{n % 37}.example", "URL": f"evil{n % 23}.example/p{n % 5}",
                      "UA": "badbot"}[self.type]
        self.custom = rng.random() < 0.4
        if self.custom:
            self.info, self.reference = f"SECRET{n:04d} internal note", "(custom)"
        else:
            self.info = rng.choice(["known attacker", "malware", "mass scanner", "secretive botnet",
                                    "looks (custom) but is not"])
            self.reference = rng.choice(["(static)", "abuse.example", "feeds.example"])
        self.time = f"{day.isoformat()} {n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000000"
        self.sensor = rng.choice(["s1", "s2"])
        self.day = day

    def line(self, masked: bool = False) -> str:
        info = "-" if masked and self.custom else self.info
        info = f'"{info}"' if " " in info else info
        return (f'"{self.time}" {self.sensor} {self.src} 1234 {self.dst} 80 TCP {self.type} {self.trail} '
                f"{info} {self.reference}")

    def seen_by(self, user: str) -> str | None:
        """The line as the user may see it (None: out of the user's scope)."""
        _, uid, scope = USERS[user]
        if scope and not (in_scope(self.src) or in_scope(self.dst)):
            return None
        return self.line(masked=uid >= 1000)


def make_events() -> list[Event]:
    rng = random.Random(21)
    return [Event(day, rng, n) for day in (YESTERDAY, TODAY) for n in range(300)]


EVENTS = make_events()


def visible(user: str, days: list[datetime.date] | None = None) -> list[tuple[datetime.date, str]]:
    out = []
    for event in EVENTS:
        seen = event.seen_by(user)
        if seen is not None and (days is None or event.day in days):
            out.append((event.day, seen))
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("scope"))
    users = [f"{name}:{sha(pw)}:{uid}:{scope}" for name, (pw, uid, scope) in USERS.items()]
    extra = "".join(f"BLACKLIST{'_' + name if name else ''}\n    {rule}\n" for name, rule in RULES.items())
    srv = Server(tmp, users=users, udp=False, extra=extra)
    for day in (YESTERDAY, TODAY):
        srv.write_events([e.line() for e in EVENTS if e.day == day], time.mktime(day.timetuple()) + 43200)
    srv.start()
    cookies = {name: srv.login(name, pw) for name, (pw, _, _) in USERS.items()}
    assert all(cookies.values())
    yield srv, cookies
    srv.stop()


def get_json(srv: Server, cookie: str, path: str) -> dict:
    status, body = srv.get(path, cookie=cookie)
    assert status == 200, (path, status, body[:200])
    return json.loads(body)


def hunt_matches(query: str, event: Event, seen: str) -> bool:
    """/hunt's documented rule: an address or CIDR query matches the source or destination address;
    any other query is a case-insensitive substring of the line as the user sees it."""
    if re.fullmatch(r"[0-9a-fA-F:.]+(/\d{1,3})?", query) and any(c in query for c in ".:"):
        try:
            network = ipaddress.ip_network(query, strict=False)
        except ValueError:
            network = None
        if network is not None:
            return any(ipaddress.ip_address(a).version == network.version and ipaddress.ip_address(a) in network
                       for a in (event.src, event.dst))
    return query.lower() in seen.lower()


def fragments() -> list[str]:
    out = ["SECRET", "secret", "internal note", "10.2.", "10.1.", "2001:db8:2::", "(custom)", "known attacker",
           "10.2.0.0/16", "10.1.0.0/16", "2001:db8:2::/48", "2001:db8:1::/48", "192.168.1.0/24", "evil1",
           "badbot", "- (custom)", '"- (custom', "s1 10.2", "TCP DNS"]
    for event in EVENTS[::7]:
        out += [event.src, event.dst, event.trail, event.info[:10], event.line()[30:60]]
    return sorted(set(out))


USERS_ST = st.sampled_from(sorted(USERS))
SPANS = st.sampled_from([(YESTERDAY, TODAY), (TODAY, TODAY), (YESTERDAY, YESTERDAY)])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=USERS_ST, fragment=st.sampled_from(fragments()), cut=st.integers(0, 8), upper=st.booleans(),
       span=SPANS)
def test_hunt_matches_and_counts_only_what_the_user_sees(env, user, fragment, cut, upper, span):
    srv, cookies = env
    query = fragment[cut:] if len(fragment) - cut >= 3 else fragment
    query = query.upper() if upper and not re.search(r"\d", query) else query
    query = query.strip() if len(query.strip()) >= 3 else query
    if len(query.strip()) < 3:
        return
    days = [d for d in (YESTERDAY, TODAY) if span[0] <= d <= span[1]]
    answer = get_json(srv, cookies[user], "/hunt?" + urllib.parse.urlencode(
        {"q": query, "from": span[0].isoformat(), "to": span[1].isoformat()}))
    expected: dict[str, int] = {}
    shown = set()
    for event in EVENTS:
        seen = event.seen_by(user)
        if seen is not None and event.day in days and hunt_matches(query.strip(), event, seen):
            expected[event.day.isoformat()] = expected.get(event.day.isoformat(), 0) + 1
            shown.add(seen)
    assert answer["counts"] == expected, (user, query)
    assert not answer["partial"]
    assert {s["line"] for s in answer["samples"]} <= shown
    assert len(answer["samples"]) == min(200, sum(expected.values()))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=USERS_ST, span=SPANS)
def test_counts_events_and_geo_hold_only_what_the_user_sees(env, user, span):
    srv, cookies = env
    days = [d for d in (YESTERDAY, TODAY) if span[0] <= d <= span[1]]
    counts = get_json(srv, cookies[user], f"/counts?from={span[0].isoformat()}&to={span[1].isoformat()}")
    expected: dict[str, int] = {}
    for day, _ in visible(user, days):
        expected[day.isoformat()] = expected.get(day.isoformat(), 0) + 1
    assert counts == expected
    for day in days:
        status, body = srv.get(f"/events?date={day.isoformat()}", cookie=cookies[user])
        assert status == 200
        assert sorted(body.decode().splitlines()) == sorted(seen for _, seen in visible(user, [day]))
        geo = get_json(srv, cookies[user], f"/geo?date={day.isoformat()}")
        assert geo["mapped"] + geo["unmapped"] == len(visible(user, [day]))


@pytest.mark.parametrize("user", sorted(USERS))
@pytest.mark.parametrize("name", sorted(RULES))
def test_blacklist_rules_see_the_lines_as_the_user_does(env, user, name):
    srv, cookies = env
    status, body = srv.get("/blacklist" + (f"/{name}" if name else ""), cookie=cookies[user])
    assert status == 200
    clauses = [re.fullmatch(r"(\w+) (~|!~) (.+)", c).groups() for c in RULES[name].split(" and ")]

    def matches(event: Event, seen: str) -> bool:
        info = "-" if USERS[user][1] >= 1000 and event.custom else event.info
        fields = {"src_ip": event.src, "type": event.type, "filter": f"{info} {event.reference}"}
        return all(bool(re.search(rx, fields[f])) == (op == "~") for f, op, rx in clauses)

    expected: list[str] = []
    for event in EVENTS:
        seen = event.seen_by(user)
        if event.day == TODAY and seen is not None and matches(event, seen) and event.src not in expected:
            expected.append(event.src)
    assert body.decode().splitlines() == expected
    if name == "" and USERS[user][1] >= 1000:
        assert expected == []           # every SECRET is custom-trail info, masked for this user


def test_live_stream_and_fail2ban_for_a_scoped_masked_user(env):
    srv, cookies = env
    expected = sorted(seen for _, seen in visible("viewer", [TODAY]))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(f"GET /live?date={TODAY.isoformat()} HTTP/1.1\r\nHost: x\r\n"
                     f"Cookie: maltrail_sessid={cookies['viewer']}\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + 10
        while data.count(b"\ndata: ") < len(expected) and time.monotonic() < deadline:
            data += sock.recv(65536)
    lines = sorted(part.split(b"\n", 1)[0].decode() for part in data.split(b"\ndata: ")[1:])
    assert lines == expected
    assert srv.get("/fail2ban", cookie=cookies["viewer"])[0] == 404     # firewalls only (FAIL2BAN_ALLOWLIST)
