"""The web client's pure modules run in headless Chromium (served by the real server.py under its
CSP) and compared with Python references: SHA-256 against hashlib, the log-line parser against
core.events.event.parse_line, the search language on hand-built threats, chip removal (a property
test over random queries), severity against the shared cases file of the Python rule, CSV formula
safety and defanging; plus the default-password banner and the live polling fallback.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import tempfile

import pytest

from core.events.event import Event, format_line, parse_line
from core.events.severity import default_pattern
from tests.test_severity import load_cases
from tests.web import gen_day
from tests.web.harness import browser_page, require_browser

pytestmark = pytest.mark.browser
sync_api = require_browser()

TODAY = datetime.date.today().isoformat()
SEVERITY_PATTERNS, SEVERITY_CASES = load_cases()


@pytest.fixture(scope="module")
def page():
    log_dir = tempfile.mkdtemp(prefix="mt-web-units-")
    gen_day.write_day(log_dir, TODAY, gen_day.day_lines(TODAY, 300, seed=3))
    with browser_page(log_dir, password="changeme!") as (pg, server, _errors, _dialogs):  # the original's default
        pg.goto(server.url)
        pg.wait_for_selector("#login:not([hidden])")
        pg.server = server
        pg.log_dir = log_dir
        yield pg


def js(page, body: str, arg=None):
    """Run an async function body with the client's modules imported (m.sha, m.parse, m.query, m.exp,
    m.agg, m.cls) and m.sevPattern, the severity pattern the server put in the page."""
    return page.evaluate(
        "async ([arg]) => { const m = { sha: await import('/js/sha256.js'), parse: await import('/js/logparse.js'),"
        " query: await import('/js/query.js'), exp: await import('/js/export.js'), agg: await import('/js/aggregate.js'),"
        " cls: await import('/js/classify.js'), sevPattern: document.querySelector('meta[name=mt-severity]').content };"
        " return (" + body + ")(m, arg); }", [arg])


def test_sha256_matches_hashlib(page):
    rnd = random.Random(5)
    samples = ["", "a", "abc", "changeme!", "é€𝄞 unicode", "x" * 55, "y" * 56, "z" * 64, "q" * 119, "w" * 1000]
    samples += ["".join(chr(rnd.randint(32, 0x24F)) for _ in range(rnd.randint(0, 200))) for _ in range(20)]
    got = js(page, "async (m, xs) => xs.map((x) => m.sha.sha256hex(x))", samples)
    assert got == [hashlib.sha256(s.encode()).hexdigest() for s in samples]
    via_subtle = js(page, "async (m, xs) => Promise.all(xs.map((x) => m.sha.sha256hexAsync(x)))", samples[:5])
    assert via_subtle == got[:5]


def test_parser_matches_python(page):
    rnd = random.Random(9)
    nasty = ['a "quoted" word', "", "-", "x y  z", '""', "comma,list", "tab\there", "ünïcödé", '"', "a\"b c"]
    lines = []
    for i in range(300):
        ev = Event(1764000000 + i * 37, rnd.randint(0, 999999), rnd.choice(nasty) or "10.0.0.1", rnd.choice([0, 53, "1,2"]),
                   "10.0.0.2", 80, "TCP", "URL", rnd.choice(nasty), rnd.choice(nasty), rnd.choice(nasty))
        lines.append(format_line(ev, rnd.choice(["gw", "a b", 'q"s'])))
    lines += ['"2026-11-25 00:00:00.000001" only three', '"2026-11-25 00:00:00" a b c d e f g h i j k', "garbage",
              '"unterminated a b c d e f g h i j', '"2026-13-45 99:00:00.000000" a b c d e f g h i j']
    got = js(page, """async (m, lines) => lines.map((l) => {
        const r = m.parse.parseRange(l, 0, l.length);
        return r && [r.sensor, r.src, r.sport, r.dst, r.dport, r.proto, r.type, r.trail, r.info, r.ref];
    })""", lines)
    for line, row in zip(lines, got, strict=True):
        ref = parse_line(line)
        if ref is None or not ref.time[:4].isdigit() or ref.time[5:7] > "12":
            assert row is None, line
            continue
        want = ["" if v == "-" else v for v in list(ref)[1:]]
        assert row == want, line
    # streaming: the same text cut at every chunk size gives the same records
    text = "\n".join(lines[:50]) + "\n"
    counts = js(page, """async (m, text) => [1, 7, 64, 999].map((size) => {
        const p = new m.parse.LineParser(); let n = 0;
        for (let i = 0; i < text.length; i += size) p.push(text.slice(i, i + size), () => n++);
        p.end(() => n++);
        return [n, p.bad];
    })""", text)
    valid = sum(1 for line in lines[:50] if parse_line(line) is not None)
    assert all(c == [valid, 50 - valid] for c in counts)


def test_query_language(page):
    cases = {
        "src:10.0.0.0/8": [0, 1], "src:10.0.0.5": [0], "src:10.*": [0, 1], "-src:10.0.0.0/8": [2],
        "dst:2001:db8::/32": [2], "port:443": [1], "port:>1000": [2], "port:20-80": [0], "port:<=53,443": [0, 1],
        "type:dns": [0], "type:dns,url": [0, 2], "trail:*.biz": [0], 'info:"port scanning"': [1],
        "sev:high": [0], "sev:lo": [1, 2], "count:>=10": [1, 2], "events:5": [0], "emotet": [0],
        "type:dns OR type:url": [0, 2], "type:dns || count:>50": [0, 2], "NOT type:dns": [1, 2], "!type:dns": [1, 2],
        "(type:dns OR type:ip) count:>5": [1], "type:ip AND port:443": [1], "type:ip && -port:443": [],
        "class:malware": [0], "dir:in": [2], "dir:lan": [1], "dir:out": [0], "uid:abc*": [0], "sensor:gw": [0, 2],
        "tag:case1": [1], "status:resolved": [2], "status:new": [0, 1], "note:beacon": [1],
    }
    got = js(page, """async (m, queries) => {
        const agg = new m.agg.Aggregator(undefined, new m.cls.Severity(m.sevPattern));
        const add = (t, src, sport, dst, dport, proto, type, trail, info, ref, sensor, n) => {
            for (let i = 0; i < n; i++) agg.add({ t: t + i, sensor, src, sport, dst, dport, proto, type, trail, info, ref, tail: trail + info + ref });
        };
        add(100, '10.0.0.5', '5000', '8.8.8.8', '53', 'UDP', 'DNS', 'bad.biz', 'emotet (malware)', '(static)', 'gw', 5);
        add(200, '10.1.1.1', '5001', '10.2.2.2', '443', 'TCP', 'IP', '10.1.1.1', 'potential port scanning', '(heuristic)', 'dmz', 20);
        add(300, '203.0.113.9', '5002', '2001:db8::1', '8080', 'TCP', 'URL', 'x.example/a', 'known attacker', 'ref', 'gw', 60);
        const threats = agg.threats.filter((t) => t.alias < 0);
        threats[0].uid = 'abc12345';
        const local = { tags: { [threats[1].uid]: ['case1'] }, notes: { [threats[1].uid]: 'Beacon every 5 min' },
                        triage: { [threats[2].uid]: 'resolved' } };
        const out = {};
        for (const q of queries) {
            const f = m.query.compileQuery(m.query.parseQuery(q), agg);
            out[q] = threats.map((t, i) => (f(t, local) ? i : -1)).filter((i) => i >= 0);
        }
        return out;
    }""", list(cases))
    assert got == cases
    errors = js(page, """async (m, qs) => qs.map((q) => { try { m.query.parseQuery(q); const a = m.query.parseQuery(q);
        m.query.compileQuery(a, new m.agg.Aggregator()); return null; } catch (e) { return e.message; } })""",
                ["(type:dns", "type:dns)", 'info:"open', "port:abc", "sev:critical", "src:", "OR", "type:dns AND"])
    assert all(errors), errors


CHIP_TERMS = ["port:53", "sport:53", "53", "port", "s", "rt:5", "src:10.0.0.0/8", "-trail:*.biz", 'info:"port scanning"',
              "type:dns,url", 'trail:a,"b c"', "emotet", '"two  spaces"', "count:>=10", "-53", "(type:dns OR type:ip)",
              "(port:53 sport:53)", "(-src:1.2.3.4 || port:443)"]
CHIP_JOINS = [" ", "  ", " AND ", " && ", "\t", " and "]


def _chip_query(rnd: random.Random) -> tuple[list[str], list[str]]:
    """A random chip-able query as its terms and the connectors between them (duplicates and
    terms that are substrings of others on purpose)."""
    terms = [rnd.choice(CHIP_TERMS) for _ in range(rnd.randint(1, 6))]
    return terms, [rnd.choice(CHIP_JOINS) for _ in terms[1:]]


def _join(terms: list[str], joins: list[str]) -> str:
    return terms[0] + "".join(j + t for j, t in zip(joins, terms[1:], strict=True)) if terms else ""


def test_removing_a_chip_removes_that_term(page):
    """Property: for random queries, removing chip i parses the same as the query written without
    term i (and the chips are the terms, in order)."""
    rnd = random.Random(15)
    cases = []
    for _ in range(400):
        terms, joins = _chip_query(rnd)
        pad = rnd.choice(["", " ", "  "])
        query = pad + _join(terms, joins) + rnd.choice(["", " "])
        for i in range(len(terms)):
            rest_terms = terms[:i] + terms[i + 1:]
            rest_joins = joins[1:] if i == 0 else joins[:i - 1] + joins[i:]
            cases.append([query, i, terms, _join(rest_terms, rest_joins)])
    # a top-level OR or NOT is one chip: removing it empties the box
    cases += [["port:53 OR sport:53", 0, ["port:53 OR sport:53"], ""], [" NOT port:53 ", 0, ["NOT port:53"], ""]]
    bad = js(page, """async (m, cases) => {
        const plain = (ast) => JSON.stringify(ast, (k, v) => (k === 'pos' ? undefined : v));
        const out = [];
        for (const [q, i, terms, without] of cases) {
            const chips = m.query.chipsOf(q).map((c) => c.text);
            const got = m.query.withoutChip(q, i);
            if (JSON.stringify(chips) !== JSON.stringify(terms) || plain(m.query.parseQuery(got)) !== plain(m.query.parseQuery(without)))
                out.push({ q, i, chips, got, without });
        }
        return out;
    }""", cases)
    assert bad == [], bad[:5]
    assert js(page, "async (m) => m.query.withoutChip('sport:53 port:53', 1)") == "sport:53"
    assert js(page, "async (m) => m.query.withoutChip('info:\"a  b\" port:53', 1)") == 'info:"a  b"'


def test_csv_and_defang(page):
    got = js(page, "async (m, xs) => xs.map((x) => m.exp.csvCell(x))",
             ["=1+1", "+cmd", "-2", "@SUM(A1)", "\t=x", "plain", 'say "hi"', " =1"])
    assert got == ['"\'=1+1"', '"\'+cmd"', '"\'-2"', '"\'@SUM(A1)"', '"\'\t=x"', '"plain"', '"say ""hi"""', '"\' =1"']
    assert js(page, "async (m, x) => m.exp.defang(x)", "http://evil.example.com/a.php") == "hxxp[://]evil[.]example[.]com/a[.]php"


def test_severity_shared_cases(page):
    """The browser's Severity against the same cases file as the Python rule (tests/test_severity.py);
    the default cases use the pattern the server put in the page, which is the default table's."""
    assert js(page, "async (m) => m.sevPattern") == default_pattern()
    got = js(page, """async (m, doc) => doc.cases.map((c) => {
        const rule = new m.cls.Severity(c.pattern ? doc.patterns[c.pattern] : m.sevPattern);
        return m.cls.SEV_NAMES[rule.of(c.info, c.reference)];
    })""", {"patterns": SEVERITY_PATTERNS, "cases": SEVERITY_CASES})
    assert got == [c["severity"] for c in SEVERITY_CASES]
    # a threat takes the highest severity of its events (aggregate.js through the same rule)
    sev = js(page, """async (m) => {
        const agg = new m.agg.Aggregator(undefined, new m.cls.Severity(m.sevPattern));
        const rec = (info, ref) => ({ t: 1, sensor: 'gw', src: '10.0.0.1', sport: '1', dst: '192.0.2.1', dport: '80',
            proto: 'TCP', type: 'IP', trail: '192.0.2.1', info, ref, tail: '192.0.2.1' + info + ref });
        agg.add(rec('known attacker', '(static)'));
        agg.add(rec('known attacker', '(custom)'));
        return agg.threats.map((t) => t.sev);
    }""")
    assert sev == [2]


def test_private_addresses_and_uids(page):
    got = js(page, """async (m) => [
        m.cls.isPrivate('10.1.2.3'), m.cls.isPrivate('172.31.0.1'), m.cls.isPrivate('172.32.0.1'),
        m.cls.isPrivate('fd00::1'), m.cls.isPrivate('8.8.8.8'),
        m.cls.murmur3('', 0), m.cls.murmur3('hello', 0), m.cls.murmur3('hello, world', 13)]""")
    assert got[:5] == [True, True, False, True, False]
    assert got[5] == 0 and got[6] == 0x248BFA47                 # published MurmurHash3 x86_32 vectors
    assert got[7] == _murmur3(b"hello, world", 13)


def _murmur3(data: bytes, seed: int) -> int:
    """Reference MurmurHash3 x86 32-bit (public algorithm)."""
    c1, c2, h = 0xCC9E2D51, 0x1B873593, seed
    n = len(data) - len(data) % 4
    for i in range(0, n, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        h ^= (k * c2) & 0xFFFFFFFF
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    k = int.from_bytes(data[n:], "little") if data[n:] else 0
    if data[n:]:
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        h ^= (k * c2) & 0xFFFFFFFF
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def test_default_password_banner_and_polling_live(page):
    page.fill("#login-user", "admin")
    page.fill("#login-pass", "changeme!")
    page.click("#login-submit")
    page.wait_for_selector("#banner:not([hidden])")
    assert "default password" in page.inner_text("#banner")
    page.wait_for_function("() => document.body.dataset.ready === 'done' && document.body.dataset.busy === '0'")
    before = page.evaluate("window.maltrail.stats.allEvents")
    page.evaluate("() => { window.maltrail.store.setPref('liveMode', 'poll'); }")
    page.click("#live")
    page.wait_for_function("() => /live: polling/.test(document.querySelector('#status').textContent)")
    line = format_line(Event(0, 0, "10.77.0.1", 1, "192.0.2.1", 80, "TCP", "IP", "192.0.2.1", "poll test (malware)", "x"), "gw")
    day = page.evaluate("window.maltrail.state.to")  # the day the page shows and polls (a run may cross midnight)
    line = f'"{day} 12:00:00.000000"' + line[line.index('"', 1) + 1:]
    with open(os.path.join(page.log_dir, day + ".log"), "a") as handle:
        handle.write(line + "\n" + line[:20])          # plus a partial line that must wait
    page.wait_for_function("(b) => window.maltrail.stats && window.maltrail.stats.allEvents === b + 1",
                           arg=before, timeout=15000)
    page.click("#live")
    assert json.loads(json.dumps(page.evaluate("window.maltrail.stats.allEvents"))) == before + 1


LOOKUPS = [  # event trail -> what the context lookups ask about (never the resolver or another address)
    ("evil.example", {"kind": "domain", "value": "evil.example"}),
    ("(evil.example)/gate.php", {"kind": "domain", "value": "evil.example"}),
    ("evil.example(/gate.php (POST a=1))", {"kind": "domain", "value": "evil.example"}),
    ("evil.example/x/y.php(?id=1)", {"kind": "domain", "value": "evil.example"}),
    ("93.184.216.34", {"kind": "ip", "value": "93.184.216.34"}),
    ("93.184.216.34:4444", {"kind": "ip", "value": "93.184.216.34"}),
    ("(93.184.216.34)/shell.php", {"kind": "ip", "value": "93.184.216.34"}),
    ("[2a00:1450::1]:443", {"kind": "ip", "value": "2a00:1450::1"}),
    ("da39a3ee5e6b4b0d3255bfef95601890afd80709", {"kind": "hash", "value": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}),
    ("10.0.0.1", None), ("Mozilla/5.0 (compatible; evil)", None), ("potential port scanning", None), ("", None),
]


def test_context_lookups_ask_about_the_trail(page):
    got = js(page, "async (m, xs) => xs.map((x) => m.cls.lookupTarget(x))", [t for t, _ in LOOKUPS])
    assert got == [expected for _, expected in LOOKUPS]
    links = js(page, "async (m) => m.cls.lookupLinks(m.cls.lookupTarget('(evil.example)/gate.php'))")
    assert [name for name, _ in links] == ["VirusTotal", "AbuseIPDB", "Shodan", "urlscan"]
    assert all("evil.example" in href for _, href in links)


def test_proof_of_work_tester_matches_the_servers_rule(page):
    """html/js/work.js's one-block SHA-256 with the precomputed rounds says "enough zero bits"
    exactly when core/server/auth.py's work_bits does, for random nonces and counters, and its
    solution is accepted by the server's rule."""
    from core.server.auth import work_bits

    rnd = random.Random(21)
    nonces = ["".join(rnd.choice("0123456789abcdef") for _ in range(56)) for _ in range(6)]
    got = page.evaluate("""async ([nonces]) => { const w = await import('/js/work.js');
        const out = [];
        for (const n of nonces) {
          const t = w.makeTester(n, 6);
          const hits = [];
          for (let c = 0; c < 3000; c++) if (t(c)) hits.push(w.hex8(c));
          out.push([hits, await w.solveWork(n, 12)]);
        }
        return out; }""", [nonces])
    for nonce, (hits, solved) in zip(nonces, got, strict=True):
        assert hits == [f"{c:08x}" for c in range(3000) if work_bits(nonce, f"{c:08x}") >= 6]
        assert work_bits(nonce, solved) >= 12
        assert all(work_bits(nonce, f"{c:08x}") < 12 for c in range(int(solved, 16)))
