"""Hostile and malformed intel: oversized bodies, wrong types, endless paging, floods of unparseable or
revoked indicators. Each is refused or counted; none crashes the update or replaces a good copy."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.update.orchestrate import UpdateStatus
from tests.kit.intel_peers import (
    bundle,
    indicator,
    intel_update,
    misp_attribute,
    misp_event,
    serve_directory,
    trail_rows,
    write_misp_feed,
)

pytest.importorskip("stix2patterns")

GOOD = [indicator(f"g{i}", f"[domain-name:value = 'good-{i}.evil-example.net']") for i in range(20)]


def _status(result, name):
    return next(s for s in result.feeds if s.name == name)


def test_oversized_bundles_are_refused_by_url_and_by_path(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "b.json").write_text(json.dumps(bundle(GOOD)))
    with serve_directory(str(www)) as (base, _seen):
        sources = [f"stix {base}/b.json name=web", f"stix {www / 'b.json'} name=disk"]
        assert intel_update(tmp_path, sources, FEED_MAX_SIZE="1MB").status is UpdateStatus.PUBLISHED
        huge = bundle(GOOD + [indicator(f"pad{i}", "[domain-name:value = 'x.example']", description="p" * 4096)
                              for i in range(600)])
        (www / "b.json").write_text(json.dumps(huge))  # 2.5 MB against a 1 MB cap
        result = intel_update(tmp_path, sources, FEED_MAX_SIZE="1MB")
        for name in ("intel:stix:web", "intel:stix:disk"):
            status = _status(result, name)
            assert status.status == "stale" and "cap" in (status.error or ""), status
        assert "good-3.evil-example.net" in trail_rows(result)
        raised = intel_update(tmp_path / "raised", [f"stix {www / 'b.json'} name=disk max_size=4MB"],
                              FEED_MAX_SIZE="1MB")
        assert _status(raised, "intel:stix:disk").status == "ok"  # a source's own cap (docs/intel.md)
        bad = intel_update(tmp_path / "bad", [f"stix {www / 'b.json'} name=disk max_size=lots"])
        assert _status(bad, "intel:?").status == "failed"


def test_wrong_types_everywhere_are_counted(tmp_path):
    hostile = [
        {"type": "indicator", "id": 9, "pattern": "[domain-name:value = 'a.example']"},
        {"type": "indicator", "id": "indicator--1", "pattern": 5},
        {"type": "indicator", "id": "indicator--2", "pattern": ["x"], "labels": {"a": 1}},
        {"type": "indicator", "id": "indicator--3", "pattern": "[domain-name:value = 'typed.evil-example.net']",
         "labels": {"a": 1}, "modified": 7, "valid_until": [], "revoked": "yes"},
        {"type": "relationship", "id": "relationship--1", "relationship_type": "indicates", "source_ref": 1,
         "target_ref": None},
        {"type": "malware", "id": "malware--1", "name": ["x"]},
        {"type": ["indicator"], "id": "x"},
        None, 3.5, [], "indicator",
    ]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle(GOOD + hostile)))
    result = intel_update(tmp_path, [f"stix {path} name=lab"])
    assert result.status is UpdateStatus.PUBLISHED, result.message
    rows = trail_rows(result)
    assert "typed.evil-example.net" in rows and "good-0.evil-example.net" in rows
    skipped = result.intel["intel:stix:lab"]["skipped"]
    assert skipped["malformed object"] == 6 and skipped["no pattern"] == 2


def test_unparseable_flood_is_counted_and_revoked_flood_keeps_the_good_copy(tmp_path):
    path = tmp_path / "b.json"
    flood = [indicator(f"bad{i}", f"[domain-name:value = 'x{i}.example'") for i in range(1500)]
    path.write_text(json.dumps(bundle(GOOD + flood)))
    result = intel_update(tmp_path, [f"stix {path} name=lab"])
    assert result.status is UpdateStatus.PUBLISHED
    assert result.intel["intel:stix:lab"]["skipped"] == {"unparseable pattern": 1500}
    assert len(trail_rows(result)) == 20
    revoked = [dict(obj, modified="2026-06-01T00:00:00.000Z", revoked=True) for obj in GOOD[:15]]
    path.write_text(json.dumps(bundle(revoked + GOOD[15:])))
    again = intel_update(tmp_path, [f"stix {path} name=lab"])
    status = _status(again, "intel:stix:lab")
    assert status.status == "shrunk" and "last good copy is used" in (status.error or "")
    assert len(trail_rows(again)) == 20
    assert again.intel["intel:stix:lab"]["skipped"] == {"revoked": 15}


class _EndlessTaxii(BaseHTTPRequestHandler):
    """A TAXII 'server' that always has more: every page the same 200 indicators and `more: true`."""

    page = json.dumps({"more": True, "next": "again",
                       "objects": [indicator(f"e{i}", f"[domain-name:value = 'e{i}.evil-example.net']")
                                   for i in range(200)]}).encode()
    hits = 0

    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/taxii+json;version=2.1")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)


def test_endless_taxii_paging_stops_at_the_size_cap(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessTaxii)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api1/collections/c/"
        result = intel_update(tmp_path, [f"taxii {url} name=loop"], FEED_MAX_SIZE="2MB")
    finally:
        server.shutdown()
        server.server_close()
    status = _status(result, "intel:taxii:loop")
    assert status.status == "failed" and "cap" in (status.error or "")
    assert _EndlessTaxii.hits < 100
    assert not os.path.exists(tmp_path / "out" / "intel" / "intel-taxii-loop.state.json")  # nothing half-saved


def test_misp_feed_with_wrong_types(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    good = misp_event("good", [misp_attribute("domain", "kept.evil-example.net")])
    odd = misp_event("odd", [{"type": "domain", "value": 5, "to_ids": True}, {"type": ["x"], "to_ids": True},
                             "junk", misp_attribute("ip-dst", "not-an-ip"), misp_attribute("url", "", to_ids=True),
                             misp_attribute("ip-dst|port", "45.95.147.1|99999")])
    write_misp_feed(str(feed), [good, odd])
    manifest = json.loads((feed / "manifest.json").read_text())
    manifest["../../etc/passwd"] = {"timestamp": 1}
    manifest["x" * 36] = {"timestamp": [1]}
    (feed / "manifest.json").write_text(json.dumps(manifest))
    odd_uuid = odd["Event"]["uuid"]
    (feed / f"{odd_uuid}.json").write_text(json.dumps({"Event": dict(odd["Event"], Object={"a": 1}, Tag="x")}))
    with serve_directory(str(feed)) as (base, seen):
        result = intel_update(tmp_path, [f"misp-feed {base} name=f"])
    assert result.status is UpdateStatus.PUBLISHED, result.message
    assert "kept.evil-example.net" in trail_rows(result)
    assert not any("passwd" in path for path in seen)
    skipped = result.intel["intel:misp-feed:f"]["skipped"]
    assert skipped["malformed manifest entry"] == 2
    assert skipped["malformed attribute"] == 4 and skipped["bad address"] == 1 and skipped["bad port"] == 1
