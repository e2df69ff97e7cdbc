"""Loader for custom trails: the `*.txt` files of CUSTOM_TRAILS_DIR (default trails/custom/).

Where it sits: the last source of core/update/, so custom entries win over feed and static
entries. Same file format as trails/static/ (one indicator a line, `#` comments, CIDRs of at most
1024 addresses expanded); info is the file name with `_` turned into spaces (no category), the
reference `(custom)`. Remote lists named by CUSTOM_TRAILS_URL are fetched by core/update/feedrun.py with
info `blacklisted` and reference `(remote custom)`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from trails.static import indicators

__url__ = "(custom)"
__info__ = "custom trails"
__reference__ = "(custom)"
CUSTOM_DIR = os.path.dirname(os.path.abspath(__file__))


def load(custom_dir: str | None = None) -> Iterator[tuple[str, str, str]]:
    """(trail, info, "(custom)") for every `*.txt` file in the folder, in name order."""
    base = custom_dir or CUSTOM_DIR
    if not os.path.isdir(base):
        return
    for filename in sorted(os.listdir(base)):
        path = os.path.join(base, filename)
        if filename.endswith(".txt") and os.path.isfile(path):
            info = os.path.splitext(filename)[0].replace("_", " ")
            for trail in indicators(path):
                yield trail, info, "(custom)"


def fetch(custom_dir: str | None = None) -> dict[str, tuple[str, str]]:
    return {trail: (info, reference) for trail, info, reference in load(custom_dir)}
