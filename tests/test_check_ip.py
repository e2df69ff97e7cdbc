"""GET /check_ip of a real server.py: the bundled seeds, the lists the update fetched (from a local
HTTP server), the RIR country table, and malformed input (400, never 500)."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

from core.update.datasets import DATASETS, refresh_lists
from core.update.feeds import FeedContext
from core.update.geo import write_table
from core.update.orchestrate import DATA_DIR
from tests.kit.feedserver import FeedServer
from tests.kit.server import Server

LISTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "lists")
FILES = {"list-ipcat": os.path.join(LISTS, "datacenters.csv"), "list-worst_asns": os.path.join(LISTS, "worst_asns.txt")}


def n(text: str) -> int:
    return int(ipaddress.ip_address(text))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("checkip"))
    trails = os.path.join(tmp, "trails.csv")
    with open(trails, "w") as handle:
        handle.write("evil.example,malware,(static)\n")
    wanted = tuple(d for d in DATASETS if d.name in ("ipcat", "worst_asns"))
    with FeedServer(files=FILES) as feeds:
        report = refresh_lists(FeedContext(timeout=2, retries=1, backoff=0.01, base_url=feeds.base_url), trails,
                               DATA_DIR, 0.5, wanted)
    write_table(os.path.join(tmp, "ip2cc.csv.gz"), [(4, n("3.0.0.0"), n("3.255.255.255"), "US"),
                                                    (4, n("50.0.0.0"), n("50.255.255.255"), "US")])
    srv = Server(tmp)
    srv.start()
    yield srv, report
    srv.stop()


def ask(srv, cookie, address):
    status, data = srv.get(f"/check_ip?address={address}", cookie=cookie)
    return status, (json.loads(data) if status == 200 else data)


def test_check_ip(server):
    srv, report = server
    assert report["ipcat"]["entries"] == 120 and report["ipcat"]["dropped"] == {
        "malformed": 2, "too broad": 1, "private or reserved": 1}
    assert report["worst_asns"]["entries"] == 120 and report["worst_asns"]["dropped"] == {
        "malformed": 1, "too broad": 1, "private or reserved": 1}
    cookie = srv.login()
    assert ask(srv, cookie, "3.5.6.7") == (200, {"ipcat": "Amazon AWS", "worst_asns": False, "country": "US"})
    assert ask(srv, cookie, "50.7.1.2") == (200, {"ipcat": "sample-dc-7", "worst_asns": False, "country": "US"})
    assert ask(srv, cookie, "61.42.9.9") == (200, {"ipcat": None, "worst_asns": True, "country": None})
    assert ask(srv, cookie, "78.47.1.1")[1]["worst_asns"] is True  # the bundled seed
    assert ask(srv, cookie, "10.0.0.1") == (200, {"ipcat": None, "worst_asns": False, "country": None})
    assert ask(srv, cookie, "2001:db8::1")[1] == {"ipcat": None, "worst_asns": False, "country": None}
    for bad in ("", "1.2.3", "x" * 100, "%00", "%3Cscript%3E", "1.2.3.4/24", "999.1.1.1"):
        assert ask(srv, cookie, bad)[0] == 400, bad
    assert srv.get("/check_ip?address=3.5.6.7")[0] == 401


def test_check_ip_batch(server):
    srv, _report = server
    cookie = srv.login()
    many = ["3.5.6.7", "61.42.9.9", "10.0.0.1", "not-an-address", "[2001:db8::1]"]
    status, _h, data = srv.request("POST", "/check_ip", "addresses=" + ",".join(many), cookie=cookie)
    assert status == 200
    assert json.loads(data) == {
        "3.5.6.7": {"ipcat": "Amazon AWS", "worst_asns": False, "country": "US"},
        "61.42.9.9": {"ipcat": None, "worst_asns": True, "country": None},
        "10.0.0.1": {"ipcat": None, "worst_asns": False, "country": None},
        "not-an-address": None,
        "[2001:db8::1]": {"ipcat": None, "worst_asns": False, "country": None},
    }
    status, _h, _data = srv.request("POST", "/check_ip", "addresses=" + ",".join(["3.5.6.7"] * 5001), cookie=cookie)
    assert status == 400
    assert srv.request("POST", "/check_ip", "addresses=3.5.6.7")[0] == 401
