"""Event severity (low / medium / high): the one rule behind syslog CEF, Logstash JSON, the alert
webhook and the web client.

Where it sits: built once from the configuration (`REMOTE_SEVERITY_REGEX`, or when it is unset the
default table `data/severity.json`) and called per event by the remote sinks (core/events/remote.py)
and the alert follower (core/server/alerts.py); the server also hands the same pattern to the
browser (core/server/static.py), whose `Severity` in html/js/classify.js applies it the same way.

The rule: the pattern's named groups `high`, `medium` and `low` are searched, case-insensitively,
in the event's info and in its reference; every match counts and the highest level matched wins;
an event that matches no group is medium. tests/data/severity_cases.json holds the cases both
sides are tested against.
"""

from __future__ import annotations

import json
import os
import re

from core.config import ROOT_DIR

LEVELS = ("low", "medium", "high")
DEFAULT_LEVEL = "medium"
TABLE = os.path.join(ROOT_DIR, "data", "severity.json")


def default_pattern(path: str = TABLE) -> str:
    """The table as one REMOTE_SEVERITY_REGEX-style pattern: `(?P<high>a|b)|(?P<medium>..)|(?P<low>..)`."""
    with open(path, encoding="utf-8") as handle:
        levels: dict[str, list[str]] = json.load(handle)["levels"]
    return "|".join(f"(?P<{level}>{'|'.join(levels[level])})" for level in reversed(LEVELS) if levels.get(level))


def severity_pattern(configured: str | None) -> str:
    """The pattern in force: REMOTE_SEVERITY_REGEX when set, else the default table."""
    return configured or default_pattern()


class Severity:
    """(info, reference) -> "low" / "medium" / "high" under one pattern."""

    def __init__(self, pattern: str | None) -> None:
        self.pattern = severity_pattern(pattern)
        self.regex = re.compile(self.pattern, re.IGNORECASE)

    def __call__(self, info: str, reference: str) -> str:
        best = -1
        for text in (info, reference):
            if not text:
                continue
            for match in self.regex.finditer(text):
                groups = match.groupdict()
                for rank in range(len(LEVELS) - 1, best, -1):
                    if groups.get(LEVELS[rank]):
                        best = rank
                        break
        return LEVELS[best] if best >= 0 else DEFAULT_LEVEL
