"""Whitelist: bundled list, user file, exact and CIDR ranges (v4/v6), domain suffix matching."""

import socket

from core.config import build_config
from core.trails.whitelist import BUNDLED_WHITELIST, Whitelist


def v4(text):
    return socket.inet_pton(socket.AF_INET, text)


def v6(text):
    return socket.inet_pton(socket.AF_INET6, text)


def test_bundled_list_loads_cleanly_and_has_reasonable_size():
    whitelist = Whitelist.load(None)
    assert whitelist.rejected == 0, whitelist.problems
    assert 200 <= len(whitelist) <= 2000
    with open(BUNDLED_WHITELIST, encoding="utf-8") as handle:
        assert handle.readline().startswith("#")


def test_bundled_list_covers_resolvers_and_update_domains():
    whitelist = Whitelist.load(None)
    for address in ("8.8.8.8", "1.1.1.1", "9.9.9.9", "2001:4860:4860::8888", "2606:4700:4700::1111"):
        assert whitelist.ip_text(address), address
    for name in ("www.google.com", "download.windowsupdate.com", "pool.ntp.org", "0.debian.pool.ntp.org",
                 "ocsp.digicert.com", "swcdn.apple.com"):
        assert whitelist.domain(name), name


def test_bundled_list_does_not_whitelist_user_content_hosting():
    whitelist = Whitelist.load(None)
    for name in ("bucket.s3.amazonaws.com", "x.cloudfront.net", "evil.blogspot.com", "evil.github.io",
                 "evil.duckdns.org", "bit.ly"):
        assert not whitelist.domain(name), name


def test_domain_suffix_matches_on_label_boundaries_only():
    whitelist = Whitelist.from_entries(["google.com", "*.example.org", ".example.net"])
    assert whitelist.domain("google.com")
    assert whitelist.domain("a.google.com")
    assert whitelist.domain("A.B.Google.COM.")
    assert not whitelist.domain("notgoogle.com")
    assert not whitelist.domain("google.com.evil.net")
    assert not whitelist.domain("com")
    assert whitelist.domain("x.example.org") and whitelist.domain("example.net")
    assert not whitelist.domain("")


def test_listed_suffix_is_domain_for_names_in_their_form():
    """listed_suffix (the domain check's form: lower case, no trailing dot, not an address)
    answers what domain answers, on every label boundary."""
    whitelist = Whitelist.from_entries(["google.com", "a.b.example.org", "net"])
    labels = ["google", "com", "a", "b", "example", "org", "net", "x", "xgoogle"]
    names = [".".join(labels[(i * 7 + j * 3) % len(labels)] for j in range(1 + i % 5)) for i in range(400)]
    for name in names + ["google.com", "z.google.com", "b.example.org", "q.a.b.example.org", "evil.net"]:
        assert whitelist.listed_suffix(name) == whitelist.domain(name), name
    assert whitelist.listed_suffix("z.google.com") and not whitelist.listed_suffix("b.example.org")
    assert not Whitelist.from_entries([]).listed_suffix("google.com")


def test_addresses_never_domain_match():
    whitelist = Whitelist.from_entries(["8.8.8.8", "10.0.0.0/8"])
    assert not whitelist.domain("8.8.8.8")
    assert whitelist.ip_text("8.8.8.8")
    # a dotted-quad lookalike prefix must not make an attacker domain look whitelisted via ranges
    assert not whitelist.ip_text("8.8.8.8.evil.com")
    assert not whitelist.ip_text("10.0.0.1.evil.com") and not whitelist.domain("10.0.0.1.evil.com")


def test_ipv4_exact_and_cidr():
    whitelist = Whitelist.from_entries(["192.0.2.7", "198.51.100.77/24", "10.0.0.0/8", "203.0.113.128/25"])
    assert whitelist.ip(v4("192.0.2.7"))
    assert not whitelist.ip(v4("192.0.2.8"))
    assert whitelist.ip(v4("198.51.100.0")) and whitelist.ip(v4("198.51.100.255"))
    assert not whitelist.ip(v4("198.51.101.0"))
    assert whitelist.ip(v4("10.255.1.2"))
    assert whitelist.ip(v4("203.0.113.200")) and not whitelist.ip(v4("203.0.113.127"))
    assert whitelist.ip_text("10.1.2.3") and not whitelist.ip_text("11.1.2.3")


def test_ipv6_exact_and_cidr():
    whitelist = Whitelist.from_entries(["2001:db8::1", "2001:db8:aaaa::/48", "fd00::/8"])
    assert whitelist.ip(v6("2001:db8::1"))
    assert whitelist.ip_text("2001:0db8:0000::0001")
    assert not whitelist.ip(v6("2001:db8::2"))
    assert whitelist.ip(v6("2001:db8:aaaa:ffff::9"))
    assert not whitelist.ip(v6("2001:db8:aaab::9"))
    assert whitelist.ip(v6("fd12:3456::1"))
    assert not whitelist.ip(v4("192.0.2.1"))


def test_user_whitelist_file_is_added_and_bad_lines_are_counted(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# mine\nintranet.example.com  # comment\n192.0.2.0/28\nnot a domain\n300.1.1.1/8\n")
    config = build_config({"USER_WHITELIST": str(path)}, env={})
    whitelist = Whitelist.load(config)
    assert whitelist.domain("wiki.intranet.example.com")
    assert whitelist.ip_text("192.0.2.15") and not whitelist.ip_text("192.0.2.16")
    assert whitelist.domain("www.google.com")  # bundled entries still there
    assert whitelist.rejected == 2
    assert any("not a domain" in problem for problem in whitelist.problems)


def test_missing_user_whitelist_is_an_error(tmp_path):
    config = build_config({"USER_WHITELIST": str(tmp_path / "absent.txt")}, env={})
    try:
        Whitelist.load(config)
    except OSError:
        return
    raise AssertionError("a missing USER_WHITELIST file must not be ignored silently")


def test_contains_accepts_packed_and_text():
    whitelist = Whitelist.from_entries(["192.0.2.0/24", "example.com"])
    assert v4("192.0.2.9") in whitelist
    assert "192.0.2.9" in whitelist and "www.example.com" in whitelist
    assert "example.org" not in whitelist and 5 not in whitelist
