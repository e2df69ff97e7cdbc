"""STIX 2.1 import: patterns parsed by stix2-patterns mapped to trails, the rest counted by reason,
through the real update (bundle from a file and from a local HTTP server)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from core.update.intel.pattern import pattern_keys
from core.update.orchestrate import UpdateStatus
from tests.kit.intel_peers import (
    bundle,
    indicates,
    indicator,
    intel_update,
    named,
    serve_directory,
    trail_rows,
)

pytest.importorskip("stix2patterns")

MAPPED = [
    ("[domain-name:value = 'C2.Evil-Example.net']", ["c2.evil-example.net"]),
    ("[ipv4-addr:value = '198.51.100.7'] OR [ipv4-addr:value = '203.0.113.0/24']", ["198.51.100.7", "203.0.113.0/24"]),
    ("[ipv4-addr:value = '198.51.100.8/32']", ["198.51.100.8"]),
    ("[ipv6-addr:value = '2a00:1450:4001::99']", ["2a00:1450:4001::99"]),
    ("[url:value = 'https://drop.evil-example.net/gate.php']", ["drop.evil-example.net/gate.php"]),
    ("[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '198.51.100.9' "
     "AND network-traffic:dst_port = 4444]", ["198.51.100.9:4444"]),
    ("[x509-certificate:hashes.'SHA-1' = 'AABBCCDDEEFF00112233445566778899AABBCCDD']",
     ["aabbccddeeff00112233445566778899aabbccdd"]),
    ("[domain-name:value IN ('a.evil-example.net', 'b.evil-example.net')]", ["a.evil-example.net", "b.evil-example.net"]),
    ("[ipv4-addr:value ISSUBSET '198.51.100.0/24']", ["198.51.100.0/24"]),
    ("[domain-name:value = 'x.evil-example.net' OR file:name = 'a.exe']", ["x.evil-example.net"]),
    ("[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = ' EvilLoader/3.2 (x; y) ']",
     ["ua:EvilLoader/3.2 (x; y)"]),
    ("[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' IN ('Bot A/1', 'Bot B/2')]",
     ["ua:Bot A/1", "ua:Bot B/2"]),
]
REFUSED = [
    ("[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']", "file observable"),
    ("[process:name = 'evil.exe']", "process observable"),
    ("[domain-name:value = 'a.evil-example.net'] AND [ipv4-addr:value = '198.51.100.1']", "AND across observations"),
    ("[domain-name:value = 'a.evil-example.net' AND ipv4-addr:value = '198.51.100.1']", "AND across objects"),
    ("[domain-name:value MATCHES '^evil']", "MATCHES"),
    ("[url:value LIKE '%gate.php']", "LIKE"),
    ("[domain-name:value != 'good.example']", "negation"),
    ("[domain-name:value = 'a.evil-example.net'] REPEATS 5 TIMES", "qualified observation"),
    ("[domain-name:value = 'a.evil-example.net'] FOLLOWEDBY [url:value = 'http://x.example/']", "FOLLOWEDBY sequence"),
    ("[ipv6-addr:value = '2001:db8::/32']", "ipv6 network"),
    ("[network-traffic:dst_port = 445]", "network-traffic without destination address"),
    ("[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = 'EvilLoader/3.2' AND "
     "network-traffic:dst_ref.value = '198.51.100.9']", "user-agent AND other fields"),
    ("[network-traffic:extensions.'http-request-ext'.request_header.'Accept' = '*/*']", "network-traffic field"),
    ("domain-name:value = 'no brackets'", "unparseable pattern"),
    ("[" * 5000 + "]" * 5000, "pattern too long"),
    ("[" * 2000 + "]" * 2000, "unparseable pattern"),
    ("(" * 4000 + "[domain-name:value = 'a.example']" + ")" * 4000, "unparseable pattern"),
]


@pytest.mark.parametrize(("text", "keys"), MAPPED)
def test_network_patterns_map_to_trails(text, keys):
    assert pattern_keys(text) == (keys, ["file observable"] if "file:" in text else [])


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_other_patterns_are_refused_with_a_reason(text, reason):
    assert pattern_keys(text) == ([], [reason])


def _objects():
    emotet = named("malware", "Emotet")
    apt = named("intrusion-set", "APT28 - G0007")
    family = indicator("family", "[domain-name:value = 'c2.evil-example.net']")
    actor = indicator("actor", "[ipv4-addr:value = '5.252.177.20']")
    phish = indicator("phish", "[url:value = 'http://login.evil-example.org/secure/']", labels=["phishing"])
    plain = indicator("plain", "[domain-name:value = 'plain.evil-example.org']")
    revoked = indicator("revoked", "[domain-name:value = 'revoked.evil-example.org']", revoked=True)
    expired = indicator("expired", "[domain-name:value = 'old.evil-example.org']", valid_until="2020-01-01T00:00:00Z")
    snort = indicator("snort", "alert tcp any any -> any any (msg:\"x\";)", pattern_type="snort")
    filehash = indicator("hash", "[file:hashes.'SHA-256' = '" + "a" * 64 + "']")
    private = indicator("private", "[ipv4-addr:value = '10.1.2.3']")
    return [emotet, apt, family, actor, phish, plain, revoked, expired, snort, filehash, private,
            indicates(family, emotet), indicates(actor, apt), {"type": 7}, "junk"]


def test_bundle_file_through_the_update(tmp_path):
    path = tmp_path / "intel.json"
    path.write_text(json.dumps(bundle(_objects())))
    result = intel_update(tmp_path, [f"stix {path} name=Lab"])
    assert result.status is UpdateStatus.PUBLISHED, result.message
    rows = trail_rows(result)
    assert rows["c2.evil-example.net"] == ("emotet (malware)", "stix:lab")
    assert rows["5.252.177.20"] == ("apt28 (apt)", "stix:lab")
    assert rows["login.evil-example.org/secure/"] == ("phishing", "stix:lab")
    assert rows["plain.evil-example.org"] == ("malicious", "stix:lab")
    for absent in ("revoked.evil-example.org", "old.evil-example.org", "10.1.2.3"):
        assert absent not in rows
    counts = result.intel["intel:stix:lab"]
    assert counts["loaded"] == 5
    skipped = counts["skipped"]
    assert skipped["revoked"] == 1 and skipped["expired (valid_until)"] == 1
    assert skipped["pattern type snort"] == 1 and skipped["file observable"] == 1
    assert skipped["malformed object"] == 2
    assert result.rejected["stix:lab"] == {"private or reserved address": 1}  # the one row validation
    with open(result.health_file, encoding="utf-8") as handle:
        assert json.load(handle)["intel"]["intel:stix:lab"]["skipped"]["revoked"] == 1


def test_bundle_by_url_and_a_bad_bundle_keeps_the_good_copy(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "b.json").write_text(json.dumps(bundle(_objects())))
    with serve_directory(str(served)) as (base, seen):
        first = intel_update(tmp_path, [f"stix {base}/b.json name=web"])
        assert first.status is UpdateStatus.PUBLISHED, first.message
        assert trail_rows(first)["c2.evil-example.net"] == ("emotet (malware)", "stix:web")
        for bad in ("{not json", json.dumps({"type": "bundle", "objects": {"x": 1}}), "[" * 200000,
                    json.dumps(bundle([indicator(f"r{i}", f"[domain-name:value = 'r{i}.example']", revoked=True)
                                       for i in range(500)]))):
            (served / "b.json").write_text(bad)
            again = intel_update(tmp_path, [f"stix {base}/b.json name=web"])
            status = next(s for s in again.feeds if s.name == "intel:stix:web")
            assert status.status == "stale", (status, bad[:40])
            assert trail_rows(again)["c2.evil-example.net"] == ("emotet (malware)", "stix:web")
        assert seen.count("/b.json") == 5


def test_bad_source_lines_are_reported_not_raised(tmp_path):
    result = intel_update(tmp_path, ["carrier-pigeon http://x.example/", "stix", f"stix {tmp_path}/missing.json"])
    states = {s.name: (s.status, s.error) for s in result.feeds}
    assert states["intel:?"][0] == "failed"
    assert states["intel:stix:missing.json"][0] == "failed"
    assert result.rows == 0


WITHOUT_OPTIONAL = """
import json, sys
for name in ("stix2patterns", "pymispwarninglists"):  # as if requirements-intel.txt were not installed
    sys.modules[name] = None
sys.path.insert(0, sys.argv[1])
from core.config import build_config
from core.update.orchestrate import update
empty = sys.argv[2] + "/empty"
config = build_config({"TRAILS_FILE": sys.argv[2] + "/out/trails.csv", "CUSTOM_TRAILS_DIR": empty,
                       "INTEL_SOURCES": ["stix " + sys.argv[3] + " name=lab"]}, env={})
result = update(config, force=True, feeds_dir=empty, static_dir=empty, geo=False)
print(json.dumps({s.name: [s.status, s.error] for s in result.feeds}))
"""


def test_without_the_optional_packages_sources_say_what_to_install(tmp_path):
    import subprocess

    (tmp_path / "empty").mkdir()
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle(_objects())))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", WITHOUT_OPTIONAL, root, str(tmp_path), str(path)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    statuses = json.loads(out.strip().splitlines()[-1])
    assert statuses["intel:stix:lab"][0] == "skipped" and "requirements-intel.txt" in statuses["intel:stix:lab"][1]
    assert statuses["intel:warninglists"][0] == "skipped"
    assert "pymispwarninglists" in statuses["intel:warninglists"][1]


def test_two_sources_with_one_name_are_refused_not_mixed(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle(_objects())))
    result = intel_update(tmp_path, [f"stix {path} name=same", f"stix {path} name=same"])
    statuses = [(s.name, s.status) for s in result.feeds]
    assert statuses == [("intel:stix:same", "ok"), ("intel:stix:same", "failed")]
    assert "name=" in (result.feeds[1].error or "")


def test_offline_updates_skip_intel_sources(tmp_path):
    from core.config import build_config
    from core.update.orchestrate import update

    (tmp_path / "empty").mkdir()
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle(_objects())))
    config = build_config({"TRAILS_FILE": str(tmp_path / "out" / "trails.csv"), "CUSTOM_TRAILS_DIR": str(tmp_path / "empty"),
                           "INTEL_SOURCES": [f"stix {path} name=lab"]}, env={})
    result = update(config, force=True, offline=True, feeds_dir=str(tmp_path / "empty"),
                    static_dir=str(tmp_path / "empty"), geo=False)
    assert result.feeds == [] and result.intel == {}
    assert not os.path.exists(tmp_path / "out" / "intel")
