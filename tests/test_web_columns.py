"""Browser test against the real server.py (Playwright, Debian chromium): the grid's columns
(html/js/grid.js `fitColumns`) of a loaded day are sized to that day's rows, not to the rows of a
partial view painted while it loaded (tests/test_web_layout.py checks the layout at each width)."""

from __future__ import annotations

import datetime
import tempfile
import time

import pytest

from tests.kit.server import event_line
from tests.web import gen_day
from tests.web.harness import browser_page, login, require_browser

pytestmark = pytest.mark.browser
require_browser()

TODAY = datetime.date.today().isoformat()


def settled_columns(page) -> str:
    """The grid's column widths once its rows are painted, their addresses' badges filled (the
    server's answers widen the cells, and the columns are fitted again) and the widths stay put."""
    page.wait_for_function("() => document.querySelectorAll('#grid-rows .row').length > 5"
                           " && !document.querySelector('#grid-rows .abadge[data-state=asking]')")
    last, steady = None, 0
    for _ in range(100):
        cols = page.evaluate("document.querySelector('#grid').style.getPropertyValue('--cols')")
        steady = steady + 1 if cols == last else 0
        if steady == 5:
            return cols
        last = cols
        page.wait_for_timeout(100)
    raise AssertionError("the columns never settled")


def test_columns_fit_the_whole_days_rows_once_loaded():
    """Rows of a partial view painted while the day loads (its first lines: low-severity threats with
    a long info that the whole day's sort puts far down) do not size the columns of the final view."""
    log_dir = tempfile.mkdtemp(prefix="mt-weblay-partial-")
    midnight = time.mktime(time.strptime(TODAY, "%Y-%m-%d"))
    # 30 low-severity threats: the only ones any partial view of the first lines can show
    first = [event_line(midnight + 60 + i * 0.01, src=f"10.9.0.{i % 30}", dst=f"203.0.113.{i % 30}",
                        trail=f"203.0.113.{i % 30}", info="known attacker " + "long-winded-description-" * 6)
             for i in range(100_000)]
    gen_day.write_day(log_dir, TODAY, first + gen_day.day_lines(TODAY, 200_000, seed=7))
    with browser_page(log_dir) as (pg, server, errors, _dialogs):
        pg.set_viewport_size({"width": 1400, "height": 900})
        pg.add_init_script("""window.__fits = [];
          new MutationObserver(() => { const grid = document.querySelector('#grid');
            const v = grid && grid.style.getPropertyValue('--cols');
            const box = document.querySelector('#grid-rows'), long = !!box && box.textContent.includes('long-winded');
            if (v) window.__fits.push([document.body.dataset.ready, long]); })
          .observe(document, { subtree: true, attributes: true, childList: true });""")
        pg.goto(server.url)
        login(pg)
        loaded = settled_columns(pg)
        fits = pg.evaluate("window.__fits")
        assert any(ready == "loading" and long for ready, long in fits), "no partial view painted its rows while loading"
        pg.evaluate("window.maltrail.grid.resetColumns()")
        assert settled_columns(pg) == loaded
        assert not errors
