"""Helpers for the intel tests: STIX object builders, a static HTTP server for MISP feeds and bundles,
and the update run with only the intel sources (no feeds, no static trails)."""

from __future__ import annotations

import csv
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.config import build_config
from core.update.orchestrate import UpdateResult, update

NOW = "2026-01-01T00:00:00.000Z"


def sid(kind: str, label: str) -> str:
    return f"{kind}--{uuid.uuid5(uuid.NAMESPACE_URL, label)}"


def indicator(label: str, pattern: str, **extra: Any) -> dict[str, Any]:
    obj = {"type": "indicator", "spec_version": "2.1", "id": sid("indicator", label), "created": NOW,
           "modified": NOW, "pattern": pattern, "pattern_type": "stix", "valid_from": NOW,
           "indicator_types": ["malicious-activity"]}
    obj.update(extra)
    return obj


def named(kind: str, name: str) -> dict[str, Any]:
    obj = {"type": kind, "spec_version": "2.1", "id": sid(kind, name), "created": NOW, "modified": NOW,
           "name": name}
    if kind == "malware":
        obj["is_family"] = True
    return obj


def indicates(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    return {"type": "relationship", "spec_version": "2.1", "id": sid("relationship", source["id"] + target["id"]),
            "created": NOW, "modified": NOW, "relationship_type": "indicates",
            "source_ref": source["id"], "target_ref": target["id"]}


def bundle(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}


class _Quiet(SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()


@contextmanager
def serve_directory(path: str) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 serving `path`; yields (base URL, request paths seen)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=path))
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def intel_update(tmp_path: Any, sources: list[str], **extra: str) -> UpdateResult:
    """One forced update whose only sources are `sources` (INTEL_SOURCES lines)."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    raw: dict[str, Any] = {"TRAILS_FILE": str(tmp_path / "out" / "trails.csv"), "FEED_TIMEOUT": "5",
                           "CUSTOM_TRAILS_DIR": str(empty), "INTEL_SOURCES": sources, "IP_MINIMUM_FEEDS": "1",
                           "INTEL_WARNINGLISTS": "false"}  # the filter's own tests turn it on
    raw.update(extra)
    config = build_config(raw, env={})
    return update(config, force=True, feeds_dir=str(empty), static_dir=str(empty), retries=1, backoff=0.05,
                  geo=False)


def trail_rows(result: UpdateResult) -> dict[str, tuple[str, str]]:
    if not os.path.exists(result.path):
        return {}
    with open(result.path, encoding="utf-8", newline="") as handle:
        return {row[0]: (row[1], row[2]) for row in csv.reader(handle)}
