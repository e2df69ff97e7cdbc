"""Loader for the bundled static trails (trails/static/**.txt) and the shared trail-file format.

Where it sits: a source of core/update/, merged after the feeds (static entries win over feed
entries). File format (the original's): `#` comment lines (`# Reference: <url>` headers), one
indicator a line (domain, IPv4, IPv4 CIDR of at most 1024 addresses, `ip:port`, URL with or without
scheme, `/path`, or a regular expression), inline ` # comment` stripped. Info is the file name with
`_` turned into spaces plus ` (<folder>)` (top-level files have no category); reference `(static)`.
`.csv` files hold `value,info` rows with the reference `<file> (static)`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator

from core.update.feeds import expand_cidr, strip_scheme

__url__ = "(static)"
__info__ = "static trails"
__reference__ = "(static)"
STATIC_DIR = os.path.dirname(os.path.abspath(__file__))
FOLDER_ORDER = ("", "suspicious", "malicious", "malware")


def indicators(path: str) -> Iterator[str]:
    """Indicators of one trail file, normalised to trail form (scheme stripped, CIDRs expanded)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if " #" in line or "\t#" in line:
                line = line.replace("\t#", " #").split(" #", 1)[0].strip()
            if "://" in line:
                line = strip_scheme(line)
            elif "/" in line and line[0].isdigit() and line.count("/") == 1 and line.split("/")[1].isdigit():
                yield from expand_cidr(line)
                continue
            yield line


def info_from_name(filename: str, folder: str) -> str:
    name = os.path.splitext(filename)[0].replace("_", " ")
    return f"{name} ({folder})" if folder else name


def _ordered(names: list[str]) -> list[str]:
    """Files with "history" in the name first, so the current lists win on conflicts."""
    return sorted(names, key=lambda name: ("history" not in name, name))


def load(static_dir: str = STATIC_DIR) -> Iterator[tuple[str, str, str]]:
    """(trail, info, reference) for every static file, in the original's precedence order."""
    for folder in FOLDER_ORDER:
        base = os.path.join(static_dir, folder)
        if not os.path.isdir(base):
            continue
        for filename in _ordered(os.listdir(base)):
            path = os.path.join(base, filename)
            if not os.path.isfile(path):
                continue
            if filename.endswith(".txt"):
                info = info_from_name(filename, folder)
                for trail in indicators(path):
                    yield trail, info, "(static)"
            elif filename.endswith(".csv"):
                reference = f"{filename} (static)"
                with open(path, encoding="utf-8", errors="replace", newline="") as handle:
                    for row in csv.reader(handle):
                        if len(row) >= 2 and row[0].strip() and not row[0].startswith("#"):
                            yield row[0].strip(), row[1].strip(), reference


def fetch(static_dir: str = STATIC_DIR) -> dict[str, tuple[str, str]]:
    """The original's contract: every static trail as {trail: (info, reference)} (later wins)."""
    return {trail: (info, reference) for trail, info, reference in load(static_dir)}
