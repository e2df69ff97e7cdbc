"""Signed UDP events: Signer/Verifier round trip, tampering, staleness, replay window."""

from __future__ import annotations

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
