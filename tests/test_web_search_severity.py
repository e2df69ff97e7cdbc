"""Browser tests against the real server.py (Playwright, Debian chromium) of two client rules:
removing a search chip removes that chip's term by position (not the first text that looks like
it), and the grid's severity follows the server's REMOTE_SEVERITY_REGEX, which reaches the page in
its mt-severity meta tag and is applied by the same rule as the Python side
(core/events/severity.py).
"""

from __future__ import annotations

import calendar
import datetime
import shutil
import tempfile

import pytest

from core.events.severity import Severity
from tests.web import gen_day
from tests.web.harness import PASSWORD, Server, launch_browser, require_browser, watch_page

pytestmark = pytest.mark.browser
sync_api = require_browser()

TODAY = datetime.date.today().isoformat()
# Python-only syntax on purpose: (?P<name>...) and the back-reference (?P=name).
RULE = r"(?P<high>phish|(?P<w>evil)-(?P=w))|(?P<low>ransomware)"
MARKED = [  # trail, info, reference: each its own threat; the default table would rate them otherwise
    ("ransom.example", "potential malware site (ransomware)", "(static)"),   # default high, here low
    ("phish.example", "phishing kit", "(static)"),                           # default medium, here high
    ("evil.example", "evil-evil beacon", "(static)"),                        # default medium, here high
    ("plain.example", "emotet (malware)", "(static)"),                       # default high, here medium
]


@pytest.fixture(scope="module")
def page():
    log_dir = tempfile.mkdtemp(prefix="mt-webs-logs-")
    base = calendar.timegm(datetime.date.today().timetuple()) + 3 * 3600
    lines = gen_day.day_lines(TODAY, 300, seed=21)
    lines += [gen_day._line(base + i, "gw", f"10.5.5.{i + 1}", 40000 + i, "10.0.0.53", 53, "UDP", "DNS", trail, info, ref)
              for i, (trail, info, ref) in enumerate(MARKED)]
    lines.sort(key=lambda line: line[1:27])
    gen_day.write_day(log_dir, TODAY, lines)
    server = Server(log_dir, extra={"REMOTE_SEVERITY_REGEX": RULE})
    server.start()
    profile = tempfile.mkdtemp(prefix="mt-webs-profile-")
    with sync_api.sync_playwright() as p:
        ctx = launch_browser(p, profile)
        pg = ctx.new_page()
        errors, _dialogs = watch_page(pg, server.url)
        pg.goto(server.url)
        pg.wait_for_selector("#login:not([hidden])")
        pg.fill("#login-user", "admin")
        pg.fill("#login-pass", PASSWORD)
        pg.click("#login-submit")
        pg.wait_for_selector("#login", state="hidden")
        wait_idle(pg)
        pg.errors = errors
        try:
            yield pg
        finally:
            ctx.close()
            server.stop()
            shutil.rmtree(log_dir, ignore_errors=True)
            shutil.rmtree(profile, ignore_errors=True)


def wait_idle(page) -> None:
    page.wait_for_function("() => document.body.dataset.ready === 'done' && document.body.dataset.busy === '0'",
                           timeout=30000)


def search(page, q: str) -> int:
    seq = int(page.evaluate("+document.body.dataset.viewSeq || 0"))
    page.fill("#q", q)
    page.press("#q", "Enter")
    page.wait_for_function(
        "([q, seq]) => window.maltrail.state.q === q && +document.body.dataset.viewSeq > seq"
        " && document.body.dataset.busy === '0'", arg=[q, seq], timeout=10000)
    return int(page.evaluate("window.maltrail.grid.count"))


def chips(page) -> list[str]:
    return page.eval_on_selector_all("#chips .chip > span", "els => els.map((e) => e.textContent)")


def remove_chip(page, index: int) -> None:
    seq = int(page.evaluate("+document.body.dataset.viewSeq || 0"))
    page.locator("#chips .chip button").nth(index).click()
    page.wait_for_function("(seq) => +document.body.dataset.viewSeq > seq && document.body.dataset.busy === '0'",
                           arg=seq, timeout=10000)


def test_removing_a_chip_removes_that_term(page):
    search(page, "sport:53 port:53")
    assert chips(page) == ["sport:53", "port:53"]
    remove_chip(page, 1)                          # × on port:53 (its text is also inside sport:53)
    assert page.input_value("#q") == "sport:53"
    assert page.evaluate("window.maltrail.state.q") == "sport:53"
    assert chips(page) == ["sport:53"]
    assert "q=sport%3A53" in page.evaluate("location.hash")
    search(page, 'info:"a  b" port:53 AND type:dns port:53')
    remove_chip(page, 3)                          # the second port:53, with its connector
    assert page.input_value("#q") == 'info:"a  b" port:53 AND type:dns'
    remove_chip(page, 0)                          # spacing inside quotes elsewhere is kept as typed
    assert page.input_value("#q") == "port:53 AND type:dns"
    search(page, "")
    assert page.errors == []


def test_grid_severity_follows_the_server_rule(page):
    assert page.evaluate("document.querySelector('meta[name=mt-severity]').content") == RULE
    rule = Severity(RULE)
    for trail, info, ref in MARKED:
        assert search(page, f"trail:{trail}") == 1
        shown = page.inner_text("#grid-rows .cell.sev")
        assert shown == rule(info, ref), trail
    search(page, "")
    rows = page.evaluate("window.maltrail.ask({ op: 'rows', from: 0, to: 100000 }).then((r) => r.rows)")
    names = ["low", "medium", "high"]
    for row in rows:          # a threat is at least as severe as the event it shows
        assert row["sev"] >= names.index(rule(row["info"], row["ref"])), row
    assert page.errors == []
