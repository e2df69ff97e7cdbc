"""MISP warning lists (the lists pymispwarninglists ships) drop known-good values from every intel
source, counted per list; INTEL_WARNINGLISTS false turns the filter off."""

from __future__ import annotations

import json

import pytest

from core.update.intel.warninglists import WarningFilter
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

pytest.importorskip("pymispwarninglists")
pytest.importorskip("stix2patterns")

RESOLVERS = "List of known IPv4 public DNS resolvers"


def _bundle(path):
    patterns = {
        "resolver": "[ipv4-addr:value = '8.8.8.8']",
        "resolver-port": "[network-traffic:dst_ref.value = '1.1.1.1' AND network-traffic:dst_port = 53]",
        "top": "[domain-name:value = 'google.com']",
        "root": "[url:value = 'https://google.com/']",
        "hosted": "[url:value = 'https://bit.ly/3xPhish']",
        "evil": "[domain-name:value = 'c2.evil-example.net']",
        "ddns": "[domain-name:value = 'implant-7.duckdns.org']",
        "ip": "[ipv4-addr:value = '5.252.177.20']",
    }
    path.write_text(json.dumps(bundle([indicator(label, pattern) for label, pattern in patterns.items()])))


def test_known_good_values_are_dropped_and_counted_per_list(tmp_path):
    path = tmp_path / "b.json"
    _bundle(path)
    result = intel_update(tmp_path, [f"stix {path} name=lab"], INTEL_WARNINGLISTS="true")
    rows = trail_rows(result)
    for dropped in ("8.8.8.8", "1.1.1.1:53", "google.com", "google.com/"):
        assert dropped not in rows
    for kept in ("c2.evil-example.net", "5.252.177.20", "implant-7.duckdns.org",  # subdomains are not listed values
                 "bit.ly/3xphish"):  # a path on a listed host
        assert kept in rows, kept
    skipped = result.intel["intel:stix:lab"]["skipped"]
    assert skipped[f"warning list: {RESOLVERS}"] == 2
    assert sum(n for reason, n in skipped.items() if reason.startswith("warning list:")) == 4


def test_the_filter_applies_to_misp_feeds_too_and_can_be_turned_off(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    write_misp_feed(str(feed), [misp_event("resolver noise", [misp_attribute("ip-dst", "1.0.145.175"),
                                                              misp_attribute("ip-dst", "45.95.147.236")])])
    with serve_directory(str(feed)) as (base, _seen):
        on = intel_update(tmp_path / "on", [f"misp-feed {base} name=f"], INTEL_WARNINGLISTS="true")
        assert "1.0.145.175" not in trail_rows(on) and "45.95.147.236" in trail_rows(on)
        assert on.intel["intel:misp-feed:f"]["skipped"] == {f"warning list: {RESOLVERS}": 1}
        off = intel_update(tmp_path / "off", [f"misp-feed {base} name=f"], INTEL_WARNINGLISTS="false")
        assert "1.0.145.175" in trail_rows(off)  # an open resolver the project whitelist does not name


def test_lists_in_the_package_layout_and_their_matching(tmp_path):
    for name, body in {
        "nets": {"name": "nets", "type": "cidr", "matching_attributes": ["ip-dst"],
                 "list": ["203.0.113.0/24", "2001:db8::/32", "bogus/99"]},
        "hosts": {"name": "hosts", "type": "hostname", "matching_attributes": ["hostname"], "list": [".example.com"]},
        "emails": {"name": "emails", "type": "substring", "matching_attributes": ["email-src"], "list": ["@x"]},
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "list.json").write_text(json.dumps(body))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "list.json").write_text("{")
    lists = WarningFilter.load(lists_dir=str(tmp_path))
    assert lists.lists == 2 and lists.problem is None
    assert lists.listed("203.0.113.9") == lists.listed("[2001:db8::1]:443") == "nets"
    assert lists.listed("203.0.113.0/25") == "nets"
    assert lists.listed("example.com") == "hosts" and lists.listed("a.example.com") is None
    assert lists.listed("example.com/login.php") is None and lists.listed("example.com/") == "hosts"
    assert lists.listed("198.18.0.1") is None
    assert WarningFilter.load(enabled=False).enabled is False
    empty = WarningFilter.load(lists_dir=str(tmp_path / "none"))
    assert not empty.enabled and "no warning lists" in (empty.problem or "")
