"""MISP import: a feed directory (manifest + events) served over HTTP, only changed events fetched
again; the REST API's restSearch answered with a saved MISP response."""

from __future__ import annotations

import json
import os

from core.update.orchestrate import UpdateStatus
from tests.kit.intel_peers import (
    MispRest,
    intel_update,
    misp_attribute,
    misp_event,
    serve_directory,
    trail_rows,
    write_misp_feed,
)


def ja4_object(variant, fingerprint):
    """A MISP `ja4-plus` object: the fingerprint (a `text` attribute) and, when given, its `ja4-type`."""
    attributes = [misp_attribute("text", fingerprint, object_relation="ja4-fingerprint")]
    if variant is not None:
        attributes.append(misp_attribute("text", variant, to_ids=False, object_relation="ja4-type"))
    return {"name": "ja4-plus", "meta-category": "network", "Attribute": attributes}


def _events(stamp: int = 1764547200):
    botnet = misp_event("Mirai C2 servers", [
        misp_attribute("ip-dst", "45.95.147.236"),
        misp_attribute("ip-dst|port", "45.95.147.237|23"),
        misp_attribute("hostname", "cnc.evil-example.net"),
        misp_attribute("domain", "context.example.org", to_ids=False),
        misp_attribute("md5", "d41d8cd98f00b204e9800998ecf8427e"),
    ], tags=("tlp:white", 'misp-galaxy:botnet="Mirai"'), stamp=stamp)
    phishing = misp_event("Bank phishing wave", [
        misp_attribute("url", "http://bank-verify.evil-example.org/login.php"),
        misp_attribute("uri", "/wp-admin/css/verify.php"),
        misp_attribute("domain", "deleted.evil-example.org", deleted=True),
    ], tags=("circl:incident-classification=\"phishing\"",),
        objects=[ja4_object("JA4", "t13d1517h2_8daaf6152771_b1ff8ab2d16f"),  # the phishing kit's TLS client
                 ja4_object("JA4S", "t130200_1301_a56c5b993250"),
                 ja4_object(None, "t13d1715h2_5b57614c22b0_93c746dc12af")])
    actor = misp_event("Sandworm tooling", [misp_attribute("domain|ip", "ns.evil-example.com|185.141.62.41")],
                       objects=[{"name": "ip-port", "Attribute": [misp_attribute("ip-dst", "185.141.62.42"),
                                                                  misp_attribute("port", "443")]}],
                       tags=('misp-galaxy:threat-actor="Sandworm"',))
    return botnet, phishing, actor


def test_misp_feed_fetches_only_changed_events(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    botnet, phishing, actor = _events()
    write_misp_feed(str(feed), [botnet, phishing, actor])
    with serve_directory(str(feed)) as (base, seen):
        line = f"misp-feed {base}/ name=circl"
        result = intel_update(tmp_path, [line])
        assert result.status is UpdateStatus.PUBLISHED, result.message
        rows = trail_rows(result)
        assert rows["45.95.147.236"] == ("mirai (malware)", "misp:circl")
        assert rows["45.95.147.237:23"] == ("mirai (malware)", "misp:circl")
        assert rows["cnc.evil-example.net"] == ("mirai (malware)", "misp:circl")
        assert rows["bank-verify.evil-example.org/login.php"] == ("phishing", "misp:circl")
        assert rows["/wp-admin/css/verify.php"] == ("phishing", "misp:circl")
        assert rows["ns.evil-example.com"] == ("sandworm (apt)", "misp:circl")
        assert rows["185.141.62.41"] == rows["185.141.62.42"] == ("sandworm (apt)", "misp:circl")
        assert "context.example.org" not in rows and "deleted.evil-example.org" not in rows
        # ja4-plus objects: the JA4 variant loads (by its ja4-type, or by its shape without one); JA4S is counted
        assert rows["t13d1517h2_8daaf6152771_b1ff8ab2d16f"] == ("phishing", "misp:circl")
        assert rows["t13d1715h2_5b57614c22b0_93c746dc12af"] == ("phishing", "misp:circl")
        assert "t130200_1301_a56c5b993250" not in rows
        skipped = result.intel["intel:misp-feed:circl"]["skipped"]
        assert skipped == {"to_ids false": 3, "deleted": 1, "attribute type without trail": 2,
                           "ja4+ variant other than JA4": 1}
        assert len([path for path in seen if path.endswith(".json")]) == 4

        # one event changed, one removed, one added: only the changed and the new one are downloaded
        changed = misp_event("Mirai C2 servers", [misp_attribute("ip-dst", "45.95.147.250")],
                             tags=('misp-galaxy:botnet="Mirai"',), stamp=1764633600)
        added = misp_event("Emotet spam run", [misp_attribute("url", "https://docs.evil-example.com/inv.doc")],
                           tags=('misp-galaxy:malpedia="Emotet"',))
        for name in os.listdir(feed):
            os.unlink(feed / name)
        write_misp_feed(str(feed), [changed, phishing, added])
        seen.clear()
        again = intel_update(tmp_path, [line])
        assert again.status is UpdateStatus.PUBLISHED, again.message
        fetched = sorted(path for path in seen if path.endswith(".json"))
        uuid_of = {event["Event"]["info"]: event["Event"]["uuid"] for event in (changed, added)}
        assert fetched == sorted(["/manifest.json", f"/{uuid_of['Mirai C2 servers']}.json",
                                  f"/{uuid_of['Emotet spam run']}.json"])
        rows = trail_rows(again)
        assert rows["45.95.147.250"] == ("mirai (malware)", "misp:circl")
        assert "45.95.147.236" not in rows and "ns.evil-example.com" not in rows
        assert rows["bank-verify.evil-example.org/login.php"] == ("phishing", "misp:circl")  # kept, not fetched
        assert rows["docs.evil-example.com/inv.doc"] == ("emotet (malware)", "misp:circl")


def test_misp_feed_hostile_bodies_never_replace_the_good_copy(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    write_misp_feed(str(feed), list(_events()))
    with serve_directory(str(feed)) as (base, _seen):
        line = f"misp-feed {base} name=botvrij"
        assert intel_update(tmp_path, [line]).status is UpdateStatus.PUBLISHED
        for bad in ("[1, 2, 3]", "{" * 100000, "<html><body>maintenance</body></html>", '{"x": '):
            (feed / "manifest.json").write_text(bad)
            result = intel_update(tmp_path, [line])
            status = next(s for s in result.feeds if s.name == "intel:misp-feed:botvrij")
            assert status.status == "stale", (bad[:20], status)
            assert trail_rows(result)["cnc.evil-example.net"] == ("mirai (malware)", "misp:botvrij")


def test_misp_rest_search_with_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_MISP_KEY", "k" * 40)
    with MispRest("k" * 40) as misp:
        line = f"misp {misp.url} key=env:TEST_MISP_KEY tags=tlp:white,!tlp:red last=30d name=cert"
        result = intel_update(tmp_path, [line])
        assert result.status is UpdateStatus.PUBLISHED, result.message
        search = misp.searches[0]
        assert search["returnFormat"] == "json" and search["to_ids"] == 1 and search["enforceWarninglist"] == 1
        assert search["tags"] == ["tlp:white", "!tlp:red"] and search["last"] == "30d"
        rows = trail_rows(result)
        assert rows["update.evil-example.com"] == ("emotet (malware)", "misp:cert")
        assert rows["91.215.85.17:8080"] == ("emotet (malware)", "misp:cert")
        assert rows["secure-login.evil-example.org/office365/index.php"] == ("phishing", "misp:cert")
        assert rows["9f2a5c7e1b3d4f6a8c0e2b4d6f8a0c2e4b6d8f0a"] == ("apt28 (apt)", "misp:cert")
        assert rows["72a589da586844d7f0818ce684948eea"] == ("apt28 (apt)", "misp:cert")
        assert rows["mail-gov.evil-example.com"] == rows["185.141.62.40"] == ("apt28 (apt)", "misp:cert")
        assert "cdn.example.net" not in rows
        # a ja4-plus fingerprint without its ja4-type in the answer: a JA4's shape loads, a JA4H is counted
        assert rows["t13d1516h2_8daaf6152771_02713d6af862"] == ("apt28 (apt)", "misp:cert")
        # a user-agent attribute: an exact User-Agent trail (docs/trails.md)
        assert rows["ua:Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1)"] == ("malicious", "misp:cert")
        assert result.intel["intel:misp:cert"]["skipped"] == {
            "to_ids false": 1, "attribute type without trail": 1, "ja4+ fingerprint not a JA4": 1}

        wrong = intel_update(tmp_path, [line.replace("env:TEST_MISP_KEY", "wrong-key")])
        status = next(s for s in wrong.feeds if s.name == "intel:misp:cert")
        assert status.status == "stale" and "HTTP 403" in (status.error or "")
        unset = intel_update(tmp_path, [f"misp {misp.url} key=env:TEST_MISP_UNSET name=cert"])
        assert next(s for s in unset.feeds if s.name == "intel:misp:cert").status == "skipped"
    with open(result.health_file, encoding="utf-8") as handle:
        assert "k" * 40 not in handle.read()  # the key never reaches the report
    assert json.dumps(misp.searches).count("k" * 40) == 0


def test_a_feed_larger_than_the_cap_is_imported_over_several_updates(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    events = [misp_event(f"big {n}", [misp_attribute("domain", f"big-{n}.evil-example.net", comment="x" * 400_000)])
              for n in range(3)]
    write_misp_feed(str(feed), events)
    with serve_directory(str(feed)) as (base, _seen):
        first = intel_update(tmp_path, [f"misp-feed {base} name=big"], FEED_MAX_SIZE="1MB")
        assert first.intel["intel:misp-feed:big"]["skipped"] == {"event download failed": 1}
        assert len(trail_rows(first)) == 2
        second = intel_update(tmp_path, [f"misp-feed {base} name=big"], FEED_MAX_SIZE="1MB")
        assert second.intel["intel:misp-feed:big"]["skipped"] == {}
        assert {f"big-{n}.evil-example.net" for n in range(3)} <= set(trail_rows(second))
