"""TAXII 2.1 import against a real server (medallion, the OASIS reference server, memory backend):
paging with `next`, `added_after` on refresh, objects kept between updates, revocations, auth."""

from __future__ import annotations

import re

import pytest

from core.update.orchestrate import UpdateStatus
from tests.kit.intel_peers import Medallion, indicates, indicator, intel_update, named, trail_rows

pytest.importorskip("medallion")
pytest.importorskip("stix2patterns")


def _status(result, name):
    return next(s for s in result.feeds if s.name == name)


def test_collection_is_paged_then_refreshed_with_added_after(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_TAXII_PASSWORD", Medallion.PASSWORD)
    server_dir = tmp_path / "taxii"
    server_dir.mkdir()
    with Medallion(str(server_dir)) as taxii:
        family = named("malware", "QakBot")
        first = [indicator(f"d{i}", f"[domain-name:value = 'c2-{i}.evil-example.net']") for i in range(5)]
        taxii.add([family, *first, indicates(first[0], family)])
        line = f"taxii {taxii.collection_url} user={Medallion.USER} password=env:TEST_TAXII_PASSWORD limit=2 name=cti"

        result = intel_update(tmp_path, [line])
        assert result.status is UpdateStatus.PUBLISHED, result.message
        rows = trail_rows(result)
        assert rows["c2-0.evil-example.net"] == ("qakbot (malware)", "taxii:cti")
        assert rows["c2-4.evil-example.net"] == ("malicious", "taxii:cti")
        first_requests = re.findall(r'"GET (/api1/collections/[^ ]+) HTTP', taxii.log())
        assert len(first_requests) == 4  # 7 objects, 2 a page
        assert all("limit=2" in path and "match[type]=indicator,relationship" in path
                   for path in first_requests)
        assert sum("next=" in path for path in first_requests) == 3
        assert not any("added_after" in path for path in first_requests)

        revoked = dict(first[1], modified="2026-02-01T00:00:00.000Z", revoked=True)
        later = indicator("late", "[ipv4-addr:value = '5.252.177.31']")
        taxii.add([revoked, later])
        again = intel_update(tmp_path, [line])
        assert again.status is UpdateStatus.PUBLISHED, again.message
        rows = trail_rows(again)
        assert "c2-1.evil-example.net" not in rows  # revoked since
        assert rows["5.252.177.31"] == ("malicious", "taxii:cti")
        assert rows["c2-0.evil-example.net"] == ("qakbot (malware)", "taxii:cti")  # kept from the first fetch
        assert rows["c2-3.evil-example.net"] == ("malicious", "taxii:cti")
        refresh = re.findall(r'"GET (/api1/collections/[^ ]+) HTTP', taxii.log())[len(first_requests):]
        assert len(refresh) == 1 and "added_after=" in refresh[0]
        assert again.intel["intel:taxii:cti"]["skipped"] == {"revoked": 1}


def test_wrong_password_and_a_dead_server_keep_the_last_good_copy(tmp_path):
    server_dir = tmp_path / "taxii"
    server_dir.mkdir()
    with Medallion(str(server_dir)) as taxii:
        taxii.add([indicator(f"d{i}", f"[domain-name:value = 'x{i}.evil-example.net']") for i in range(3)])
        good = f"taxii {taxii.collection_url} user={Medallion.USER} password={Medallion.PASSWORD} name=cti"
        assert intel_update(tmp_path, [good]).status is UpdateStatus.PUBLISHED
        bad = intel_update(tmp_path, [good.replace(Medallion.PASSWORD, "wrong")])
        status = _status(bad, "intel:taxii:cti")
        assert status.status == "stale" and "HTTP 401" in (status.error or "")
        assert "x2.evil-example.net" in trail_rows(bad)
    dead = intel_update(tmp_path, [good])
    assert _status(dead, "intel:taxii:cti").status == "stale"
    assert "x0.evil-example.net" in trail_rows(dead)
