"""The /intel exports of a real server.py: STIX 2.1 (checked by the STIX validator), a MISP feed (read
back by the MISP feed import), a Zeek Intel file and Suricata datasets/rules (checked line by line
against the formats their documentation defines), gzip, ETag/If-None-Match, custom-trail masking."""

from __future__ import annotations

import base64
import csv
import gzip
import ipaddress
import json
import os
import re
import shutil
import subprocess

import pytest

from core.server.intel import trail_kind
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
from tests.kit.server import Server, sha

ROWS = [
    ("c2.evil-example.net", "emotet (malware)", "misp:circl"),
    ("login.evil-example.org", "phishing", "abuse.ch (+misp:circl)"),
    ("5.252.177.20", "apt28 (apt)", "taxii:cti"),
    ("2a00:1450:4001::99", "emotet (malware)", "misp:circl"),
    ("91.215.85.0/24", "malicious", "stix:lab"),
    ("91.215.85.17:8080", "emotet (malware)", "misp:circl"),
    ("[2a00:1450:4001::98]:443", "emotet (malware)", "misp:circl"),
    ("drop.evil-example.net/gate.php", "qakbot (malware)", "urlhaus"),
    ("/wp-admin/css/verify.php", "phishing", "misp:circl"),
    ("9f2a5c7e1b3d4f6a8c0e2b4d6f8a0c2e4b6d8f0a", "apt28 (apt)", "sslbl"),
    ("72a589da586844d7f0818ce684948eea", "trickbot ja3 (suspicious)", "sslbl"),
    (r"(dyn-[a-z]{4}\d?\.com)", "dga (malware)", "(static)"),
    ("o'brien.evil-example.com", "tab\there", "quote'src"),
    ("secret.internal-example.com", "operator list", "(custom)"),
    ("panel.evil-example.net:8443", "malicious", "stix:lab"),
    ("t13d1516h2_8daaf6152771_02713d6af862", "apt28 (apt)", "misp:cert"),
    ("ua:EvilLoader/3.2 (Windows NT 10.0; Win64, x64)", "evilloader (malware)", "misp:circl"),
]
MASKED = f"local:{sha('pw1')}:1000:"
SUBSCRIBER = f"mispfeed:{sha('feed-Pass-1')}:0:"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("intel"))
    with open(os.path.join(tmp, "trails.csv"), "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(ROWS)
    srv = Server(tmp, users=[f"admin:{sha('changeme!')}:0:", MASKED, SUBSCRIBER], udp=False)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(server):
    return server.login()


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _curl(server, path, user=None, password=None):
    """A real curl request (as a feed subscriber sends it): (status, body)."""
    command = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", f"http://127.0.0.1:{server.port}{path}"]
    if user is not None:
        command += ["-u", f"{user}:{password}"]
    out = subprocess.run(command, capture_output=True, timeout=30, check=True).stdout
    body, _, status = out.rpartition(b"\n")
    return int(status), body


def _get(server, path, cookie, **headers):
    return server.request("GET", path, cookie=cookie, headers=headers)


def test_exports_need_a_session(server):
    for path in ("/intel/stix", "/intel/zeek", "/intel/misp/manifest.json", "/intel/suricata/maltrail.rules"):
        assert server.get(path)[0] == 401


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_a_feed_subscriber_authenticates_with_http_basic(server, admin):
    """A MISP instance subscribing to /intel/misp sends the feed's `Authorization` header: HTTP Basic
    with a USERS account, checked like the password login form, no session kept."""
    status, body = _curl(server, "/intel/misp/manifest.json", "mispfeed", "feed-Pass-1")
    assert status == 200, body
    manifest = json.loads(body)
    assert manifest == json.loads(_get(server, "/intel/misp/manifest.json", admin)[2])
    event = next(iter(manifest))
    status, body = _curl(server, f"/intel/misp/{event}.json", "mispfeed", "feed-Pass-1")
    assert status == 200 and json.loads(body)["Event"]["uuid"] == event
    # no header: 401 naming the scheme; a cookie-less request never gets a session cookie back
    status, headers, _ = server.request("GET", "/intel/zeek")
    assert status == 401 and headers["www-authenticate"].startswith("Basic ")
    status, headers, _ = server.request("GET", "/intel/zeek", headers={"Authorization": _basic("mispfeed", "feed-Pass-1")})
    assert status == 200 and "set-cookie" not in headers
    # only the exports take it
    assert server.request("GET", "/counts", headers={"Authorization": _basic("admin", "changeme!")})[0] == 401
    # the masked account's visibility applies as for its session
    masked = server.request("GET", "/intel/zeek", headers={"Authorization": _basic("local", "pw1")})
    assert masked[0] == 200 and b"secret.internal" not in masked[2] and b"c2.evil-example.net" in masked[2]


def test_wrong_basic_credentials_count_against_the_login_throttle(server):
    for _ in range(5):  # the account+address pair's free failures (auth.PAIR_POLICY)
        status, headers, _ = server.request("GET", "/intel/stix", headers={"Authorization": _basic("mispfeed", "wrong")})
        assert status == 401 and headers["www-authenticate"].startswith("Basic ")
    # a header that does not decode is a failed attempt too (from another address: its own keys)
    answers = [server.request("GET", "/intel/stix", headers={"Authorization": "Basic %%%"}, source="127.0.0.2")[0]
               for _ in range(6)]
    assert answers == [401] * 5 + [429]
    # the sixth attempt is refused by the throttle, even with the right password, for Basic and the form alike
    status, headers, _ = server.request("GET", "/intel/stix", headers={"Authorization": _basic("mispfeed", "feed-Pass-1")})
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert server.login("mispfeed", "feed-Pass-1", challenge=False) is None


def test_trail_kinds():
    assert [trail_kind(row[0]) for row in ROWS] == [
        "domain", "domain", "ip", "ip", "cidr", "ipport", "ipport", "url", "path", "cert", "ja3", "regex", "domain",
        "domain", "hostport", "ja4", "ua"]


def test_stix_bundle_is_valid_deterministic_and_filterable(server, admin):
    validator = pytest.importorskip("stix2validator")
    status, headers, body = _get(server, "/intel/stix", admin)
    assert status == 200 and headers["content-type"].startswith("application/json")
    result = validator.validate_string(body.decode(), validator.ValidationOptions(version="2.1"))
    assert result.is_valid, [str(error) for error in result.errors]
    bundle = json.loads(body)
    indicators = [obj for obj in bundle["objects"] if obj["type"] == "indicator"]
    assert sorted(obj["name"] for obj in indicators) == sorted(
        row[0] for row in ROWS if trail_kind(row[0]) in ("domain", "ip", "cidr", "ipport", "url", "cert", "ua"))
    again = json.loads(_get(server, "/intel/stix", admin)[2])
    assert [obj["id"] for obj in again["objects"]] == [obj["id"] for obj in bundle["objects"]]
    by_name = {obj["name"]: obj for obj in indicators}
    assert by_name["91.215.85.17:8080"]["pattern"] == (
        "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '91.215.85.17' "
        "AND network-traffic:dst_port = 8080]")
    assert by_name["o'brien.evil-example.com"]["pattern"] == r"[domain-name:value = 'o\'brien.evil-example.com']"
    assert by_name["ua:EvilLoader/3.2 (Windows NT 10.0; Win64, x64)"]["pattern"] == (
        "[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = "
        "'EvilLoader/3.2 (Windows NT 10.0; Win64, x64)']")
    only = json.loads(_get(server, "/intel/stix?kind=domain&source=misp:circl", admin)[2])
    assert sorted(obj["name"] for obj in only["objects"] if obj["type"] == "indicator") == [
        "c2.evil-example.net", "login.evil-example.org"]
    assert _get(server, "/intel/stix?kind=bogus", admin)[0] == 400


def test_stix_export_reimports_to_the_same_trails(server, admin, tmp_path):
    pytest.importorskip("stix2patterns")
    path = tmp_path / "export.json"
    path.write_bytes(_get(server, "/intel/stix", admin)[2])
    rows = trail_rows(intel_update(tmp_path, [f"stix {path} name=peer"]))
    assert rows["c2.evil-example.net"] == ("emotet (malware)", "stix:peer")  # the info travels as the label
    assert rows["5.252.177.20"] == ("apt28 (apt)", "stix:peer")
    assert {"c2.evil-example.net", "91.215.85.17:8080", "91.215.85.0/24", "drop.evil-example.net/gate.php",
            "9f2a5c7e1b3d4f6a8c0e2b4d6f8a0c2e4b6d8f0a", "[2a00:1450:4001::98]:443",
            "ua:EvilLoader/3.2 (Windows NT 10.0; Win64, x64)"} <= set(rows)


def test_gzip_and_etag(server, admin):
    status, headers, body = _get(server, "/intel/zeek", admin, **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    plain = gzip.decompress(body)
    etag = headers["etag"]
    status, headers, body = _get(server, "/intel/zeek", admin, **{"If-None-Match": etag})
    assert (status, body, headers["etag"]) == (304, b"", etag)
    other = _get(server, "/intel/stix", admin)[1]["etag"]
    assert other != etag
    assert _get(server, "/intel/zeek", admin)[2] == plain
    trails = os.path.join(server.tmp, "trails.csv")
    stat = os.stat(trails)
    os.utime(trails, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new trail set
    status, headers, _body = _get(server, "/intel/zeek", admin, **{"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag


def test_zeek_intel_file(server, admin):
    lines = _get(server, "/intel/zeek", admin)[2].decode().splitlines()
    assert lines[0] == "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc"
    types = {"Intel::DOMAIN", "Intel::ADDR", "Intel::SUBNET", "Intel::URL", "Intel::CERT_HASH", "Intel::SOFTWARE"}
    seen = {}
    for line in lines[1:]:
        fields = line.split("\t")
        assert len(fields) == 4 and all(fields) and fields[1] in types, line
        seen[fields[0]] = fields[1:]
    assert seen["c2.evil-example.net"] == ["Intel::DOMAIN", "misp:circl", "emotet (malware)"]
    assert seen["2a00:1450:4001::99"][0] == "Intel::ADDR"
    assert seen["91.215.85.0/24"][0] == "Intel::SUBNET"
    assert seen["drop.evil-example.net/gate.php"][0] == "Intel::URL"  # Zeek's URLs have no scheme
    assert seen["9f2a5c7e1b3d4f6a8c0e2b4d6f8a0c2e4b6d8f0a"][0] == "Intel::CERT_HASH"
    assert seen["o'brien.evil-example.com"] == ["Intel::DOMAIN", "quote'src", "tab here"]
    assert "91.215.85.17:8080" not in seen  # Zeek's intel has no address:port type
    # Zeek's intel/seen scripts report an HTTP User-Agent header as Intel::SOFTWARE (the value as sent)
    assert seen["EvilLoader/3.2 (Windows NT 10.0; Win64, x64)"] == ["Intel::SOFTWARE", "misp:circl",
                                                                     "evilloader (malware)"]


def test_suricata_files(server, admin):
    listing = _get(server, "/intel/suricata", admin)[2].decode().splitlines()
    names = [line.split("\t")[0] for line in listing]
    assert names == ["maltrail.rules", "maltrail-domains.lst", "maltrail-iprep.list", "maltrail-categories.txt"]
    domains = [base64.b64decode(line, validate=True).decode()
               for line in _get(server, "/intel/suricata/maltrail-domains.lst", admin)[2].decode().splitlines()]
    assert "c2.evil-example.net" in domains and all(trail_kind(name) == "domain" for name in domains)
    categories = _get(server, "/intel/suricata/maltrail-categories.txt", admin)[2].decode().splitlines()
    assert categories == ["1,maltrail,Maltrail trail set"]
    for line in _get(server, "/intel/suricata/maltrail-iprep.list", admin)[2].decode().splitlines():
        address, category, score = line.split(",")
        ipaddress.ip_network(address)
        assert category == "1" and 1 <= int(score) <= 127
    rules = [line for line in _get(server, "/intel/suricata/maltrail.rules", admin)[2].decode().splitlines()
             if line and not line.startswith("#")]
    sids = set()
    for rule in rules:
        match = re.fullmatch(r"alert (dns|tls|http|ip) any any -> any any \((.+)\)", rule)
        assert match, rule
        options = [option.strip() for option in match.group(2).split(";") if option.strip()]
        assert options[0].startswith('msg:"') and options[-1] == "rev:1"
        sids.add(next(option for option in options if option.startswith("sid:")))
        for option in options:
            if option.startswith("dataset:"):
                assert option == "dataset:isset,maltrail-domains,type string,load maltrail-domains.lst"
                assert options[options.index(option) - 1] in ("dns.query", "tls.sni", "http.host")
            if option.startswith("iprep:"):
                assert re.fullmatch(r"iprep:(src|dst),maltrail,>,0", option)
    assert len(sids) == len(rules) == 5


def test_misp_feed_export_reads_back_through_the_feed_import(server, admin, tmp_path):
    manifest = json.loads(_get(server, "/intel/misp/manifest.json", admin)[2])
    infos = sorted(entry["info"] for entry in manifest.values())
    assert infos == sorted({row[1] for row in ROWS if trail_kind(row[0]) not in ("regex", "hostport", "ja4")})
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "manifest.json").write_text(json.dumps(manifest))
    for event in manifest:
        status, _headers, body = _get(server, f"/intel/misp/{event}.json", admin)
        assert status == 200
        (mirror / f"{event}.json").write_bytes(body)
    emotet_id = next(event for event, entry in manifest.items() if entry["info"] == "emotet (malware)")
    emotet = json.loads((mirror / f"{emotet_id}.json").read_text())
    values = {(a["type"], a["value"]) for a in emotet["Event"]["Attribute"]}
    assert values == {("domain", "c2.evil-example.net"), ("ip-dst", "2a00:1450:4001::99"),
                      ("ip-dst|port", "91.215.85.17|8080"), ("ip-dst|port", "2a00:1450:4001::98|443")}
    assert _get(server, "/intel/misp/00000000-0000-0000-0000-000000000000.json", admin)[0] == 404
    with serve_directory(str(mirror)) as (base, _seen):
        rows = trail_rows(intel_update(tmp_path, [f"misp-feed {base} name=peer"]))
    assert rows["91.215.85.17:8080"] == ("emotet (malware)", "misp:peer")  # the info travels as an event tag
    assert rows["drop.evil-example.net/gate.php"][1] == "misp:peer"
    assert "72a589da586844d7f0818ce684948eea" in rows
    assert rows["ua:EvilLoader/3.2 (Windows NT 10.0; Win64, x64)"] == ("evilloader (malware)", "misp:peer")


def test_a_server_subscribes_to_another_servers_misp_feed_with_basic(server, tmp_path, monkeypatch):
    """The `misp-feed` import with user=/password= reads a peer server's /intel/misp directly; the
    account's masking applies to what it gets, and a wrong password keeps the source out."""
    monkeypatch.setenv("PEER_PASSWORD", "pw1")
    line = f"misp-feed http://127.0.0.1:{server.port}/intel/misp user=local password=env:PEER_PASSWORD name=peer"
    result = intel_update(tmp_path, [line])
    rows = trail_rows(result)
    assert rows["91.215.85.17:8080"] == ("emotet (malware)", "misp:peer")
    assert rows["ua:EvilLoader/3.2 (Windows NT 10.0; Win64, x64)"] == ("evilloader (malware)", "misp:peer")
    assert "secret.internal-example.com" not in rows  # a custom trail: masked for this account
    wrong = intel_update(tmp_path / "wrong", [line.replace("env:PEER_PASSWORD", "nope")])
    status = next(s for s in wrong.feeds if s.name == "intel:misp-feed:peer")
    assert status.status == "failed" and "401" in (status.error or ""), status


def test_masked_users_never_see_custom_trails(server, admin):
    cookie = server.login("local", "pw1")
    assert cookie
    for path in ("/intel/stix", "/intel/zeek", "/intel/suricata/maltrail-domains.lst", "/intel/misp/manifest.json"):
        masked = _get(server, path, cookie)[2]
        assert b"secret.internal" not in masked and b"operator list" not in masked
        assert base64.b64encode(b"secret.internal-example.com") not in masked
    assert b"secret.internal-example.com" in _get(server, "/intel/zeek", admin)[2]


def test_reference_names_the_source_object_of_imported_trails(tmp_path):
    pytest.importorskip("stix2patterns")
    server_dir = tmp_path / "srv"
    server_dir.mkdir()
    ind = indicator("ref", "[domain-name:value = 'drawer.evil-example.net']")
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle([ind])))
    feed = tmp_path / "feed"
    feed.mkdir()
    event = misp_event("drawer event", [misp_attribute("ip-dst", "45.95.147.99")])
    write_misp_feed(str(feed), [event])
    with serve_directory(str(feed)) as (base, _seen):
        result = intel_update(tmp_path, [f"stix {path} name=lab", f"misp-feed {base} name=circl"],
                              TRAILS_FILE=str(server_dir / "trails.csv"))
    assert len(trail_rows(result)) == 2
    with Server(str(server_dir), udp=False) as srv:
        cookie = srv.login()
        answer = json.loads(srv.get("/reference?trail=drawer.evil-example.net", cookie=cookie)[1])
        assert answer == {"reference": ind["id"], "source": "stix:lab"}
        answer = json.loads(srv.get("/reference?trail=45.95.147.99", cookie=cookie)[1])
        assert answer == {"reference": event["Event"]["uuid"], "source": "misp:circl"}
        assert json.loads(srv.get("/reference?trail=nothing.example", cookie=cookie)[1])["reference"] is None
