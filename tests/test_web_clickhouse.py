"""The browser on a server whose event store is ClickHouse (Playwright, Debian chromium, a real
ClickHouse from tests/kit/clickhouse.py): the console asks /store, loads the day as a threat
summary (/threats, never /events), shows every threat and the day's event count, draws the
per-hour chart from the summary, and loads one threat's lines from /threat when its drawer opens."""

from __future__ import annotations

import datetime
import os
import tempfile

import pytest

from core.events.event import parse_line
from core.server.chwriter import RowEncoder
from core.server.clickhouse import ClickHouse, parse_event_store
from tests.kit.clickhouse import ClickHouseServer, require_clickhouse
from tests.web import gen_day
from tests.web.harness import browser_page, load_hash, login, require_browser

pytestmark = pytest.mark.browser
require_browser()
require_clickhouse()

TODAY = datetime.date.today()
YESTERDAY = TODAY - datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def env():
    ch = ClickHouseServer().start()
    day = TODAY.isoformat()
    lines = gen_day.day_lines(day, 3000, seed=4) + gen_day.hostile_lines(day)
    earlier = gen_day.day_lines(YESTERDAY.isoformat(), 2000, seed=5)
    target = parse_event_store(ch.url("web")).clickhouse
    assert target is not None
    client = ClickHouse(target)
    client.ensure_schema()
    client.insert(RowEncoder().encode(day, [line.encode() + b"\n" for line in lines]))
    client.insert(RowEncoder().encode(YESTERDAY.isoformat(), [line.encode() + b"\n" for line in earlier]))
    log_dir = tempfile.mkdtemp(prefix="mt-webch-logs-")
    trails = os.path.join(log_dir, "trails.csv")      # the drawer's /check lookups need a trail store
    with open(trails, "w", encoding="utf-8") as handle:
        handle.write("evil0.example,hostile test (malware),(static)\n")
    extra = {"EVENT_STORE": f"files,{ch.url('web')}", "TRAILS_FILE": trails}
    try:
        with browser_page(log_dir, extra=extra) as (page, server, errors, _):
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server.url + f"#date={day}")
            login(page)
            yield {"page": page, "lines": lines, "earlier": earlier, "errors": errors, "requests": requests}
    finally:
        ch.close()


def threats_of(lines: list[str]) -> dict[tuple[str, str, str, str], int]:
    out: dict[tuple[str, str, str, str], int] = {}
    for line in lines:
        p = parse_line(line)
        assert p is not None
        key = (p.type, p.trail, p.info, p.reference)
        out[key] = out.get(key, 0) + 1
    return out


def test_the_day_loads_as_a_summary(env):
    page, lines = env["page"], env["lines"]
    assert any("/store" in url for url in env["requests"])
    assert any("/threats?date=" in url for url in env["requests"])
    assert not any("/events?" in url for url in env["requests"])
    want = threats_of(lines)
    assert page.evaluate("window.maltrail.grid.count") == len(want)
    status = page.inner_text("#status")
    assert f"{len(lines):,} events" in status and "threat summary" in status
    # the rows' counts are the summary's
    counts = page.eval_on_selector_all("#grid-rows .row .cnt", "cs => cs.map(c => c.textContent)")
    assert counts and all(c.rstrip("×").replace(",", "").isdigit() for c in counts)
    top = max(want.values())
    assert max(int(c.rstrip("×").replace(",", "")) for c in counts) == top
    assert env["errors"] == []


def test_a_threats_lines_load_when_its_drawer_opens(env):
    page = env["page"]
    page.wait_for_function("() => [...document.querySelectorAll('#grid-rows .row')].some(r => r.dataset.index === '0')")
    first = page.query_selector("#grid-rows .row[data-index='0']")
    count = int(first.query_selector(".cnt").inner_text().rstrip("×").replace(",", ""))
    before = sum("/threat?" in url for url in env["requests"])
    first.click()
    page.wait_for_selector("#drawer:not([hidden]) table tbody tr")
    assert sum("/threat?" in url for url in env["requests"]) == before + 1
    assert page.eval_on_selector_all("#drawer tbody tr", "r => r.length") == min(count, 500)
    heads = page.eval_on_selector_all("#drawer thead th", "hs => hs.map((h) => h.textContent)")
    trail = page.eval_on_selector("#drawer .kv", "kv => kv.children[1].textContent")
    cells = page.eval_on_selector_all("#drawer tbody tr", f"rs => rs.map((r) => r.children[{heads.index('trail')}].textContent)")
    assert set(cells) == {trail}
    assert env["errors"] == []


def test_a_range_loads_as_one_summary_in_hourly_buckets(env):
    page = env["page"]
    load_hash(page, f"from={YESTERDAY.isoformat()}&to={TODAY.isoformat()}")
    assert any(f"/threats?date={YESTERDAY.isoformat()}_{TODAY.isoformat()}" in url for url in env["requests"])
    both = env["lines"] + env["earlier"]
    assert page.evaluate("window.maltrail.grid.count") == len(threats_of(both))
    assert f"{len(both):,} events" in page.inner_text("#status")
    rows = page.evaluate("window.maltrail.ask({ op: 'rows', from: 0, to: 100000 }).then((r) => r.rows)")
    assert rows and all(len(r["hist"]) == 48 and sum(r["hist"]) == r["count"] for r in rows)
    # each threat's events fall in the hours of its own lines
    for r in rows[:20]:
        hours = set()
        for line in both:
            p = parse_line(line)
            shown = tuple("" if f == "-" else f for f in (p.type, p.trail, p.info, p.reference))
            if shown == (r["type"], r["trail"], r["info"], r["ref"]):
                hours.add((0 if p.time[:10] == YESTERDAY.isoformat() else 24) + int(p.time[11:13]))
        assert {h for h, n in enumerate(r["hist"]) if n} == hours
    assert env["errors"] == []
