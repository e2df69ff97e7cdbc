"""Pattern data for the HTTP heuristics: loads data/http_suspicious.txt, data/ua.txt and
data/ua_whitelist.txt into compiled regular expressions.

Where it sits: built once by the heuristic engine at startup; the HTTP heuristics only read it.
Bad patterns are reported in `problems` and skipped (UA entries are escaped and kept), never
fatal: a typo in a data file must not stop the sensor.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from core.config import ROOT_DIR
from core.trails.literals import Gate, required_literals, union
from core.trails.literals import gate as literal_gate

DATA_DIR = os.path.join(ROOT_DIR, "data")
HTTP_FILE = os.path.join(DATA_DIR, "http_suspicious.txt")
UA_FILE = os.path.join(DATA_DIR, "ua.txt")
UA_WHITELIST_FILE = os.path.join(DATA_DIR, "ua_whitelist.txt")
_FLAGS = re.IGNORECASE | re.DOTALL


@dataclass
class HttpPatterns:
    """Compiled HTTP heuristic patterns (see data/http_suspicious.txt for the kinds)."""

    # (description, gate: literal substrings of which one must occur in the lower-cased text, regex)
    requests: list[tuple[str, tuple[str, ...], re.Pattern[str]]] = field(default_factory=list)
    request_skip: re.Pattern[str] | None = None
    # every gate word of every request family in one alternation: no hit = nothing to run
    request_gate: Gate | None = None
    # (description, literal gate or None = always run, regex) for suspicious path names
    paths: list[tuple[str, Gate | None, re.Pattern[str]]] = field(default_factory=list)
    paths_gate: Gate | None = None  # union of the path families' literals (None: no gate)
    iot_url: re.Pattern[str] | None = None
    download_skip: re.Pattern[str] | None = None
    content_types: frozenset[str] = frozenset()
    sinkhole: re.Pattern[str] | None = None
    seized: re.Pattern[str] | None = None
    ua: re.Pattern[str] | None = None
    ua_whitelist: re.Pattern[str] | None = None
    ua_count: int = 0
    # Prefilter for `ua` (see core/trails/literals.py): an unseen User-Agent can only match
    # when it equals one of `ua_exact`, contains one of the `ua_gate` literals (in canonical
    # form), or matches `ua_slow` (the few entries without a usable literal).
    ua_exact: frozenset[str] = frozenset()
    ua_tokens: frozenset[str] = frozenset()  # entries `\bword\b`: a whole \w+ run of the UA
    ua_gate: Gate | None = None
    ua_slow: re.Pattern[str] | None = None
    problems: list[str] = field(default_factory=list)


def read_sections(path: str) -> list[tuple[str, str, list[str]]]:
    """[(kind, description, lines)] in file order."""
    sections: list[tuple[str, str, list[str]]] = []
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.startswith("[") and line.rstrip().endswith("]"):
                head = line.strip()[1:-1]
                kind, _, desc = head.partition(":")
                sections.append((kind.strip().lower(), desc.strip(), []))
            elif sections:
                sections[-1][2].append(line.strip())
    return sections


def _join(patterns: list[str], problems: list[str], where: str, escape_bad: bool = False,
          bundled: bool = False) -> re.Pattern[str] | None:
    """One alternation of `patterns`; a line that does not compile alone is reported in
    `problems` and dropped (or escaped). `bundled`: lines of the pattern file shipped with the
    code, whose lines the tests compile one by one (tests/test_heuristics.py): the usual start
    costs one compile, and each line is compiled alone only when the alternation fails."""
    if bundled and patterns:
        try:
            return re.compile(_alternation(patterns), _FLAGS)
        except re.error:
            pass
    good = []
    for pattern in patterns:
        try:
            re.compile(pattern, _FLAGS)
            good.append(pattern)
        except re.error as ex:
            problems.append(f"{where}: {pattern!r}: {ex}")
            if escape_bad:
                good.append(re.escape(pattern))
    return re.compile(_alternation(good), _FLAGS) if good else None


def _alternation(patterns: list[str]) -> str:
    return "|".join(f"(?:{pattern})" for pattern in patterns)


_EXACT = re.compile(r"\^((?:[^\\^$.|?*+()\[\]{}]|\\[.\-/])*)\$")
_TOKEN = re.compile(r"\\b(\w+)\\b")
MIN_GATE_LITERAL = 3


def _ua_prefilter(out: HttpPatterns, entries: list[str]) -> None:
    """Split the UA entries into exact names, gate literals and the rest (run on every new UA)."""
    exact: set[str] = set()
    tokens: set[str] = set()
    literals: set[str] = set()
    slow: list[str] = []
    for entry in entries:
        m = _EXACT.fullmatch(entry)
        if m:
            exact.add(re.sub(r"\\(.)", r"\1", m.group(1)).lower())
            continue
        m = _TOKEN.fullmatch(entry)
        if m:
            tokens.add(m.group(1).lower())
            continue
        try:
            re.compile(entry, _FLAGS)
        except re.error:
            entry = re.escape(entry)
        need = required_literals(entry, _FLAGS)
        if need is None or not need or min(map(len, need)) < MIN_GATE_LITERAL:
            slow.append(entry)
        else:
            literals |= need
    out.ua_exact = frozenset(exact)
    out.ua_tokens = frozenset(tokens)
    out.ua_gate = literal_gate(frozenset(literals))
    out.ua_slow = re.compile("|".join(f"(?:{entry})" for entry in slow), _FLAGS) if slow else None


def _read_list(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\r\n") for line in handle if line.strip() and not line.startswith("#")]


def load_patterns(http_file: str = HTTP_FILE, ua_file: str = UA_FILE,
                  ua_whitelist_file: str = UA_WHITELIST_FILE, extra_ua_file: str | None = None) -> HttpPatterns:
    """Compile the HTTP pattern files. A missing file raises OSError (a broken install); the
    optional `extra_ua_file` (the update's fetched list, core/update/datasets.py) adds entries
    when it exists."""
    out = HttpPatterns()
    problems = out.problems
    content_types: set[str] = set()
    path_lines: list[str] = []
    for kind, desc, lines in read_sections(http_file):
        where = f"{os.path.basename(http_file)} [{kind}{': ' + desc if desc else ''}]"
        if kind == "request":
            gate: tuple[str, ...] = ()
            if lines and lines[0].startswith("@any "):
                gate = tuple(word.replace("\\n", "\n") for word in lines[0][5:].split())
                lines = lines[1:]
            pattern = _join(lines, problems, where, bundled=True)
            if pattern is not None:
                out.requests.append((desc, gate, pattern))
        elif kind == "path":
            path_lines.extend(lines)
            pattern = _join(lines, problems, where, bundled=True)
            if pattern is not None:
                out.paths.append((desc, literal_gate(union(lines, _FLAGS)), pattern))
        elif kind == "request-skip":
            out.request_skip = _join(lines, problems, where, bundled=True)
        elif kind == "iot-url":
            out.iot_url = _join(lines, problems, where, bundled=True)
        elif kind == "download-skip":
            out.download_skip = _join(lines, problems, where, bundled=True)
        elif kind == "content-type":
            content_types.update(line.lower() for line in lines)
        elif kind == "sinkhole":
            out.sinkhole = _join(lines, problems, where, bundled=True)
        elif kind == "seized":
            out.seized = _join(lines, problems, where, bundled=True)
        else:
            problems.append(f"{where}: unknown section kind")
    out.content_types = frozenset(content_types)
    if out.paths and all(path_gate is not None for _, path_gate, _ in out.paths):
        out.paths_gate = literal_gate(union(path_lines, _FLAGS))
    if out.requests and all(gate for _, gate, _ in out.requests):
        out.request_gate = literal_gate(frozenset(word for _, words, _ in out.requests for word in words))
    ua_entries = _read_list(ua_file)
    if extra_ua_file and os.path.isfile(extra_ua_file):
        known = set(ua_entries)
        ua_entries += [entry for entry in _read_list(extra_ua_file) if entry not in known]
    out.ua_count = len(ua_entries)
    out.ua = _join(ua_entries, problems, os.path.basename(ua_file), escape_bad=True)
    _ua_prefilter(out, ua_entries)
    out.ua_whitelist = _join(_read_list(ua_whitelist_file), problems, os.path.basename(ua_whitelist_file))
    return out
