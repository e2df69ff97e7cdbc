"""Throttle: burst passes, the rest become one summary with the exact count; caps never lose counts."""

from core.config import load_config
from core.events.event import Event
from core.events.pipeline import EventPipeline
from core.events.sinks import MemorySink
from core.events.throttle import LegacyThrottle, Throttle, build_throttle

T0 = 1_700_000_000


def ev(sec, src="10.0.0.1", trail="evil.example", info="malware"):
    return Event(sec, 0, src, 1000, "8.8.8.8", 53, "UDP", "DNS", trail, info, "(static)")


def run(stage, events, end=None):
    sink = MemorySink()
    pipeline = EventPipeline([sink], "t", stages=[stage])
    for event in events:
        pipeline.tick(event.sec)
        pipeline.emit(event)
    if end is not None:
        pipeline.tick(end)
    else:
        pipeline.close()
    return sink.events


def suppressed_total(events):
    total = 0
    for event in events:
        if "throttled)" in event.info:
            total += int(event.info.rsplit("(+", 1)[1].split()[0])
        else:
            total += 1
    return total


def test_burst_then_one_summary_with_count():
    out = run(Throttle(window=60, burst=3), [ev(T0 + i) for i in range(30)])
    assert [e.info for e in out[:3]] == ["malware"] * 3
    assert len(out) == 4 and out[3].info == "malware (+27 throttled)"
    assert suppressed_total(out) == 30


def test_summary_is_emitted_when_the_window_ends_on_tick():
    out = run(Throttle(window=60, burst=1), [ev(T0), ev(T0 + 1), ev(T0 + 2)], end=T0 + 60)
    assert [e.info for e in out] == ["malware", "malware (+2 throttled)"]


def test_keys_are_independent_and_new_window_restarts():
    events = [ev(T0, src="10.0.0.1"), ev(T0, src="10.0.0.2"), ev(T0 + 1, src="10.0.0.1"), ev(T0 + 70, src="10.0.0.1")]
    out = run(Throttle(window=60, burst=1), events)
    assert [(e.src_ip, e.info) for e in out] == [("10.0.0.1", "malware"), ("10.0.0.2", "malware"),
                                                 ("10.0.0.1", "malware (+1 throttled)"), ("10.0.0.1", "malware")]


def test_cap_closes_oldest_window_early_and_never_loses_a_count():
    throttle = Throttle(window=60, burst=1, max_keys=10)
    events = [ev(T0, src="10.0.0.1")] * 5 + [ev(T0, src=f"10.1.0.{i}") for i in range(100)]
    out = run(throttle, events)
    assert len(throttle.keys) == 0 and throttle.early >= 90
    assert suppressed_total(out) == 105
    assert ("10.0.0.1", "malware (+4 throttled)") in [(e.src_ip, e.info) for e in out]


def test_legacy_mode_drops_duplicates_per_bucket():
    out = run(LegacyThrottle(window=60), [ev(T0 - T0 % 60 + i) for i in range(10)])
    assert len(out) == 1


def test_build_throttle_modes(tmp_path):
    assert build_throttle(load_config(overrides={"EVENT_THROTTLE_MODE": "off"})) is None
    assert isinstance(build_throttle(load_config(overrides={"EVENT_THROTTLE_MODE": "legacy"})), LegacyThrottle)
    throttle = build_throttle(load_config(overrides={"EVENT_THROTTLE_BURST": "5", "EVENT_THROTTLE_WINDOW": "10"}))
    assert isinstance(throttle, Throttle) and throttle.burst == 5 and throttle.window == 10
