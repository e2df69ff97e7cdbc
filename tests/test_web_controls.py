"""Browser tests against the real server.py (Playwright, Debian chromium) of the console's controls:
removing a search chip removes that chip's term by position (not the first text that looks like
it); the grid's severity follows the server's REMOTE_SEVERITY_REGEX, which reaches the page in its
mt-severity meta tag and is applied by the same rule as the Python side (core/events/severity.py);
and the dialogs of html/js/dialogs.js (help, whitelist, alias, saved views; the retro-hunt dialog
is covered by tests/test_web_features.py) open, act and close.
"""

from __future__ import annotations

import calendar
import datetime
import tempfile

import pytest

from core.events.severity import Severity
from tests.web import gen_day
from tests.web.harness import (
    browser_page,
    login,
    require_browser,
    search,
    wait_loaded,
)

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


LOGO = ('<img id="acme-logo" alt="acme" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" style="width: 20px">'
        ' ACME SOC')


@pytest.fixture(scope="module")
def page():
    log_dir = tempfile.mkdtemp(prefix="mt-webs-logs-")
    base = calendar.timegm(datetime.date.today().timetuple()) + 3 * 3600
    lines = gen_day.day_lines(TODAY, 300, seed=21)
    lines += [gen_day._line(base + i, "gw", f"10.5.5.{i + 1}", 40000 + i, "10.0.0.53", 53, "UDP", "DNS", trail, info, ref)
              for i, (trail, info, ref) in enumerate(MARKED)]
    lines.sort(key=lambda line: line[1:27])
    gen_day.write_day(log_dir, TODAY, lines)
    extra = {"REMOTE_SEVERITY_REGEX": RULE, "HEADER_LOGO": LOGO}
    with browser_page(log_dir, extra=extra) as (pg, server, errors, _dialogs):
        pg.goto(server.url)
        login(pg)
        pg.errors = errors
        yield pg


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


def modal_title(page) -> str:
    return page.inner_text("#modal-box h2")


def test_dialogs_open_act_and_close(page):
    # help: the ? key and the button; Escape and a click beside the box close it
    page.click("#count")
    page.keyboard.press("?")
    page.wait_for_selector("#modal:not([hidden])")
    assert modal_title(page) == "Search syntax and shortcuts"
    assert "Fields: src dst port" in page.inner_text("#modal-box")
    page.keyboard.press("Escape")
    assert page.is_hidden("#modal")
    page.click("#q-help")
    assert page.is_visible("#modal") and modal_title(page) == "Search syntax and shortcuts"
    page.mouse.click(5, 5)                        # the overlay, outside the box
    assert page.is_hidden("#modal")

    # whitelist (this browser): adding a trail hides its threat, removing it brings it back
    assert search(page, "trail:phish.example") == 1
    seq = int(page.evaluate("+document.body.dataset.viewSeq"))
    page.click("#wl-btn")
    assert modal_title(page) == "Local whitelist"
    page.fill("#modal-box input", "phish.example")
    page.click("#modal-box button:has-text('add')")
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.grid.count") == 0
    assert "phish.example" in page.inner_text("#modal-box")
    seq = int(page.evaluate("+document.body.dataset.viewSeq"))
    page.click("#modal-box .row2:has-text('phish.example') button")
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.grid.count") == 1
    assert "Empty." in page.inner_text("#modal-box")
    page.click("#modal-box h2 ~ button")           # the × beside the title
    assert page.is_hidden("#modal")

    # alias from the context menu: the grid shows the name beside the address
    page.click("#grid-rows .row", button="right")
    page.click("#ctx button:has-text('alias source')")
    assert modal_title(page) == "Alias for 10.5.5.2"
    page.fill("#modal-box input", "analyst-box")
    page.click("#modal-box button:has-text('save')")
    assert page.is_hidden("#modal")
    page.wait_for_function("() => document.querySelector('#grid-rows .row').textContent.includes('analyst-box (10.5.5.2)')")
    assert "analyst-box" in page.evaluate("localStorage.getItem('mt_aliases_v2')")

    # saved views: save the current view, change it, open the saved one again
    search(page, "type:dns")
    page.click("#views-btn")
    page.fill("#modal-box input", "dns only")
    page.click("#modal-box button:has-text('save current')")
    page.keyboard.press("Escape")
    search(page, "")
    seq = int(page.evaluate("+document.body.dataset.loadSeq"))
    page.click("#views-btn")
    page.click("#modal-box button:has-text('dns only')")
    page.wait_for_function("(s) => +document.body.dataset.loadSeq > s", arg=seq)
    wait_loaded(page)
    assert page.is_hidden("#modal")
    assert page.input_value("#q") == "type:dns" and page.evaluate("window.maltrail.state.q") == "type:dns"
    search(page, "")
    assert page.errors == []


def test_header_logo_replaces_the_brand(page):
    """HEADER_LOGO (documented, and the original's) is shown in the header instead of the built-in name."""
    assert page.inner_text("#top .brand").strip() == "ACME SOC"
    assert page.eval_on_selector("#top .brand img#acme-logo", "i => i.alt") == "acme"
    assert not page.errors

