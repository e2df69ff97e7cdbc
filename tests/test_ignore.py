"""Whitelist and ignore filters in the event pipeline (spec §1.9)."""

import pytest

from core.config import ConfigError, load_config
from core.events.event import Event
from core.events.filters import build_event_stages, build_filters
from core.events.pipeline import EventPipeline
from core.events.sinks import MemorySink
from core.trails.whitelist import Whitelist


def ev(src="10.0.0.66", sport=5000, dst="66.66.66.66", dport=443, type_="IP", trail="66.66.66.66",
       info="malware (test)"):
    return Event(1_700_000_000, 0, src, sport, dst, dport, "TCP", type_, trail, info, "(static)")


def deliver(config, events, whitelist=None):
    filters, _ = build_event_stages(config, whitelist or Whitelist())
    sink = MemorySink()
    pipeline = EventPipeline([sink], "t", filters=filters)
    for event in events:
        pipeline.emit(event)
    pipeline.close()
    return sink.events


def test_whitelisted_addresses_drop_events_except_dns():
    whitelist = Whitelist.from_entries(["8.8.8.8", "192.0.2.0/24"])
    config = load_config()
    kept = deliver(config, [ev(dst="8.8.8.8"), ev(src="192.0.2.9"), ev(src="192.0.2.9,1.2.3.4"),
                            ev(dst="8.8.8.8", type_="DNS", trail="evil.example"), ev()], whitelist)
    assert [(e.type, e.dst_ip) for e in kept] == [("DNS", "8.8.8.8"), ("IP", "66.66.66.66")]


def test_ignore_events_regex_is_case_insensitive_over_the_tuple():
    config = load_config(overrides={"IGNORE_EVENTS_REGEX": "LONG DOMAIN|117\\.21\\.225\\.3"})
    kept = deliver(config, [ev(info="long domain (suspicious)"), ev(dst="117.21.225.3"), ev()])
    assert len(kept) == 1 and kept[0].info == "malware (test)"


def test_ignore_tuples_with_wildcards_and_cidr(tmp_path):
    path = tmp_path / "ignore.txt"
    path.write_text("# mine\n10.0.0.66;*;*;443\n*;*;192.0.2.0/24;*\n*;*;*;8443  # comment\n")
    config = load_config(overrides={"USER_IGNORELIST": str(path)})
    kept = deliver(config, [ev(), ev(dport=80), ev(src="10.0.0.5", dst="192.0.2.77", dport=22),
                            ev(src="10.0.0.5", dport=8443), ev(src="10.0.0.5", dport=22)])
    assert [(e.src_ip, e.dst_port) for e in kept] == [("10.0.0.66", 80), ("10.0.0.5", 22)]


def test_bad_ignore_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ignore.txt"
    path.write_text("10.0.0.66;443\n")
    with pytest.raises(ConfigError, match="src_ip;src_port;dst_ip;dst_port"):
        build_filters(load_config(overrides={"USER_IGNORELIST": str(path)}), None)
    with pytest.raises(ConfigError):
        build_filters(load_config(overrides={"USER_IGNORELIST": str(tmp_path / "absent")}), None)


def test_whitelisted_heuristic_hit_is_suppressible(tmp_path):
    """A long-domain hit on a name the operator whitelists never reaches the log."""
    from core.heuristics.engine import build_heuristics

    path = tmp_path / "wl.txt"
    path.write_text("corp-cdn.net\n")
    config = load_config(overrides={"USE_HEURISTICS": "true", "USER_WHITELIST": str(path)})
    engine = build_heuristics(config, None, Whitelist.load(config), None)
    assert engine.domain("a" * 30 + ".corp-cdn.net") is None
    assert engine.domain("a" * 30 + ".other.net") is not None
