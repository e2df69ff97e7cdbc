"""Signed UDP events: Signer/Verifier round trip, tampering, staleness, replay window, canonical
encodings, and the high-water marks that survive a restart and an eviction."""

from __future__ import annotations

import hmac
import os

from core.events.signing import WINDOW, Signer, Verifier

PLAIN = b'1700000000 "2023-11-14 22:13:20.000000" s1 10.0.0.1 1 1.2.3.4 80 TCP IP 1.2.3.4 attacker x'


def test_round_trip_and_counters():
    now = [1700000000.0]
    signer, verifier = Signer("k3y", clock=lambda: now[0]), Verifier("k3y", 300, clock=lambda: now[0])
    signed = signer.sign(PLAIN)
    assert signed.startswith(b"MTS1 1700000000 ") and signed.endswith(PLAIN)
    assert verifier.verify(signed) == PLAIN
    assert verifier.verify(signed) is None and verifier.counters["replayed"] == 1
    assert verifier.verify(PLAIN) is None and verifier.counters["unsigned"] == 1
    assert verifier.counters["accepted"] == 1


def test_wrong_key_tampering_and_malformed():
    signer, verifier = Signer("a"), Verifier("b")
    assert verifier.verify(signer.sign(PLAIN)) is None
    good = Verifier("a")
    signed = signer.sign(PLAIN)
    assert good.verify(signed.replace(b"attacker", b"attackex")) is None
    assert good.verify(signed[:-1]) is None
    head = signed.split(b" ", 4)
    assert good.verify(b" ".join(head[:2] + [head[2][:-1] + b"9"] + head[3:])) is None   # changed counter
    for junk in (b"MTS1 ", b"MTS1 x y z w", b"MTS1 1 a-1 " + b"0" * 64, b"MTS1 1 a-b " + b"0" * 64 + b" x"):
        assert good.verify(junk) is None
    assert good.counters["bad_signature"] == 3 and good.counters["malformed"] == 4
    assert good.verify(signed) == PLAIN


def test_stale_and_future_timestamps():
    signer = Signer("k", clock=lambda: 1000.0)
    assert Verifier("k", 60, clock=lambda: 1061.0).verify(signer.sign(PLAIN)) is None
    assert Verifier("k", 60, clock=lambda: 939.0).verify(signer.sign(PLAIN)) is None
    verifier = Verifier("k", 60, clock=lambda: 1059.0)
    assert verifier.verify(signer.sign(PLAIN)) == PLAIN


def test_reordering_inside_the_window_is_accepted_once():
    signer, verifier = Signer("k"), Verifier("k")
    batch = [signer.sign(b"%d" % n) for n in range(WINDOW + 10)]
    order = batch[5:] + batch[:5]          # the first five arrive late: outside the window by then
    results = [verifier.verify(d) for d in order]
    assert sum(r is not None for r in results) == WINDOW + 5
    late = [signer.sign(b"late-%d" % n) for n in range(3)]
    assert [verifier.verify(d) is not None for d in (late[2], late[0], late[1], late[0])] == [True, True, True, False]


def _resign(key: bytes, ts: bytes, nonce: bytes, data: bytes) -> bytes:
    head = b"MTS1 %s %s " % (ts, nonce)
    return head + hmac.digest(key, head + data, "sha256").hex().encode() + b" " + data


def test_non_canonical_encodings_and_counter_zero_are_refused():
    now = 1700000000.0
    verifier = Verifier("k", 60, clock=lambda: now)
    signer = Signer("k", clock=lambda: now)
    good = signer.sign(PLAIN)
    _, ts, nonce, mac, _ = good.split(b" ", 4)
    sender = nonce.split(b"-")[0]
    upper = good.replace(mac, mac.upper())
    variants = [upper, _resign(b"k", ts, sender + b"-0", PLAIN), _resign(b"k", ts, sender + b"-01", PLAIN),
                _resign(b"k", b"0" + ts, nonce, PLAIN), _resign(b"k", ts, sender.upper() + b"-1", PLAIN),
                _resign(b"k", ts, sender[:15] + b"-1", PLAIN), _resign(b"k", ts, b"+" + nonce, PLAIN)]
    for data in variants:
        assert verifier.verify(data) is None, data
    assert verifier.counters["malformed"] == len(variants) and verifier.counters["accepted"] == 0
    assert verifier.verify(good) == PLAIN


def test_high_water_marks_survive_a_restart(tmp_path):
    state = str(tmp_path / "senders.state")
    signer = Signer("k")
    captured = [signer.sign(b"%d" % n) for n in range(20)]
    first = Verifier("k", state_path=state)
    assert all(first.verify(d) is not None for d in captured[:15])
    assert first.save() and os.path.exists(state)
    restarted = Verifier("k", state_path=state)
    assert [restarted.verify(d) for d in captured[:15]] == [None] * 15
    assert restarted.counters["replayed"] == 15
    assert all(restarted.verify(d) is not None for d in captured[15:])     # never seen: accepted
    assert restarted.verify(signer.sign(b"next")) is not None


def test_an_evicted_sender_cannot_replay(tmp_path):
    clock = [1000.0]
    verifier = Verifier("k", 300, clock=lambda: clock[0], max_senders=2, state_path=str(tmp_path / "s"))
    old = Signer("k", clock=lambda: clock[0])
    old_data = old.sign(b"x")
    assert verifier.verify(old_data) is not None
    clock[0] += 10
    for _ in range(2):          # two newer senders push the old one out of the table
        assert verifier.verify(Signer("k", clock=lambda: clock[0]).sign(b"y")) is not None
    assert verifier.floor == 1000 and verifier.verify(old_data) is None
    verifier.save()
    assert Verifier("k", 300, clock=lambda: clock[0], state_path=str(tmp_path / "s")).verify(old_data) is None


def test_a_damaged_state_file_is_counted_not_trusted(tmp_path):
    path = tmp_path / "s"
    path.write_text("something else\n")
    verifier = Verifier("k", state_path=str(path))
    assert verifier.counters["state_errors"] == 1 and not verifier.senders
