"""Browser tests against the real server.py (Playwright, Debian chromium) of what the console shows
about places: country flags, ASNs and local address data beside addresses (html/js/addrinfo.js),
with DISABLE_RIPE_LOOKUPS honoured (no /ripe request at all unless the server asks RIPEstat); a
class icon per threat type; and the world map (html/js/worldmap.js): Natural Earth outlines,
shading by the events of the view per country, `country:XX` on a click, and the note when the
server has no country table.

The day is generated with known places: the server's country table (ip2cc.csv.gz beside the
trails file) puts 3/8 in US, 5/8 in DE, 193/8 in NL and 43/8 in SG, so the expected events per
country are known. RIPEstat is the local stand-in of tests/test_ripe.py.
"""

from __future__ import annotations

import calendar
import datetime
import ipaddress
import os
import tempfile

import pytest

from core.update.geo import event_country, write_table
from tests.kit.server import tree_copy
from tests.test_ripe import Upstream
from tests.web import gen_day
from tests.web.harness import browser_page, login, require_browser, search, shot

pytestmark = pytest.mark.browser
sync_api = require_browser()

TODAY = datetime.date.today().isoformat()
TABLE = {"3.0.0.0/8": "US", "5.0.0.0/8": "DE", "193.0.0.0/8": "NL", "43.0.0.0/8": "SG"}
# (trail, type, destination, events, info, reference): one source each, so one threat each
THREATS = [
    ("3.1.1.1", "IP", "3.1.1.1", 30, "emotet (malware)", "feodotracker"),
    ("5.135.1.1", "IP", "5.135.1.1", 10, "mass scanner", "(static)"),
    ("bad.example/x.php", "URL", "5.2.2.2", 5, "potential malware site", "urlhaus"),
    ("193.0.6.139", "IP", "193.0.6.139", 3, "known attacker", "(static)"),
    ("43.0.0.7", "IP", "43.0.0.7", 2, "spammer", "(static)"),
    ("evil.example", "DNS", "8.8.8.8", 7, "bazarloader (malware)", "(static)"),
    ("10.9.9.9", "IP", "10.9.9.9", 4, "potential port scanning", "(heuristic)"),
]
EXPECTED = {"US": 30, "DE": 15, "NL": 3, "SG": 2}


def day_dir() -> str:
    log_dir = tempfile.mkdtemp(prefix="mt-webgeo-logs-")
    base = calendar.timegm(datetime.date.today().timetuple()) + 3600
    lines = []
    for k, (trail, typ, dst, n, info, ref) in enumerate(THREATS):
        for i in range(n):
            lines.append(gen_day._line(base + k * 60 + i, "gw", f"10.7.0.{k + 1}", 40000 + i, dst, 80, "TCP", typ,
                                       trail, info, ref))
    lines.sort(key=lambda line: line[1:27])
    gen_day.write_day(log_dir, TODAY, lines)
    return log_dir


def trails_dir(table: bool) -> str:
    folder = tempfile.mkdtemp(prefix="mt-webgeo-trails-")
    with open(os.path.join(folder, "trails.csv"), "w") as handle:
        handle.write("evil.example,malware,(static)\n")
    if table:
        rows = []
        for cidr, cc in TABLE.items():
            net = ipaddress.ip_network(cidr)
            rows.append((4, int(net.network_address), int(net.broadcast_address), cc))
        write_table(os.path.join(folder, "ip2cc.csv.gz"), sorted(rows))
    return folder


def open_console(table: bool = True, extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """The console over the test's day; `table` false: no country table at all, neither beside the
    trails nor bundled (server.py runs from a copy of the tree without data/ip2cc.csv.gz)."""
    trails = trails_dir(table)
    conf = {"TRAILS_FILE": os.path.join(trails, "trails.csv"), **(extra or {})}
    if table:
        return browser_page(day_dir(), extra=conf, cleanup=(trails,))
    tree = tree_copy(without=(os.path.join("data", "ip2cc.csv.gz"),))
    return browser_page(day_dir(), extra=conf, cleanup=(trails, tree), root=tree)


def watch_ripe(page) -> list[str]:  # type: ignore[no-untyped-def]
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/ripe?" in r.url else None)
    return asked


BADGES = """() => [...document.querySelectorAll('#grid-rows .row')].map((row) => {
  const cells = row.children, badge = cells[6].querySelector('.abadge');
  return { dst: cells[6].textContent, trail: cells[10].textContent, icon: cells[9].querySelector('.ticon').dataset.cls,
    cc: badge && badge.querySelector('.flag') ? badge.querySelector('.flag').dataset.cc : '',
    asn: badge && badge.querySelector('.asn') ? badge.querySelector('.asn').textContent : '',
    worst: !!(badge && badge.querySelector('.worst')) };
})"""


def badges(page) -> dict[str, dict]:
    page.wait_for_function("() => document.querySelectorAll('#grid-rows .abadge[data-state=asking]').length === 0")
    return {b["trail"]: b for b in page.evaluate(BADGES)}


@pytest.fixture()
def console():   # one browser at a time: Playwright's sync API does not nest
    with open_console() as (pg, server, errors, _dialogs):
        asked = watch_ripe(pg)
        pg.goto(server.url)
        login(pg)
        pg.errors = errors
        pg.asked = asked
        yield pg


def test_flags_icons_and_local_fallback_without_ripe(console):
    page = console
    assert page.get_attribute('meta[name="mt-ripe"]', "content") == "0"
    page.wait_for_function("() => document.querySelectorAll('#grid-rows .row').length === 7")
    got = badges(page)
    assert got["3.1.1.1"]["cc"] == "US" and got["3.1.1.1"]["asn"] == "Amazon AWS"   # ipcat: the local fallback
    assert got["5.135.1.1"]["cc"] == "DE" and got["5.135.1.1"]["worst"]
    assert got["bad.example/x.php"]["cc"] == "DE"
    assert got["193.0.6.139"]["cc"] == "NL" and got["193.0.6.139"]["asn"] == ""      # no RIPEstat: no ASN
    assert got["evil.example"]["cc"] == ""                                          # 8.8.8.8: not in the table
    assert got["10.9.9.9"]["cc"] == ""                                              # private: no badge
    icons = {t: b["icon"] for t, b in got.items()}
    assert icons == {"3.1.1.1": "ip", "5.135.1.1": "ip", "bad.example/x.php": "url", "193.0.6.139": "ip",
                     "43.0.0.7": "ip", "evil.example": "dns", "10.9.9.9": "heuristic"}
    flag = page.evaluate("document.querySelector('#grid-rows .flag').textContent")
    assert flag in ("\U0001F1FA\U0001F1F8", "US", "\U0001F1E9\U0001F1EA", "DE", "\U0001F1F3\U0001F1F1", "NL",
                    "\U0001F1F8\U0001F1EC", "SG")
    page.click("#grid-rows .row >> text=3.1.1.1")
    page.wait_for_selector("#drawer:not([hidden]) .abadge .flag")
    assert page.evaluate("document.querySelector('#drawer .dhead .ticon').dataset.cls") == "ip"
    shot(page, "31-flags-no-ripe")
    page.keyboard.press("Escape")
    assert page.asked == []          # DISABLE_RIPE_LOOKUPS (the default): the client never asks
    assert not page.errors


PLACES = [("IP", "2.2.2.2", "10.0.0.1", "5.5.5.5"), ("IPORT", "2.2.2.2:80", "10.0.0.1", "5.5.5.5"),
          ("DNS", "evil.com", "10.0.0.1", "5.5.5.5"), ("PATH", "/shell.php", "8.8.8.8", "10.0.0.1"),
          ("PORT", "4444", "8.8.8.8", "10.0.0.1"), ("URL", "evil.com/x", "10.0.0.1", "5.5.5.5"),
          ("URL", "http://1.2.3.4/x", "10.0.0.1", "5.5.5.5"), ("URL", "evil.com/1.2.3.4.5", "10.0.0.1", "-"),
          ("UA", "curl/7.1", "10.0.0.1", "-"), ("IP", "2001:db8::1", "10.0.0.1", "2001:db8::1"),
          ("HTTP", "a1.2.3.4", "10.0.0.1", "6.6.6.6")]


def test_placed_address_is_the_servers_rule(console):
    """query.js placedAddress (map, country:) places a threat as core/update/geo.py places an event."""
    got = console.evaluate("async (cases) => { const q = await import('/js/query.js');"
                           " return cases.map((c) => q.placedAddress(...c)); }", PLACES)
    assert got == [event_country(*c) or "" for c in PLACES]


def test_world_map_outlines_shading_and_click(console):
    page = console
    seq = int(page.evaluate("+document.body.dataset.worldSeq || 0"))
    page.click("#world")
    page.wait_for_function("(s) => +document.body.dataset.worldSeq > s", arg=seq)
    view = page.evaluate("""() => { const h = window.maltrail.worldHits;
      return { shapes: h.shapes.length, coded: h.shapes.filter((s) => s.cc).length, dots: h.dots.map((d) => d.cc),
               counts: window.maltrail.worldView.counts, table: window.maltrail.worldView.table,
               mapped: window.maltrail.worldView.mapped, unmapped: window.maltrail.worldView.unmapped,
               shaded: Object.fromEntries(h.shapes.filter((s) => s.n).map((s) => [s.cc, s.n])) }; }""")
    assert view["shapes"] >= 170 and view["coded"] >= 170           # Natural Earth 110m, Antarctica left out
    assert view["counts"] == EXPECTED and view["table"] is True
    assert view["shaded"] == {"US": 30, "DE": 15, "NL": 3}           # SG has no 110m outline: a dot
    assert view["dots"] == ["SG"]
    assert view["mapped"] == 50 and view["unmapped"] == 11
    red = page.evaluate("""(ccs) => { const c = document.querySelector('#worldmap'), ctx = c.getContext('2d');
      const dpr = c.width / c.clientWidth, h = window.maltrail.worldHits;
      return ccs.map((cc) => { const s = h.shapes.find((x) => x.cc === cc);
        const p = ctx.getImageData(Math.round(s.c[0] * dpr), Math.round(s.c[1] * dpr), 1, 1).data; return p[0] - p[1]; }); }""",
                        ["US", "DE", "NL", "BR"])
    assert red[0] > red[1] > red[2] > red[3], red                   # shade follows the counts; BR has none
    shot(page, "32-world-map")
    # the map follows the search: only the URL threat left -> only DE, with its 5 events
    search(page, "type:URL")
    page.wait_for_function("() => window.maltrail.worldView && window.maltrail.worldView.mapped === 5")
    assert page.evaluate("window.maltrail.worldView.counts") == {"DE": 5}
    search(page, "")
    page.wait_for_function("() => window.maltrail.worldView.mapped === 50")
    # a click on the United States filters the grid to the threats placed there
    seq = int(page.evaluate("+document.body.dataset.viewSeq || 0"))
    x, y = page.evaluate("window.maltrail.worldHits.shapes.find((s) => s.cc === 'US').c")
    page.click("#worldmap", position={"x": x, "y": y})
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.state.q") == "country:US"
    assert page.evaluate("window.maltrail.grid.count") == 1
    assert search(page, "country:DE") == 2
    assert search(page, "country:de,nl") == 3
    assert search(page, "-country:DE") == 5
    search(page, "")
    page.click("#world-close")
    assert not page.errors


def test_asn_beside_addresses_when_ripe_lookups_are_on():
    upstream = Upstream()
    try:
        extra = {"DISABLE_RIPE_LOOKUPS": "false", "RIPESTAT_URL": upstream.url}
        with open_console(extra=extra) as (page, server, errors, _dialogs):
            asked = watch_ripe(page)
            page.goto(server.url)
            login(page)
            assert page.get_attribute('meta[name="mt-ripe"]', "content") == "1"
            page.wait_for_function("""() => [...document.querySelectorAll('#grid-rows .asn')]
              .some((a) => a.textContent === 'AS3333')""")
            got = badges(page)
            assert got["193.0.6.139"]["asn"] == "AS3333" and got["193.0.6.139"]["cc"] == "NL"
            assert got["3.1.1.1"]["asn"] == "Amazon AWS"     # RIPEstat has no answer: the local fallback
            assert any("address=193.0.6.139" in url for url in asked)
            assert not any("address=10." in url for url in asked)   # private addresses are never asked
            shot(page, "33-asn-ripe")
            assert not errors
    finally:
        upstream.close()


def test_map_says_how_to_get_a_missing_country_table():
    with open_console(table=False) as (page, server, errors, _dialogs):
        page.goto(server.url)
        login(page)
        page.click("#world")
        page.wait_for_function("() => +document.body.dataset.worldSeq > 0")
        note = page.text_content("#world-note")
        assert "no country table" in note and "python3 -m core.update" in note
        assert page.evaluate("window.maltrail.worldView.table") is False
        assert page.evaluate("window.maltrail.worldView.mapped") == 0
        assert page.evaluate("window.maltrail.worldHits.shapes.length") >= 170   # the outlines still draw
        assert not errors
