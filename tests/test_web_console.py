"""Browser tests of the web client (html/) against the real server.py, driven by Playwright with
Debian's chromium: login, loading a generated day, each kind of search token, sorting, the
drawer, exports, day and range switching, live mode, escaping of hostile fields, logout.
Screenshots of the main views go to artifacts/screenshots/ (git-ignored).

Counts are checked against tests/web/reference.py, a separate Python statement of the
aggregation rules, over the very files the server serves.
"""

from __future__ import annotations

import csv
import datetime
import io
import ipaddress
import json
import os
import tempfile
import urllib.error
import urllib.request

import pytest

from core.events.observables import ObservableStore, meta_path
from tests.web import gen_day, reference
from tests.web.harness import (
    PASSWORD,
    browser_page,
    load_hash,
    load_seq,
    require_browser,
    search,
    shot,
    view_seq,
    wait_loaded,
    wait_new_load,
)

pytestmark = pytest.mark.browser
sync_api = require_browser()

TODAY = datetime.date.today()
YESTERDAY = TODAY - datetime.timedelta(days=1)
HOSTILE_DAY = TODAY - datetime.timedelta(days=2)


@pytest.fixture(scope="module")
def env():
    log_dir = tempfile.mkdtemp(prefix="mt-web-logs-")
    days = {
        TODAY.isoformat(): gen_day.day_lines(TODAY.isoformat(), 3000, seed=1),
        YESTERDAY.isoformat(): gen_day.day_lines(YESTERDAY.isoformat(), 1500, seed=2),
        HOSTILE_DAY.isoformat(): gen_day.hostile_lines(HOSTILE_DAY.isoformat()),
    }
    for day, lines in days.items():
        gen_day.write_day(log_dir, day, lines)
    store = ObservableStore(meta_path(log_dir))  # what the intake would have kept: the drawer's /meta row
    for lines in days.values():
        store.observe_lines(line.encode() for line in lines)
    store.close()
    trails = os.path.join(log_dir, "trails.csv")      # the drawer's /check lookups need a trail store
    with open(trails, "w", encoding="utf-8") as handle:
        handle.write("evil0.example,hostile test (malware),(static)\n")
    with browser_page(log_dir, extra={"TRAILS_FILE": trails}) as (page, server, errors, dialogs):
        yield {"page": page, "server": server, "days": days, "log_dir": log_dir, "errors": errors,
               "dialogs": dialogs, "ctx": page.context}


def visible_rows(page) -> list[dict]:
    return page.evaluate("""() => [...document.querySelectorAll('#grid-rows .row')]
        .sort((a, b) => a.dataset.index - b.dataset.index)
        .map((r) => ({uid: r.dataset.uid, cells: [...r.children].map((c) => c.textContent)}))""")


def test_login(env):
    page, server = env["page"], env["server"]
    page.goto(server.url)
    page.wait_for_selector("#login:not([hidden])")
    shot(page, "01-login")
    page.fill("#login-user", "admin")
    page.fill("#login-pass", "wrong-password")
    page.click("#login-submit")
    page.wait_for_function("() => document.querySelector('#login-error').textContent.length > 0")
    assert "failed" in page.inner_text("#login-error").lower()
    page.fill("#login-pass", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#login", state="hidden")
    wait_loaded(page)
    assert page.inner_text("#who") == "admin"
    assert page.is_visible("#logout")
    assert page.is_hidden("#banner")          # a non-default password: no warning


def test_day_loaded_and_aggregated(env):
    page = env["page"]
    lines = env["days"][TODAY.isoformat()]
    ref = reference.aggregate(lines)
    stats = page.evaluate("window.maltrail.stats")
    assert stats["allEvents"] == len(lines)
    assert stats["events"] == len(lines)
    assert stats["threats"] == len(ref)
    # with no filter every count on screen agrees with the grid: grouped members are not extra threats
    assert stats["allThreats"] == stats["threats"] == page.evaluate("window.maltrail.grid.count")
    assert page.inner_text("#c-threats-sub") == "distinct threats"
    assert stats["sev"] == [sum(1 for t in ref if t.sev == k) for k in range(3)]
    assert page.inner_text("#c-events") == f"{len(lines):,}"
    rows = visible_rows(page)
    assert rows and len(rows) < 80                      # virtual: only the visible window exists
    shot(page, "02-dashboard")


def test_hiding_says_how_many_it_removed(env):
    page = env["page"]
    uid = page.get_attribute("#grid-rows .row[data-index='0']", "data-uid")
    total = page.evaluate("window.maltrail.stats.allThreats")
    seq = page.evaluate("+document.body.dataset.viewSeq || 0")
    page.evaluate("(u) => { window.maltrail.store.toggleHidden(u); window.maltrail.localChanged(); }", uid)
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.stats.threats") == total - 1
    assert page.inner_text("#c-threats-sub") == f"of {total:,} threats (1 hidden)"
    seq = page.evaluate("+document.body.dataset.viewSeq || 0")
    page.evaluate("(u) => { window.maltrail.store.toggleHidden(u); window.maltrail.localChanged(); }", uid)
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.inner_text("#c-threats-sub") == "distinct threats"


REF_FILTERS = {
    "type:dns": lambda t: t.type == "DNS",
    "-type:dns": lambda t: t.type != "DNS",
    "type:url,ip": lambda t: t.type in ("URL", "IP"),
    "src:192.168.0.0/16": lambda t: any(ipaddress.ip_address(s) in ipaddress.ip_network("192.168.0.0/16") for s in t.src),
    "port:>1024": lambda t: any(p.isdigit() and int(p) > 1024 for p in t.dport),
    "port:20-25": lambda t: any(p.isdigit() and 20 <= int(p) <= 25 for p in t.dport),
    "count:>=10": lambda t: t.count >= 10,
    "trail:*.biz": lambda t: t.trail.lower().endswith(".biz"),
    'info:"port scanning"': lambda t: "port scanning" in t.info.lower(),
    "sev:low": lambda t: t.sev == 0,
    "type:dns OR type:url": lambda t: t.type in ("DNS", "URL"),
    "type:dns || sev:low": lambda t: t.type == "DNS" or t.sev == 0,
    "NOT type:dns AND count:<3": lambda t: t.type != "DNS" and t.count < 3,
    "(type:url OR type:dns) && !sev:high": lambda t: t.type in ("URL", "DNS") and t.sev != 2,
    "type:ip port:22,23 count:>1": lambda t: t.type == "IP" and bool({"22", "23"} & t.dport) and t.count > 1,
}


@pytest.mark.parametrize("query", list(REF_FILTERS))
def test_search_tokens(env, query):
    page = env["page"]
    ref = reference.aggregate(env["days"][TODAY.isoformat()])
    expected = sum(1 for t in ref if REF_FILTERS[query](t))
    assert search(page, query) == expected, query
    assert page.evaluate("location.hash").find("q=") > 0


def test_search_errors_and_chips(env):
    page = env["page"]
    seq = view_seq(page)
    page.fill("#q", "(type:dns")
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelector('.searchbox').classList.contains('bad')")
    assert "missing )" in page.inner_text("#status")
    # no stale results under a parse error: the grid empties until the query parses again
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s", arg=seq)
    assert page.evaluate("window.maltrail.grid.count") == 0
    n = search(page, "type:dns port:53")
    chips = page.eval_on_selector_all("#chips .chip span", "els => els.map(e => e.textContent)")
    assert chips == ["type:dns", "port:53"]
    seq = view_seq(page)
    page.click("#chips .chip:nth-child(2) button")
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.state.q") == "type:dns"
    assert page.evaluate("window.maltrail.grid.count") >= n
    shot(page, "03-search")
    search(page, "")


def test_sort_arrow_follows_the_url_hash(env):
    page = env["page"]
    load_hash(page, f"date={TODAY.isoformat()}&sort=count&dir=asc")
    head = page.eval_on_selector("#grid-head .sorted", "e => e.textContent")
    assert head.endswith("▲"), head
    load_hash(page, f"date={TODAY.isoformat()}")
    assert page.eval_on_selector("#grid-head .sorted", "e => e.textContent").endswith("▼")


def test_sort_by_events(env):
    page = env["page"]
    seq = view_seq(page)
    page.click("#grid-head span[data-key=count]")
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    page.wait_for_function("() => document.querySelectorAll('#grid-rows .row').length > 5")
    counts = [int(r["cells"][2].rstrip("×").replace(",", "")) for r in visible_rows(page)]
    assert counts == sorted(counts, reverse=True)
    ref = reference.aggregate(env["days"][TODAY.isoformat()])
    assert counts[0] == max(t.count for t in ref)
    seq = view_seq(page)
    page.click("#grid-head span[data-key=count]")
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    page.wait_for_function("() => document.querySelectorAll('#grid-rows .row').length > 5")
    page.wait_for_timeout(100)
    counts = [int(r["cells"][2].rstrip("×").replace(",", "")) for r in visible_rows(page)]
    assert counts == sorted(counts)
    assert "sort=count" in page.evaluate("location.hash") and "dir=asc" in page.evaluate("location.hash")
    # virtual scrolling reaches the last row
    page.eval_on_selector("#grid-body", "b => { b.scrollTop = b.scrollHeight; }")
    total = page.evaluate("window.maltrail.grid.count")
    page.wait_for_function("(n) => [...document.querySelectorAll('#grid-rows .row')].some(r => +r.dataset.index === n - 1)", arg=total)
    page.click("#grid-head span[data-key=sev]")
    wait_loaded(page)


def test_open_threat_drawer(env):
    page = env["page"]
    page.eval_on_selector("#grid-body", "b => { b.scrollTop = 0; }")
    page.wait_for_function("() => [...document.querySelectorAll('#grid-rows .row')].some(r => r.dataset.index === '0')")
    first = page.query_selector("#grid-rows .row[data-index='0']")
    uid = first.get_attribute("data-uid")
    count = int(first.query_selector(".cnt").inner_text().rstrip("×").replace(",", ""))
    first.click()
    page.wait_for_selector("#drawer:not([hidden]) table tbody tr")
    assert uid in page.inner_text("#drawer .dhead")
    assert page.eval_on_selector_all("#drawer tbody tr", "r => r.length") == min(count, 500)
    # every event row names its own trail; triage and quick actions come before the value chips
    heads = page.eval_on_selector_all("#drawer thead th", "hs => hs.map((h) => h.textContent)")
    trail = page.eval_on_selector("#drawer .kv", "kv => kv.children[1].textContent")
    cells = page.eval_on_selector_all("#drawer tbody tr", f"rs => rs.map((r) => r.children[{heads.index('trail')}].textContent)")
    assert all(cells) and trail in cells  # a grouped threat lists each member's trail
    titles = page.eval_on_selector_all("#drawer h3", "hs => hs.map((h) => h.textContent.split(' ')[0])")
    assert titles.index("Triage") < titles.index("Sources")
    # a drawer scrolled down and then given another threat opens at its top
    page.eval_on_selector("#drawer", "d => { d.scrollTop = d.scrollHeight; }")
    assert page.eval_on_selector("#drawer", "d => d.scrollTop") > 0
    second = page.query_selector("#grid-rows .row[data-index='1']")
    second.click()
    page.wait_for_function("(u) => !document.querySelector('#drawer .dhead').textContent.includes(u)", arg=uid)
    assert page.eval_on_selector("#drawer", "d => d.scrollTop") == 0
    first.click()
    page.wait_for_function("(u) => document.querySelector('#drawer .dhead').textContent.includes(u)", arg=uid)
    page.click("#drawer .triage button[data-status=investigating]")
    page.fill("#d-tags", "case-42, beacon")
    page.press("#d-tags", "Tab")
    page.eval_on_selector("#drawer", "d => { d.scrollTop = 0; }")      # the shot shows the drawer's head
    page.wait_for_selector("#d-check[data-state]")
    page.wait_for_selector("#d-meta[data-state]")
    assert page.get_attribute("#d-meta", "data-state") == "found", page.inner_text("#d-meta")
    assert TODAY.isoformat()[:4] in page.inner_text("#d-meta") and "events" in page.inner_text("#d-meta")
    shot(page, "04-drawer")
    page.keyboard.press("Escape")
    page.wait_for_selector("#drawer", state="hidden")
    assert search(page, "tag:case-42") == 1
    assert search(page, "status:investigating") == 1
    search(page, "")


def test_keyboard_and_chart_filter(env):
    page = env["page"]
    page.focus("#grid")
    before = page.evaluate("window.maltrail.grid.selected")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("window.maltrail.grid.selected") == before + 1
    page.keyboard.press("Enter")
    page.wait_for_selector("#drawer:not([hidden])")
    page.keyboard.press("Escape")
    page.click(".card[data-chart=severity]")
    page.wait_for_selector("#chart-panel:not([hidden])")
    shot(page, "05-chart-severity")
    seq = view_seq(page)
    box = page.query_selector("#chart").bounding_box()
    page.mouse.click(box["x"] + 20, box["y"] + 110)        # the first (high) segment of the bar
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.state.q") == "sev:high"
    page.click(".card[data-chart=events]")
    page.wait_for_timeout(100)
    shot(page, "06-chart-events")
    page.click("#chart-close")
    search(page, "")


def test_export(env):
    page = env["page"]
    n = search(page, "type:url")
    with page.expect_download() as dl:
        page.click("#export-btn")
        page.click("#export-menu button[data-format=csv]")
    text = open(dl.value.path(), encoding="utf-8").read()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["uid", "severity", "events"]
    assert len(rows) - 1 == n
    assert all(r[rows[0].index("type")] == "URL" for r in rows[1:])
    with page.expect_download() as dl:
        page.click("#export-btn")
        page.click("#export-menu button[data-format=json]")
    data = json.load(open(dl.value.path(), encoding="utf-8"))
    assert len(data) == n and sum(d["events"] for d in data) == page.evaluate("window.maltrail.stats.events")
    with page.expect_download() as dl:
        page.click("#export-btn")
        page.click("#export-menu button[data-format=ioc]")
    ioc = open(dl.value.path(), encoding="utf-8").read()
    body = [line for line in ioc.splitlines() if not line.startswith("#")]
    assert body and all("." not in line.split("\t")[0].replace("[.]", "") for line in body)       # defanged
    assert "[.]" in body[0]
    search(page, "")


def test_switch_days_and_ranges(env):
    page = env["page"]
    days = env["days"]
    seq = load_seq(page)
    page.click("#day-prev")
    wait_new_load(page, seq)
    assert page.evaluate("window.maltrail.stats.allEvents") == len(days[YESTERDAY.isoformat()])
    assert f"date={YESTERDAY.isoformat()}" in page.evaluate("location.hash")
    page.click("#day-face")
    page.wait_for_selector("#calendar:not([hidden]) .day.b5, #calendar:not([hidden]) .day.b4")
    shot(page, "07-calendar")
    seq = load_seq(page)
    page.click(f"#calendar .day[data-day='{TODAY.isoformat()}']")
    wait_new_load(page, seq)
    assert page.evaluate("window.maltrail.stats.allEvents") == len(days[TODAY.isoformat()])
    load_hash(page, f"from={HOSTILE_DAY.isoformat()}&to={TODAY.isoformat()}")
    total = sum(len(v) for v in days.values())
    assert page.evaluate("window.maltrail.stats.allEvents") == total
    assert "3 days" in page.inner_text("#day-sub")
    shot(page, "08-range")
    load_hash(page, f"date={TODAY.isoformat()}")


def test_hostile_fields_are_inert(env):
    page = env["page"]
    load_hash(page, f"date={HOSTILE_DAY.isoformat()}")
    assert page.evaluate("window.maltrail.stats.allEvents") == len(env["days"][HOSTILE_DAY.isoformat()])
    page.wait_for_function("() => document.querySelectorAll('#grid-rows .row').length > 3")
    page.click("#grid-rows .row[data-index='0']")
    page.wait_for_selector("#drawer:not([hidden]) table tbody tr")
    page.click("#grid-head span[data-key=trail]", force=True) if page.is_hidden("#drawer") else page.keyboard.press("Escape")
    shot(page, "09-hostile")
    assert page.evaluate("window.__pwned") is None
    assert env["dialogs"] == []
    assert page.evaluate("document.querySelectorAll('main img, main script, main svg:not(.ticon), #drawer img, #drawer a[href^=javascript]').length") == 0
    # the only SVG is the console's own class icon (addrinfo.js), one known path per class
    assert set(page.evaluate("[...document.querySelectorAll('main svg.ticon')].map((s) => s.dataset.cls + ':' + s.children.length)")) <= {
        f"{c}:2" for c in ("dns", "ip", "url", "ua", "cert", "ja3", "port", "heuristic")}
    grid_text = page.inner_text("#grid-rows")
    assert "<script>window.__pwned=1</script>" in grid_text           # shown literally
    with page.expect_download() as dl:
        page.click("#export-btn")
        page.click("#export-menu button[data-format=csv]")
    rows = list(csv.reader(io.StringIO(open(dl.value.path(), encoding="utf-8").read())))
    for row in rows[1:]:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r", "|"), cell
    assert any(cell.startswith("'=cmd|") for row in rows for cell in row)
    load_hash(page, f"date={TODAY.isoformat()}")


def test_live_mode_receives_new_event(env):
    page = env["page"]
    wait_loaded(page)
    before = page.evaluate("window.maltrail.stats.allEvents")
    page.click("#live")
    page.wait_for_function("() => /live: (sse|polling)/.test(document.querySelector('#status').textContent)", timeout=10000)
    # a new threat written the way the sensor appends: one complete line at the end of today's file
    line = gen_day._line(0, "gw", "10.99.99.99", 5555, "198.51.100.7", 443, "TCP", "IP", "198.51.100.7",
                         "livetest ransomware (malware)", "(static)")
    line = f'"{TODAY.isoformat()} 23:59:59.000001"' + line[line.index('"', 1) + 1:]
    with open(os.path.join(env["log_dir"], TODAY.isoformat() + ".log"), "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    page.wait_for_selector("#new-pill:not([hidden])", timeout=15000)
    assert "1 new" in page.inner_text("#new-pill")
    page.wait_for_function("(b) => window.maltrail.stats.allEvents === b + 1", arg=before, timeout=5000)
    assert search(page, "src:10.99.99.99") == 1
    assert "livetest ransomware" in page.inner_text("#grid-rows")
    shot(page, "10-live")
    page.click("#live")
    search(page, "")


def test_theme_and_saved_view(env):
    page = env["page"]
    page.click("#theme")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    shot(page, "11-light")
    page.click("#theme")
    search(page, "type:dns")
    page.click("#views-btn")
    page.fill("#modal-box input", "dns only")
    page.click("#modal-box button:has-text('save current')")
    assert "dns only" in page.evaluate("localStorage.getItem('mt_views')")
    page.keyboard.press("Escape")
    search(page, "")


def test_no_foreign_requests_or_errors(env):
    # the one 401 is the deliberate wrong-password login of test_login
    assert [e for e in env["errors"] if "status of 401" not in e] == []


def test_logout(env):
    page, server = env["page"], env["server"]
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])", timeout=10000)
    cookies = env["ctx"].cookies(server.url)
    req = urllib.request.Request(server.url + "events?date=" + TODAY.isoformat(),
                                 headers={"Cookie": "; ".join(f"{c['name']}={c['value']}" for c in cookies)})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 401
