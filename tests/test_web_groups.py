"""Browser tests of grouped threats, live highlighting and stale answers, against the real server.py
(Debian chromium through Playwright).

- A DGA threat groups many domains (one threat per source and info): its drawer lists every
  member with its own event count, a member chip filters on it, and `trail:<member>` finds that
  member's events in every threat that holds it (the count is computed here from the day file).
  A scan written as condensed lines (comma lists of targets and ports, as the sensor's condensing
  stage writes them) shows all its ports and targets, past the per-threat value cap.
- Live mode: threats arriving over UDP while the page is live are marked in the grid until seen;
  the "N new" pill shows only them, then clears; the alert beep is off until switched on.
- Changing the day while a view is being computed never applies the old day's answer (no page
  error, the grid shows the new day).
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import random
import tempfile
import time

import pytest

from core.events.dayfile import day_path
from core.events.event import format_time, parse_line, safe_value
from tests.web import gen_day
from tests.web.harness import (
    browser_page,
    load_hash,
    load_seq,
    login,
    require_browser,
    search,
    shot,
    wait_loaded,
    wait_new_load,
)

pytestmark = pytest.mark.browser
sync_api = require_browser()

TODAY = datetime.date.today()
BIG_DAY = TODAY - datetime.timedelta(days=1)
DGA_INFO = "entropy threshold no such domain (suspicious)"
DGA_SOURCES = [f"172.16.99.{i}" for i in range(1, 7)]
MEMBERS = 181                 # domains the first DGA source asks for
SCANNER = "203.0.113.66"
SCAN_PORTS = list(range(1000, 1180))     # 180 distinct ports, past the per-threat cap of 100
SCAN_TARGETS = [f"10.77.0.{i}" for i in range(1, 131)]


def dga_domains(rnd: random.Random) -> list[str]:
    # fixed length, one TLD: no name is a substring of another, so `trail:` matches exactly one
    return ["".join(rnd.choice("bcdfghjklmnpqrstvwxz") for _ in range(14)) + ".top" for _ in range(MEMBERS)]


def today_lines() -> list[str]:
    rnd = random.Random(7)
    base = datetime.datetime.combine(TODAY, datetime.time()).replace(tzinfo=datetime.UTC).timestamp()
    lines = gen_day.day_lines(TODAY.isoformat(), 1500, seed=11)
    domains = dga_domains(rnd)
    for k, src in enumerate(DGA_SOURCES):
        # the first source asks for every domain, the others for a random part (the label of their
        # threats is their first name, often another one than the member the test searches)
        names = domains if k == 0 else rnd.sample(domains, 60)
        for i, name in enumerate(names):
            for j in range(1 + (i * 7 + k) % 5):
                t = base + 3600 + k * 600 + i * 3 + j * 0.01
                lines.append(gen_day._line(t, "gw", src, 40000 + i, "10.0.0.53", 53, "UDP", "DNS", name, DGA_INFO,
                                           "(heuristic)"))
    # a port scan as condensed lines: each line stands for several events, targets and ports comma-joined
    for n in range(12):
        ports = ",".join(str(p) for p in SCAN_PORTS[n * 15:(n + 1) * 15])
        targets = ",".join(SCAN_TARGETS[n * 11:(n + 1) * 11])
        lines.append(gen_day._line(base + 7200 + n * 10, "dmz", SCANNER, "-", targets, ports, "TCP", "IP", SCANNER,
                                   "potential port scanning", "(heuristic)"))
    lines.sort()
    return lines


def trail_events(lines: list[str], needle: str) -> int:
    """Events whose own trail holds `needle` (the `trail:` rule: substring, any case)."""
    low = needle.lower()
    return sum(1 for line in lines if low in (parse_line(line).trail or "").lower())


def member_events(lines: list[str], src: str, trail: str) -> int:
    count = 0
    for line in lines:
        e = parse_line(line)
        count += e.src_ip == src and e.trail == trail
    return count


@pytest.fixture(scope="module")
def env():
    log_dir = tempfile.mkdtemp(prefix="mt-web-groups-")
    lines = today_lines()
    gen_day.write_day(log_dir, TODAY.isoformat(), lines)
    gen_day.write_day(log_dir, BIG_DAY.isoformat(), gen_day.day_lines(BIG_DAY.isoformat(), 120000, seed=3))
    trails = os.path.join(log_dir, "trails.csv")      # the drawer's /check and /reference lookups need a trail store
    with open(trails, "w", encoding="utf-8") as handle:
        handle.write(f"{SCANNER},known attacker,(static)\n")
    with browser_page(log_dir, udp=True, extra={"TRAILS_FILE": trails}) as (page, server, errors, _dialogs):
        page.goto(server.url)
        login(page)
        yield {"page": page, "server": server, "lines": lines, "errors": errors, "log_dir": log_dir}


def events_card(page) -> int:
    return int(page.inner_text("#c-events").replace(",", ""))


def open_first_row(page) -> None:
    page.click("#grid-rows .row[data-index='0']")
    page.wait_for_selector("#drawer:not([hidden]) .dhead")


def test_trail_search_matches_every_member(env):
    page, lines = env["page"], env["lines"]
    domains = dga_domains(random.Random(7))
    for member in (domains[0], domains[57], domains[180]):
        expected = trail_events(lines, member)
        holders = {parse_line(line).src_ip for line in lines if member in line}
        rows = search(page, f"trail:{member}")
        assert rows == len(holders)          # every DGA threat holding the member, not only those it labels
        assert page.evaluate("window.maltrail.stats.events") == expected
        assert events_card(page) == expected
        # the Trails card counts the trails the search names, members included
        named = {parse_line(line).trail for line in lines if member.lower() in (parse_line(line).trail or "").lower()}
        assert int(page.inner_text("#c-trails").replace(",", "")) == len(named)
    # unfiltered, the Trails card counts every distinct trail of the day: every member of a grouped threat
    search(page, "")
    assert page.evaluate("window.maltrail.stats.trails") == len({parse_line(line).trail for line in lines})
    # a bare word matches members too
    assert search(page, domains[100]) >= 1
    search(page, "")


def test_drawer_lists_every_member_and_filters_on_one(env):
    page, lines = env["page"], env["lines"]
    domains = dga_domains(random.Random(7))
    src = DGA_SOURCES[0]
    assert search(page, f"src:{src}") == 1
    open_first_row(page)
    chips = page.locator("#d-members button")
    assert chips.count() == MEMBERS
    assert f"· {MEMBERS}" in page.inner_text("#d-members-title")
    shown = dict(page.evaluate("""() => [...document.querySelectorAll('#d-members button')]
        .map((b) => [b.dataset.value, +b.dataset.count])"""))
    assert set(shown) == set(domains)
    for name in (domains[0], domains[33], domains[180]):
        assert shown[name] == member_events(lines, src, name)
    assert sum(shown.values()) == page.evaluate("window.maltrail.stats.events")
    # every other DGA source asked for some of these domains
    assert f"{len(DGA_SOURCES) - 1} other threats sharing one of its trails" in page.inner_text("#drawer .kv")
    shot(page, "20-dga-members")
    target = domains[33]
    seq = int(page.evaluate("+document.body.dataset.viewSeq"))
    page.click(f"#d-members button[data-value='{target}']")
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.state.q") == f"src:{src} trail:{target}"
    assert page.evaluate("window.maltrail.stats.events") == member_events(lines, src, target)
    page.keyboard.press("Escape")
    search(page, "")


def test_a_trail_search_sorts_by_the_events_it_names(env):
    page, lines = env["page"], env["lines"]
    domains = dga_domains(random.Random(7))
    checked = 0
    for member in domains[:40]:
        holders = {parse_line(line).src_ip for line in lines if member in line}
        if len(holders) < 3:
            continue
        rows = search(page, f"trail:{member}")
        got = page.evaluate("""(n) => Array.from({ length: n }, (_, i) => window.maltrail.grid.rows.get(i))
            .map((r) => [r.src[0], r.matched ?? r.count])""", rows)
        want = sorted(((src, member_events(lines, src, member)) for src in holders), key=lambda x: -x[1])
        assert [n for _, n in got] == [n for _, n in want], member
        checked += 1
    assert checked >= 3
    search(page, "")


def download(page, fmt: str) -> str:
    with page.expect_download() as dl:
        page.click("#export-btn")
        page.click(f"#export-menu button[data-format={fmt}]")
    return open(dl.value.path(), encoding="utf-8").read()


def test_exports_list_every_member_trail(env):
    page, lines = env["page"], env["lines"]
    domains = dga_domains(random.Random(7))
    src = DGA_SOURCES[0]
    assert search(page, f"src:{src}") == 1
    rows = list(csv.reader(io.StringIO(download(page, "csv"))))
    trails = rows[1][rows[0].index("trails")].split(" ")
    assert sorted(trails) == sorted(domains)
    counts = [member_events(lines, src, name) for name in trails]
    assert counts == sorted(counts, reverse=True)          # the most events first
    data = json.loads(download(page, "json"))
    assert sorted(data[0]["trails"]) == sorted(domains) and data[0]["trail"] in domains
    ioc = [line.split("\t")[0] for line in download(page, "ioc").splitlines() if not line.startswith("#")]
    assert sorted(ioc) == sorted(name.replace(".", "[.]") for name in domains)
    search(page, "")


def test_condensed_scan_shows_all_ports_and_targets(env):
    page = env["page"]
    assert search(page, f"src:{SCANNER} info:scanning") == 1
    open_first_row(page)
    ports = page.evaluate("() => [...document.querySelectorAll('#d-ports button')].map((b) => b.dataset.value)")
    assert sorted(int(p) for p in ports) == SCAN_PORTS
    targets = page.evaluate("() => [...document.querySelectorAll('#d-targets button')].map((b) => b.dataset.value)")
    assert sorted(targets) == sorted(SCAN_TARGETS)
    page.keyboard.press("Escape")
    # ports and targets past the first hundred still find the scan
    assert search(page, f"port:{SCAN_PORTS[-1]}") == 1
    assert search(page, f"dst:{SCAN_TARGETS[-1]}") >= 1
    search(page, "")


def live_line(sec: float, src: str, trail: str, info: str) -> str:
    fields = ["gw", src, 5555, "198.51.100.9", 443, "TCP", "IP", trail, info, "(static)"]
    return f'"{format_time(int(sec), 0)}" ' + " ".join(safe_value(f) for f in fields)


def test_live_threats_are_marked_and_the_pill_shows_them(env):
    page, server = env["page"], env["server"]
    wait_loaded(page)
    total = page.evaluate("window.maltrail.grid.count")
    assert page.evaluate("window.maltrail.beeper.count") == 0
    page.click("#live")
    page.wait_for_function("() => /live: (sse|polling)/.test(document.querySelector('#status').textContent)", timeout=10000)
    now = time.time()
    fresh = [("10.98.0.1", "198.51.100.21"), ("10.98.0.2", "198.51.100.22")]
    server.send_udp([f"{int(now)} {live_line(now, src, trail, 'livegroup ransomware (malware)')}".encode()
                     for src, trail in fresh])
    page.wait_for_selector("#new-pill:not([hidden])", timeout=15000)
    page.wait_for_function("() => /2 new/.test(document.querySelector('#new-pill').textContent)", timeout=10000)
    page.wait_for_function("(n) => window.maltrail.grid.count === n + 2", arg=total, timeout=10000)
    assert page.evaluate("window.maltrail.beeper.count") == 0      # the beep is off by default
    seq = int(page.evaluate("+document.body.dataset.viewSeq"))
    page.click("#new-pill")
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.grid.count") == 2
    page.wait_for_function("() => document.querySelectorAll('#grid-rows .row').length === 2"
                           " && document.querySelectorAll('#grid-rows .row.fresh').length === 2")
    assert sorted(page.evaluate("() => [...document.querySelectorAll('#grid-rows .row')].map((r) => r.dataset.uid)")) \
        == sorted(page.evaluate("() => [...document.querySelectorAll('#grid-rows .row.fresh')].map((r) => r.dataset.uid)"))
    assert "only new" in page.inner_text("#new-pill")
    shot(page, "21-live-new")
    seq = int(page.evaluate("+document.body.dataset.viewSeq"))
    page.click("#new-pill")                # back to every threat, the new ones now seen
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.grid.count") == total + 2
    assert page.is_hidden("#new-pill")
    page.wait_for_function("() => document.querySelectorAll('#grid-rows .row').length > 2")    # repainted
    assert page.locator("#grid-rows .row.fresh").count() == 0
    # the alert beep, once switched on, sounds for the next new threat
    page.click("#beep")
    assert page.evaluate("window.maltrail.store.prefs.beep") is True
    now = time.time()
    server.send_udp([f"{int(now)} {live_line(now, '10.98.0.3', '198.51.100.23', 'livegroup ransomware (malware)')}".encode()])
    page.wait_for_function("() => window.maltrail.beeper.count === 1", timeout=15000)
    page.click("#beep")
    page.click("#live")
    wait_loaded(page)


def today_events(env) -> int:
    with open(day_path(env["log_dir"], TODAY.isoformat()), encoding="utf-8") as handle:
        return sum(1 for _ in handle)


def test_day_change_during_a_refresh_keeps_no_stale_answer(env):
    page = env["page"]
    load_hash(page, f"date={BIG_DAY.isoformat()}")
    big = page.evaluate("window.maltrail.grid.count")
    for _ in range(3):
        # a view of the big day is being computed when the day changes (URL hash)
        seq = load_seq(page)
        page.evaluate("(h) => { window.maltrail.refresh(false); location.hash = h; }", f"date={TODAY.isoformat()}")
        wait_new_load(page, seq)
        page.wait_for_timeout(300)
        small = page.evaluate("window.maltrail.grid.count")
        assert small < big
        assert page.evaluate("window.maltrail.stats.allEvents") == today_events(env)
        load_hash(page, f"date={BIG_DAY.isoformat()}")
    # while the big day is still loading, the calendar's neighbour button changes the day
    seq = load_seq(page)
    page.evaluate("(h) => { location.hash = h; }", f"date={BIG_DAY.isoformat()}&q=")
    page.wait_for_function("(s) => +document.body.dataset.loadSeq > s && window.maltrail.grid.count > 0", arg=seq)
    seq = load_seq(page)
    page.click("#day-next")
    wait_new_load(page, seq)
    page.wait_for_timeout(300)
    assert page.evaluate("window.maltrail.stats.allEvents") == today_events(env)
    assert env["errors"] == []
