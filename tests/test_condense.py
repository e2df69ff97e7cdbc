"""Condensing: noisy classes merge per (src_ip, trail) into one event with joined fields."""

from core.events.condense import Condenser
from core.events.event import Event
from core.events.pipeline import EventPipeline
from core.events.sinks import MemorySink

T0 = 1_700_000_000


def scan(sec, dport, dst="198.51.100.7", info="potential port scanning"):
    return Event(sec, 0, "203.0.113.9", 40000, dst, dport, "TCP", "IP", "203.0.113.9", info, "(heuristic)")


def run(events, stage=None, end=None):
    sink = MemorySink()
    pipeline = EventPipeline([sink], "t", stages=[stage or Condenser()])
    for event in events:
        pipeline.tick(event.sec)
        pipeline.emit(event)
    if end is None:
        pipeline.close()
    else:
        pipeline.tick(end)
    return sink.events


def test_noisy_events_merge_into_one_with_sorted_lists():
    out = run([scan(T0, 22), scan(T0 + 1, 8080, dst="198.51.100.8"), scan(T0 + 2, 443)])
    assert len(out) == 1
    assert out[0].dst_port == "22,443,8080" and out[0].dst_ip == "198.51.100.7,198.51.100.8"
    assert out[0].sec == T0 and out[0].info == "potential port scanning"


def test_released_after_period_on_tick():
    out = run([scan(T0, 22), scan(T0 + 1, 23)], end=T0 + 10)
    assert len(out) == 1


def test_other_events_pass_straight_through():
    event = scan(T0, 22, info="malware (test)")
    assert run([event], end=T0) == [event]


def test_max_events_and_max_keys_release_without_loss():
    out = run([scan(T0, p) for p in range(1, 26)], stage=Condenser(max_events=10))
    assert len(out) == 3 and sum(len(e.dst_port.split(",")) for e in out) == 25
    stage = Condenser(max_keys=5)
    events = [Event(T0, 0, f"203.0.113.{i}", 1, "10.0.0.1", 22, "TCP", "IP", f"203.0.113.{i}",
                    "known attacker", "(static)") for i in range(50)]
    out = run(events, stage=stage)
    assert len(out) == 50 and stage.early == 45 and not stage.buffers
