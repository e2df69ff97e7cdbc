"""The one severity rule on the Python side (core/events/severity.py) against the shared cases
file tests/data/severity_cases.json, which the browser test (tests/test_web_units.py) reads too;
plus the default table itself and the pattern the server hands to the page."""

from __future__ import annotations

import html
import json
import os
import re

import pytest

from core.events.severity import LEVELS, TABLE, Severity, default_pattern, severity_pattern
from core.server.static import StaticFiles

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_FILE = os.path.join(HERE, "data", "severity_cases.json")


def load_cases() -> tuple[dict[str, str], list[dict[str, str | None]]]:
    with open(CASES_FILE, encoding="utf-8") as handle:
        doc = json.load(handle)
    return doc["patterns"], doc["cases"]


PATTERNS, CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['pattern']}:{c['info']}|{c['reference']}")
def test_shared_cases(case):
    pattern = PATTERNS[case["pattern"]] if case["pattern"] else None
    assert Severity(pattern)(case["info"], case["reference"]) == case["severity"]


def test_default_table_is_the_default_pattern():
    with open(TABLE, encoding="utf-8") as handle:
        levels = json.load(handle)["levels"]
    assert set(levels) == set(LEVELS)
    compiled = re.compile(default_pattern())
    assert set(compiled.groupindex) == set(LEVELS)
    assert severity_pattern(None) == severity_pattern("") == default_pattern()
    assert severity_pattern("(?P<high>x)") == "(?P<high>x)"
    for level, patterns in levels.items():      # every entry rates at its own level on its own
        for entry in patterns:
            sample = {"(remote )?custom\\)": "custom)", "malware(?! (distribution|site))": "malware"}.get(entry, entry)
            assert Severity(None)(sample, "") == level, entry


def test_every_level_of_the_cases_is_covered():
    for pattern in [None, *PATTERNS]:
        seen = {c["severity"] for c in CASES if c["pattern"] == pattern}
        assert seen == set(LEVELS), pattern


def test_page_carries_the_pattern_escaped(tmp_path):
    root = tmp_path / "html"
    root.mkdir()
    (root / "index.html").write_text('<meta name="mt-severity" content="<!SEVERITY!>">')
    pattern = '(?P<high>a"b<c>)|(?P<low>&x)'
    static = StaticFiles(str(root), "1", severity_pattern=pattern)
    page = static._template((root / "index.html").read_bytes()).decode()
    assert page == f'<meta name="mt-severity" content="{html.escape(pattern, quote=True)}">'
    assert html.unescape(page.split('content="')[1].rsplit('"', 1)[0]) == pattern
