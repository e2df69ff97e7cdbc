"""Browser tests of the console's server-backed features against the real server.py (Playwright,
Debian chromium): the retro-hunt dialog (/hunt: per-day counts, escaped samples, truncated and
partial states, opening a day), the drawer's trail lookups (/reference and /check: escaped values,
links only for http(s), quiet failures) and multi-day time charts (per hour of a short range, per
day of a long one; a single day keeps the 24-hour view), all checked against the log files.
"""

from __future__ import annotations

import calendar
import datetime
import os
import tempfile
import time

import pytest

from tests.web import gen_day
from tests.web.harness import (
    ROOT,
    browser_page,
    load_hash,
    login,
    require_browser,
    search,
    shot,
    wait_loaded,
)

pytestmark = pytest.mark.browser
sync_api = require_browser()

TODAY = datetime.date.today()
DAYS = [TODAY - datetime.timedelta(days=k) for k in (0, 1, 2, 5, 9)]
BIG_DAY = TODAY - datetime.timedelta(days=40)      # big enough to run out the hunt time budget
WANNACRY = "iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com"   # listed in trails/static/malware/wannacry.txt
HOSTILE_TRAIL = "evil-ref.example"
HOSTILE_REF = "javascript:alert(document.domain)"
HOSTILE_INFO = "<img src=x onerror=alert(1)> dropper"
MARK = "<b>zqhunt</b>"


def _base(day: datetime.date) -> int:
    return calendar.timegm(day.timetuple())


def _extra_lines(day: datetime.date, k: int) -> list[str]:
    """Marker lines for the hunt (k of them) and, on DAYS[1], the two lookup threats."""
    base = _base(day) + 5 * 3600
    out = [gen_day._line(base + i * 7, "gw", f"10.9.9.{i + 1}", 5000 + i, "198.51.100.7", 80, "TCP", "HTTP",
                         "198.51.100.7/x", f"{MARK} beacon", "(static)") for i in range(k)]
    if day == DAYS[1]:
        out.append(gen_day._line(base + 60, "gw", "10.1.1.1", 53111, "10.0.0.53", 53, "UDP", "DNS", WANNACRY,
                                 "wannacry (malware)", "(static)"))
        out.append(gen_day._line(base + 90, "gw", "10.1.1.2", 40000, "203.0.113.9", 443, "TCP", "DNS", HOSTILE_TRAIL,
                                 HOSTILE_INFO, "(static)"))
    return out


@pytest.fixture(scope="module")
def env():
    log_dir = tempfile.mkdtemp(prefix="mt-webf-logs-")
    work = tempfile.mkdtemp(prefix="mt-webf-")
    marks = {DAYS[0]: 3, DAYS[1]: 0, DAYS[2]: 250, DAYS[3]: 2, DAYS[4]: 0}
    files: dict[str, list[str]] = {}
    for i, day in enumerate(DAYS):
        lines = gen_day.day_lines(day.isoformat(), 400, seed=10 + i) + _extra_lines(day, marks[day])
        lines.sort(key=lambda line: line[1:27])
        files[day.isoformat()] = lines
        gen_day.write_day(log_dir, day.isoformat(), lines)
    one = gen_day.day_lines(BIG_DAY.isoformat(), 1, seed=3)[0]
    with open(os.path.join(log_dir, BIG_DAY.isoformat() + ".log"), "w", encoding="utf-8") as handle:
        handle.write((one + "\n") * 400_000)
    trails = os.path.join(work, "trails.csv")
    with open(trails, "w", encoding="utf-8") as handle:
        handle.write(f"{WANNACRY},wannacry (malware),https://example.org/feeds/wannacry?a=1&b=<2>\n")
        handle.write(f'{HOSTILE_TRAIL},"{HOSTILE_INFO}",{HOSTILE_REF}\n')
    with browser_page(log_dir, cleanup=(work,), console_errors=False,
                      extra={"TRAILS_FILE": trails, "HUNT_TIME_BUDGET": "0.1"}) as (page, server, errors, dialogs):
        page.goto(server.url)
        login(page)
        yield {"page": page, "server": server, "files": files, "trails": trails, "errors": errors,
               "dialogs": dialogs}


def line_time(line: str) -> int:
    return calendar.timegm(time.strptime(line[1:20], "%Y-%m-%d %H:%M:%S"))


def expected_buckets(files: dict[str, list[str]], first: datetime.date, last: datetime.date, step: int) -> list[int]:
    base = _base(first)
    bins = ((last - first).days + 1) * 86400 // step
    out = [0] * bins
    for day, lines in files.items():
        if first.isoformat() <= day <= last.isoformat():
            for line in lines:
                out[min(bins - 1, max(0, (line_time(line) - base) // step))] += 1
    return out


# -- retro-hunt ---------------------------------------------------------------------------------------


def open_hunt(page, q: str, first: datetime.date, last: datetime.date) -> None:
    page.click("#q-hunt")
    page.wait_for_selector("#modal:not([hidden]) #hunt-q")
    page.fill("#hunt-q", q)
    page.fill("#hunt-from", first.isoformat())
    page.fill("#hunt-to", last.isoformat())
    page.click("#hunt-go")
    page.wait_for_selector("#hunt-out[data-state=done], #hunt-out[data-state=error]", timeout=15000)


def test_hunt_counts_samples_and_states(env):
    page, files = env["page"], env["files"]
    open_hunt(page, "zqhunt", DAYS[4], TODAY)
    assert page.get_attribute("#hunt-out", "data-state") == "done"
    days = page.eval_on_selector_all(".hunt-day", "bs => bs.map(b => [b.dataset.day, b.querySelector('.hn').textContent])")
    want = {d: sum("zqhunt" in line for line in lines) for d, lines in files.items()}
    assert days == sorted(([d, f"{n:,}"] for d, n in want.items() if n), reverse=True)
    # 255 matches: the server keeps 200 samples and says so; the dialog shows that state
    assert page.eval_on_selector_all(".hunt-samples .sample", "s => s.length") == 200
    assert page.is_visible(".hunt-flag.truncated") and not page.query_selector(".hunt-flag.partial")
    # sample lines are text: the markup in them is shown, never parsed
    assert MARK in page.inner_text(".hunt-samples .sample .sl")
    assert page.eval_on_selector_all(".hunt-samples b, .hunt-samples img", "n => n.length") == 0
    shot(page, "12-hunt")
    # a day button opens that day
    seq = int(page.evaluate("+document.body.dataset.loadSeq || 0"))
    page.click(f".hunt-day[data-day='{DAYS[3].isoformat()}']")
    page.wait_for_function("(s) => +document.body.dataset.loadSeq > s", arg=seq)
    wait_loaded(page)
    assert page.is_hidden("#modal")
    assert page.evaluate("[window.maltrail.state.from, window.maltrail.state.to]") == [DAYS[3].isoformat()] * 2
    assert page.evaluate("window.maltrail.stats.allEvents") == len(files[DAYS[3].isoformat()])


def test_hunt_partial_and_errors(env):
    page = env["page"]
    # a hunt that reaches the big day runs out of the (0.1 s) budget: partial, with the newer days' counts
    open_hunt(page, "beacon", BIG_DAY, TODAY)
    assert page.is_visible(".hunt-flag.partial")
    assert page.eval_on_selector_all(".hunt-day", "b => b.length") >= 3
    page.fill("#hunt-q", "ab")
    page.click("#hunt-go")
    page.wait_for_selector("#hunt-out .error")
    page.keyboard.press("Escape")
    page.wait_for_selector("#modal", state="hidden")
    assert env["dialogs"] == []


# -- drawer lookups -----------------------------------------------------------------------------------


def open_first_threat(page) -> None:
    page.eval_on_selector("#grid-body", "b => { b.scrollTop = 0; }")
    page.wait_for_selector("#grid-rows .row[data-index='0']")
    page.click("#grid-rows .row[data-index='0']")
    page.wait_for_selector("#drawer:not([hidden]) .lookups")


def test_drawer_lookups(env):
    page = env["page"]
    load_hash(page, f"date={DAYS[1].isoformat()}")
    assert search(page, f"trail:{WANNACRY}") == 1
    open_first_threat(page)
    page.wait_for_selector("#d-ref[data-state=found]")
    page.wait_for_selector("#d-check[data-state=found]")
    links = page.eval_on_selector_all("#d-ref a", "as => as.map(a => [a.href, a.rel, a.target])")
    with open(os.path.join(ROOT, "trails", "static", "malware", "wannacry.txt"), encoding="utf-8") as handle:
        above = handle.read().split(WANNACRY)[0]
    nearest = [ln.split(":", 1)[1].strip() for ln in above.splitlines() if ln.startswith("# Reference:")][-1]
    assert links == [[nearest, "noopener noreferrer", "_blank"]]
    assert "wannacry.txt" in page.inner_text("#d-ref")
    check_text = page.inner_text("#d-check")
    assert WANNACRY in check_text and "https://example.org/feeds/wannacry?a=1&b=<2>" in check_text
    assert page.eval_on_selector("#d-check a", "a => [a.protocol, a.rel]") == ["https:", "noopener noreferrer"]
    shot(page, "13-drawer-lookups")
    page.keyboard.press("Escape")

    # a hostile store entry: script URL and markup stay text, and no link is made
    assert search(page, f"trail:{HOSTILE_TRAIL}") == 1
    open_first_threat(page)
    page.wait_for_selector("#d-check[data-state=found]")
    page.wait_for_selector("#d-ref[data-state=missing]")
    text = page.inner_text("#d-check")
    assert HOSTILE_REF in text and HOSTILE_INFO in text
    assert page.eval_on_selector_all("#d-check a, #drawer img", "n => n.length") == 0
    page.keyboard.press("Escape")

    # the trail store goes away: the drawer says so quietly (no dialog, no page error)
    os.rename(env["trails"], env["trails"] + ".away")
    try:
        assert search(page, "") > 2
        assert search(page, "-trail:" + WANNACRY + " -trail:" + HOSTILE_TRAIL) > 0
        open_first_threat(page)
        page.wait_for_selector("#d-check[data-state=failed]")
        assert "unavailable" in page.inner_text("#d-check")
        page.wait_for_selector("#d-ref[data-state=missing], #d-ref[data-state=found]")
    finally:
        os.rename(env["trails"] + ".away", env["trails"])
    page.keyboard.press("Escape")
    search(page, "")
    assert env["dialogs"] == [] and env["errors"] == []


# -- time charts over ranges ----------------------------------------------------------------------------


def chart_grid(page) -> dict:
    return page.evaluate("""() => { const s = window.maltrail.stats;
        return {grid: s.grid, hourly: s.hourly, typeLens: s.types.map(t => t.hist.length)}; }""")


def test_single_day_keeps_24_hours(env):
    page, files = env["page"], env["files"]
    load_hash(page, f"date={DAYS[2].isoformat()}")
    g = chart_grid(page)
    assert g["grid"]["bins"] == 24 and set(g["typeLens"]) == {24}
    assert g["hourly"] == expected_buckets(files, DAYS[2], DAYS[2], 3600)


def test_short_range_is_hourly_over_real_time(env):
    page, files = env["page"], env["files"]
    load_hash(page, f"from={DAYS[2].isoformat()}&to={TODAY.isoformat()}&chart=events")
    g = chart_grid(page)
    assert g["grid"]["step"] == 3600 and g["grid"]["bins"] == 72 and set(g["typeLens"]) == {72}
    want = expected_buckets(files, DAYS[2], TODAY, 3600)
    assert g["hourly"] == want
    assert want[:24] != want[24:48]                 # the days really are kept apart (not folded)
    # the grid fetches its visible rows from the worker after the next animation frame
    page.wait_for_function("() => window.maltrail.grid.rows.size > 0", timeout=5000)
    row = page.evaluate("""() => { const g = window.maltrail.grid; return g.rows.get(0) || [...g.rows.values()][0]; }""")
    assert len(row["hist"]) == 72 and sum(row["hist"]) == row["count"]
    assert "per hour" in page.text_content("#chart-title").lower()
    assert "per hour" in page.text_content("#c-events-sub")
    shot(page, "14-range-hourly")


def test_long_range_is_daily(env):
    page, files = env["page"], env["files"]
    first = TODAY - datetime.timedelta(days=11)
    load_hash(page, f"from={first.isoformat()}&to={TODAY.isoformat()}&chart=events")
    g = chart_grid(page)
    assert g["grid"]["step"] == 86400 and g["grid"]["bins"] == 12
    want = expected_buckets(files, first, TODAY, 86400)
    assert g["hourly"] == want
    assert [want[(TODAY - d).days * -1 + 11] for d in DAYS] == [len(files[d.isoformat()]) for d in DAYS]
    assert "per day" in page.text_content("#chart-title").lower()
    shot(page, "15-range-daily")
    page.click("#chart-close")
    load_hash(page, f"date={TODAY.isoformat()}")
    assert env["errors"] == []
