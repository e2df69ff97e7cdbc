"""Browser tests against the real server.py (Playwright, Debian chromium) of the grid's layout:
from 1024 to 2560 px wide the page and the grid never scroll sideways, the columns size to their
content (html/js/grid.js `fitColumns`), and the larger-text control (A+) widens them.

The truncation rule checked here: on a generated day (plus a threat with two tags), in the rows on
screen, no cell of the content-sized columns (Threat, Events, Severity, Proto, Type, First
seen) is cut at any width; from 1280 px on no cell of Sensor, Source, Destination or Tags, and from
1400 px on no cell of any column (the shared columns give up width, widest first, and end in an
ellipsis when the content does not fit).
"""

from __future__ import annotations

import datetime
import tempfile

import pytest

from tests.web import gen_day
from tests.web.harness import browser_page, login, require_browser, shot, view_seq

pytestmark = pytest.mark.browser
sync_api = require_browser()

TODAY = datetime.date.today().isoformat()
WIDTHS = (1024, 1280, 1400, 1920, 2560)
FIXED = ("Threat", "Events", "Severity", "Proto", "Type", "First seen")
SHARED = ("Sensor", "Source", "Destination", "Tags", "Port", "Trail", "Info")

MEASURE = """(labels) => {
  const head = [...document.querySelectorAll('#grid-head span')].map((s) => s.textContent.replace(/ [▲▼]$/, ''));
  const out = {};
  for (const label of labels) out[label] = { cut: 0, cells: 0, width: 0 };
  const body = document.querySelector('#grid-body');
  const top = body.getBoundingClientRect().top, bottom = top + body.clientHeight;
  for (const row of document.querySelectorAll('#grid-rows .row')) {
    const r = row.getBoundingClientRect();
    if (r.top < top || r.bottom > bottom) continue;
    [...row.children].forEach((cell, i) => {
      const o = out[head[i]];
      if (!o) return;
      o.cells += 1;
      o.width = cell.getBoundingClientRect().width;
      if (cell.scrollWidth > cell.clientWidth + 1) o.cut += 1;
    });
  }
  const d = document.documentElement, g = body;
  return { cols: out, page: [d.scrollWidth, d.clientWidth], grid: [g.scrollWidth, g.clientWidth],
           head: [document.querySelector('#grid-head').scrollWidth, document.querySelector('#grid-head').clientWidth] };
}"""


@pytest.fixture(scope="module")
def page():
    log_dir = tempfile.mkdtemp(prefix="mt-weblay-logs-")
    gen_day.write_day(log_dir, TODAY, gen_day.day_lines(TODAY, 4000, seed=7))
    with browser_page(log_dir) as (pg, server, errors, _dialogs):
        pg.goto(server.url)
        login(pg)
        pg.wait_for_function("() => document.body.dataset.ready === 'done' && window.maltrail.grid.rows.has(0)")
        pg.evaluate("""() => { const app = window.maltrail, r = app.grid.rows.get(0);
          app.store.setTags(r.uid, ['beaconing', 'escalated']); app.localChanged(); }""")
        pg.errors = errors
        yield pg


def settle(page, width: int) -> dict:
    seq = view_seq(page)
    page.set_viewport_size({"width": width, "height": 900})
    page.evaluate("window.maltrail.refresh(false)")
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'",
                           arg=seq, timeout=10000)
    page.wait_for_function("() => document.querySelectorAll('#grid-rows .row').length > 5")
    page.wait_for_timeout(300)   # two animation frames: rows painted, columns fitted
    return page.evaluate(MEASURE, [*FIXED, *SHARED])


@pytest.mark.parametrize("width", WIDTHS)
def test_no_sideways_scroll_and_no_cut_cells(page, width):
    m = settle(page, width)
    shot(page, f"30-layout-{width}")
    assert m["page"][0] <= m["page"][1], m["page"]
    assert m["grid"][0] <= m["grid"][1], m["grid"]
    assert m["head"][0] <= m["head"][1], m["head"]
    checked = FIXED + (SHARED if width >= 1400 else SHARED[:4] if width >= 1280 else ())
    cut = {k: v for k, v in m["cols"].items() if k in checked and v["cut"]}
    assert not cut, cut
    assert all(m["cols"][k]["cells"] > 5 for k in checked)
    assert not page.errors


def test_larger_text_widens_columns(page):
    settle(page, 1920)
    before = settle(page, 1920)["cols"]
    page.click("#font-up")
    page.click("#font-up")
    try:
        after = settle(page, 1920)
        for label in FIXED[:-1]:
            assert after["cols"][label]["width"] > before[label]["width"] + 2, label
        assert after["page"][0] <= after["page"][1]
        assert not [k for k in FIXED if after["cols"][k]["cut"]]
    finally:
        page.click("#font-down")
        page.click("#font-down")

