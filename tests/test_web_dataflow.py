"""The web client's data path in headless Chromium against the real server.py: the search box
applies on Enter and when emptied without waiting for the typing pause (typing still waits); the
byte parser of /events (logparse.js ByteLineParser, aggregate.js addScanned) builds the same threats
as the text parser on every kind of line, cut at any chunk size; bare words match through the
memos what a direct reading of the visible text matches; a view answered from the worker's cache
follows hiding, new data and a new load.
"""

from __future__ import annotations

import datetime
import tempfile

import pytest

from core.events.event import Event, format_line
from tests.web import gen_day, reference
from tests.web.harness import browser_page, login, require_browser, search, view_seq, wait_loaded

pytestmark = pytest.mark.browser
sync_api = require_browser()

TODAY = datetime.date.today().isoformat()
LONG_PAUSE = 60000     # ms: a typing pause the tests never wait for


@pytest.fixture(scope="module")
def env():
    log_dir = tempfile.mkdtemp(prefix="mt-web-dataflow-")
    lines = gen_day.day_lines(TODAY, 2000, seed=11)
    gen_day.write_day(log_dir, TODAY, lines)
    with browser_page(log_dir) as (page, server, errors, _dialogs):
        page.goto(server.url)
        login(page)
        yield {"page": page, "lines": lines, "errors": errors}


def applied(page, q: str, timeout: int = 5000) -> int:
    """Wait until `q` is the view's query and its rows are in the grid; the grid's row count."""
    page.wait_for_function(
        "(q) => window.maltrail.state.q === q && document.body.dataset.busy === '0'"
        " && document.querySelectorAll('#grid-rows .row').length > 0", arg=q, timeout=timeout)
    return int(page.evaluate("window.maltrail.grid.count"))


APPLY = """([q, key]) => {
    const box = document.querySelector('#q');
    box.value = q;
    box.dispatchEvent(new Event('input', { bubbles: true }));
    if (key) box.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true }));
    return window.maltrail.state.q;     // the view's query right after the events, before any timer ran
}"""


def test_enter_applies_the_search_at_once(env):
    page = env["page"]
    expected = sum(1 for t in reference.aggregate(env["lines"]) if t.type == "DNS")
    assert page.evaluate(APPLY, ["type:dns", "Enter"]) == "type:dns"
    assert applied(page, "type:dns") == expected


def test_typing_waits_for_the_pause_and_an_emptied_box_applies_at_once(env):
    page = env["page"]
    total = len(reference.aggregate(env["lines"]))
    assert search(page, "type:dns") < total
    assert page.evaluate(APPLY, ["type:dns count:>1", None]) == "type:dns"     # typing: not yet
    assert page.evaluate(APPLY, ["", None]) == ""                              # emptied: at once
    assert applied(page, "") == total
    page.evaluate(f"window.maltrail.searchDelay = {LONG_PAUSE}")
    page.click("#q")
    page.keyboard.type("type:dns")
    page.wait_for_timeout(600)
    assert page.evaluate("window.maltrail.state.q") == ""                       # still typing
    page.evaluate("window.maltrail.searchDelay = 120")
    page.keyboard.type(" ")
    assert applied(page, "type:dns ") < total                                  # after the pause, without Enter


# every kind of line the server may serve: plain, quoted fields with doubled quotes, '-' fields,
# comma lists, multi-byte UTF-8, CRLF, runs of spaces, malformed ones
def odd_lines() -> list[str]:
    nasty = ['a "quoted" word', "-", "x y  z", "ünïcödé ✓", "comma,list", 'q"s', "𝄞 clef"]
    out = []
    for i, value in enumerate(nasty * 3):
        ev = Event(1764000000 + i * 7, i, f"10.0.0.{i % 5}", "1,2" if i % 4 == 0 else 53, f"198.51.100.{i}",
                   "80,443" if i % 3 == 0 else 8080, "TCP", "URL" if i % 2 else "DNS", value, nasty[(i + 1) % 7],
                   nasty[(i + 2) % 7])
        out.append(format_line(ev, ["gw", "a b", 'q"s', "ü"][i % 4]))
    day = TODAY
    out += [f'"{day} 01:02:03.000004"   gw  10.0.0.9 - 192.0.2.1 - UDP DNS evil.example "bad  thing" (static)',
            f'"{day} 01:02:03.000005" gw 10.0.0.9 - 192.0.2.1 - UDP DNS evil.example bad (static)\r',
            f'"{day} 01:02:03" gw 10.0.0.9 1 192.0.2.1 2 UDP DNS evil.example bad (static) extra',
            f'"{day} 01:02:03" gw 10.0.0.9 1 192.0.2.1 2 UDP DNS evil.example "unterminated (static)',
            f'"{day} 25:02:03" gw 10.0.0.9 1 192.0.2.1 2 UDP DNS evil.example bad (static)',
            f'"{day} 01:02:03"gw 10.0.0.9 1 192.0.2.1 2 UDP DNS evil.example bad (static)',
            f'"{day} 01:02:03" gw 10.0.0.9 1 192.0.2.1', "garbage", '"', "   "]
    # ports the byte path reads in place (plain numbers) or looks up as text (anything else)
    for i, (sport, dport) in enumerate([("0", "00"), ("01", "65535"), ("65536", "99999"), ("123456", "1a"),
                                        ("-", "9"), ("10", "+1"), ("65534", "0x1")]):
        out.append(f'"{day} 02:00:0{i}" gw 10.0.0.8 {sport} 192.0.2.{i % 2} {dport} TCP IP 192.0.2.{i % 2} port-test (static)')
    return out


def test_byte_parser_builds_the_same_threats_as_the_text_parser(env):
    page = env["page"]
    text = "\n".join(env["lines"][:600] + odd_lines()) + "\n" + odd_lines()[0]    # the last line without newline
    got = page.evaluate("""async (text) => {
        const parse = await import('/js/logparse.js');
        const { Aggregator, timeGrid } = await import('/js/aggregate.js');
        const { Severity } = await import('/js/classify.js');
        const day = text.slice(1, 11);
        const sig = (agg, p) => [p.lines, p.bad, agg.events, agg.threats.map((t) => [t.uid, t.kind, t.count, t.sev,
          t.first, t.last, t.alias, t.over, t.lan, Array.from(t.hist).join(), t.type, t.trail, t.info, t.ref,
          ...['src', 'sport', 'dst', 'dport', 'proto', 'sensor'].map((f) => agg.values(t, f).sort().join('|'))].join('\\t'))];
        const textAgg = new Aggregator(timeGrid(day, day), new Severity(''));
        const lp = new parse.LineParser();
        lp.push(text, (r) => textAgg.add(r));
        lp.end((r) => textAgg.add(r));
        const want = JSON.stringify(sig(textAgg, lp));
        const bytes = new TextEncoder().encode(text);
        const out = [];
        for (const size of [1, 2, 3, 7, 64, 4096, bytes.length]) {
          const agg = new Aggregator(timeGrid(day, day), new Severity(''));
          const p = new parse.ByteLineParser();
          for (let i = 0; i < bytes.length; i += size) p.push(bytes.slice(i, i + size), agg);
          p.end(agg);
          out.push(JSON.stringify(sig(agg, p)) === want);
        }
        return { out, lines: lp.lines, bad: lp.bad, threats: textAgg.threats.length };
    }""", text)
    assert got["out"] == [True] * 7
    assert got["bad"] >= 7 and got["threats"] > 100


BARE_WORDS = ["53", "443", "80", "8", "high", "medium", "low", "gw", "core1", "10.1", "198.51", "dns", "static", "biz", "a",
              "d0", "zz9tag", "zzz-nothing"]


def test_bare_words_match_the_visible_text(env):
    page = env["page"]
    got = page.evaluate("""async ([text, words]) => {
        const parse = await import('/js/logparse.js');
        const { Aggregator, timeGrid } = await import('/js/aggregate.js');
        const { Severity, SEV_NAMES } = await import('/js/classify.js');
        const q = await import('/js/query.js');
        const day = text.slice(1, 11);
        const agg = new Aggregator(timeGrid(day, day), new Severity(document.querySelector('meta[name=mt-severity]').content));
        const p = new parse.ByteLineParser();
        p.push(new TextEncoder().encode(text), agg);
        const live = agg.threats.filter((t) => t.alias < 0);
        const local = { tags: { [live[7].uid]: ['case-zz9tag'] }, notes: {}, triage: {} };
        // a grouped threat's visible trails are all its members (the drawer lists them)
        const trailsOf = (t) => (t.members ? [...t.members.keys()].map((id) => agg.strings[id]) : [t.trail]);
        return words.map((w) => {
          const pred = q.compileQuery(q.parseQuery(w), agg);
          const direct = (t) => [...trailsOf(t), t.info, t.uid, t.type, t.ref, SEV_NAMES[t.sev], ...(local.tags[t.uid] || []),
            ...['src', 'dst', 'sensor', 'dport'].flatMap((f) => agg.values(t, f))].some((s) => s.toLowerCase().includes(w));
          return [live.filter((t) => pred(t, local)).length, live.filter(direct).length];
        });
    }""", ["\n".join(env["lines"] + odd_lines()) + "\n", BARE_WORDS])
    for word, (memo, direct) in zip(BARE_WORDS, got, strict=True):
        assert memo == direct, word
    assert [w for w, (n, _) in zip(BARE_WORDS, got, strict=True) if n == 0] == ["zzz-nothing"]
    assert got[BARE_WORDS.index("zz9tag")] == [1, 1]


def test_views_from_the_cache_follow_hiding_and_new_loads(env):
    page = env["page"]
    page.evaluate("window.maltrail.searchDelay = 120")
    total = search(page, "")
    dns = search(page, "type:dns")
    assert search(page, "") == total and search(page, "type:dns") == dns     # answered again (from the cache)
    first = page.get_attribute("#grid-rows .row[data-index='0']", "data-uid")
    seq = view_seq(page)
    page.evaluate("(u) => { window.maltrail.store.toggleHidden(u); window.maltrail.localChanged(); }", first)
    page.wait_for_function("(s) => +document.body.dataset.viewSeq > s && document.body.dataset.busy === '0'", arg=seq)
    assert page.evaluate("window.maltrail.grid.count") == dns - 1
    assert search(page, "") == total - 1
    page.evaluate("(u) => { window.maltrail.store.toggleHidden(u); window.maltrail.localChanged(); }", first)
    assert search(page, "type:dns") == dns
    # the same day loaded again: a new aggregate, the same answers
    page.evaluate("window.maltrail.load()")
    wait_loaded(page)
    assert search(page, "") == total and search(page, "type:dns") == dns
    assert env["errors"] == []
