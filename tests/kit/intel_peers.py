"""Helpers for the intel tests: STIX object builders, a static HTTP server for MISP feeds and bundles,
and the update run with only the intel sources (no feeds, no static trails)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from core.config import build_config
from core.update.orchestrate import UpdateResult, update
from tests.kit.ports import free_port
from tests.kit.server import ROOT

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
    empty.mkdir(parents=True, exist_ok=True)
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


# --- a real TAXII 2.1 server: medallion (the OASIS reference server) with its memory backend -----

TAXII_MEDIA = "application/taxii+json;version=2.1"
COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"


class Medallion:
    """`medallion` in a child process on 127.0.0.1 (memory backend, one collection, one user);
    objects are added through its TAXII API (`add`); `log()` is its request log."""

    USER, PASSWORD = "analyst", "s3cret-Pass"

    def __init__(self, directory: str, page_size: int = 100) -> None:
        self.directory = directory
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.collection_url = f"{self.base}/api1/collections/{COLLECTION}/"
        data = {
            "/discovery": {"title": "test", "default": f"{self.base}/api1/", "api_roots": [f"{self.base}/api1/"]},
            "api1": {"information": {"title": "api1", "versions": [TAXII_MEDIA], "max_content_length": 50 << 20},
                     "status": [],
                     "collections": [{"id": COLLECTION, "title": "indicators", "can_read": True, "can_write": True,
                                      "media_types": ["application/stix+json;version=2.1"], "objects": [],
                                      "manifest": []}]},
        }
        with open(os.path.join(directory, "data.json"), "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        config = {"backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                              "filename": os.path.join(directory, "data.json")},
                  "users": {self.USER: self.PASSWORD}, "taxii": {"max_page_size": page_size}}
        with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        self.log_path = os.path.join(directory, "medallion.log")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Medallion:
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes it until stopped
        self.process = subprocess.Popen(
            [sys.executable, "-m", "medallion.scripts.run", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "INFO", os.path.join(self.directory, "config.json")],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/taxii2/", auth=(self.USER, self.PASSWORD),
                                headers={"Accept": TAXII_MEDIA}, timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("medallion did not start: " + open(self.log_path, encoding="utf-8").read()[-2000:])

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def add(self, objects: list[dict[str, Any]]) -> None:
        response = requests.post(self.collection_url + "objects/", auth=(self.USER, self.PASSWORD),
                                 headers={"Accept": TAXII_MEDIA, "Content-Type": TAXII_MEDIA},
                                 data=json.dumps({"objects": objects}), timeout=10)
        assert response.status_code == 202, response.text
        assert response.json()["failure_count"] == 0, response.text

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()


# --- MISP: a feed directory and a REST endpoint answering restSearch with a saved response ------

SAVED_RESTSEARCH = os.path.join(ROOT, "tests", "data", "intel", "misp_restsearch.json")


def misp_attribute(kind: str, value: str, to_ids: bool = True, **extra: Any) -> dict[str, Any]:
    attribute = {"uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, kind + value)), "type": kind, "category": "Network activity",
                 "value": value, "to_ids": to_ids, "timestamp": "1764547200", "distribution": "5", "deleted": False}
    attribute.update(extra)
    return attribute


def misp_event(info: str, attributes: list[dict[str, Any]], tags: tuple[str, ...] = (), stamp: int = 1764547200,
               objects: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"Event": {"uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, info)), "info": info, "date": "2026-12-01",
                      "timestamp": str(stamp), "analysis": "2", "threat_level_id": "1", "published": True,
                      "Orgc": {"name": "Test CERT", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
                      "Tag": [{"name": tag, "colour": "#004646", "exportable": True} for tag in tags],
                      "Attribute": attributes, "Object": objects or []}}


def write_misp_feed(directory: str, events: list[dict[str, Any]]) -> None:
    """manifest.json plus one <uuid>.json per event, as MISP's feed generator lays them out."""
    manifest = {}
    for event in events:
        body = event["Event"]
        manifest[body["uuid"]] = {"info": body["info"], "date": body["date"], "analysis": 2, "threat_level_id": 1,
                                  "timestamp": int(body["timestamp"]), "Orgc": body["Orgc"], "Tag": body["Tag"]}
        with open(os.path.join(directory, f"{body['uuid']}.json"), "w", encoding="utf-8") as handle:
            json.dump(event, handle)
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)


class MispRest:
    """POST /attributes/restSearch answered with a saved MISP response when the Authorization key
    matches (403 otherwise); `searches` holds the JSON bodies received."""

    def __init__(self, key: str, body_path: str = SAVED_RESTSEARCH) -> None:
        self.key, self.body_path = key, body_path
        self.searches: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/attributes/restSearch" or self.headers.get("Authorization") != outer.key:
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.searches.append(json.loads(body))
                with open(outer.body_path, "rb") as handle:
                    answer = handle.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MispRest:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
