"""docs/web-client.md's page <-> worker message tables name exactly the ops the code uses: the ops
html/js/worker.js accepts and posts, and the ops html/js/main.js sends and handles."""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(rel: str) -> str:
    with open(os.path.join(ROOT, rel), encoding="utf-8") as handle:
        return handle.read()


def doc_ops(doc: str, heading: str) -> set[str]:
    """The `op` column of the table that follows `heading` in the messages section."""
    section = doc.split("## Page ↔ worker messages", 1)[1].split("\n## ", 1)[0]
    table = section.split(heading, 1)[1].split("\n\n", 2)[1]
    return {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", table, re.M)}


def test_message_tables_match_the_code():
    doc = read("docs/web-client.md")
    worker = read("html/js/worker.js")
    main = read("html/js/main.js")
    to_worker = doc_ops(doc, "Page → worker")
    to_page = doc_ops(doc, "Worker → page")
    accepted = set(re.findall(r"case '(\w+)':", worker.split("self.onmessage", 1)[1]))
    posted = set(re.findall(r"\bop: '(\w+)'", worker))
    sent = set(re.findall(r"\bop: '(\w+)'", main))
    handled = set(re.findall(r"msg\.op === '(\w+)'", main))
    assert to_worker == accepted
    assert sent <= to_worker and to_worker - sent == {"memory"}      # memory: console only
    assert to_page == posted
    assert handled <= to_page
