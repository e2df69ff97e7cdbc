"""Protocol parser benchmark: ns per call of each parser on typical, hostile and non-matching input.

Where it sits: bench/ (measurement only). Inputs are built with the test builders (tests/kit/pcapgen.py,
tests/test_tls.py, tests/test_quic.py); each case is timed in a tight loop, best of R repeats.

    .venv/bin/python bench/bench_protocols.py [--calls N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.protocols import dns, fingerprints, http, quic, tls  # noqa: E402
from tests.kit import pcapgen as g  # noqa: E402
from tests.test_quic import crypto_frame, hello, protect  # noqa: E402
from tests.test_tls import client_hello, ders_of, ext, make_chain, server_flight  # noqa: E402


def cases() -> list[tuple[str, Callable[[], object]]]:
    query = g.dns_query("www.example.com")
    response = g.dns_response("www.example.com", [("CNAME", "cdn.example.net"), ("A", "93.184.216.34"),
                                                  ("A", "93.184.216.35")])
    nx = g.dns_response("xkqwzlvbnmfghjd.com", [], rcode=3)
    request = g.http_request("GET", "/index.html?id=1", {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)",
                                                         "Accept": "*/*", "Accept-Encoding": "gzip",
                                                         "Connection": "keep-alive", "Cookie": "a=" + "b" * 60})
    resp = g.http_response(200, "OK", {"Server": "nginx", "Content-Type": "text/html"}, b"<html>" + b"x" * 500)
    binary = random.Random(1).randbytes(1400)
    hello_bytes = client_hello(b"www.example.com", before=(ext(10, b"\x00\x08\x00\x1d\x00\x17\x00\x18\x00\x19"),
                                                           ext(13, b"\x00\x10" + b"\x04\x03" * 8),
                                                           ext(43, b"\x04\x03\x04\x03\x03")),
                               after=(ext(51, b"\x00\x24\x00\x1d\x00\x20" + b"\x55" * 32), ext(21, b"\x00" * 200)))
    flight = server_flight(ders_of(make_chain()), 16384)
    segments = [flight[i:i + 1448] for i in range(0, len(flight), 1448)]
    initial = protect(bytes(range(8)), crypto_frame(0, hello(b"www.example.com")))
    udp_noise = b"\x40" + binary[:500]

    def flight_feed() -> object:
        flights = tls.ServerFlights()
        out = None
        for segment in segments:
            out = flights.feed("k", segment)
        return out

    untracked = tls.ServerFlights()
    hello_message = hello_bytes[5:]

    def fingerprint() -> object:  # what the detector adds per ClientHello: JA3 and JA4
        fields = fingerprints.client_hello_fields(hello_message)
        assert fields is not None
        return fingerprints.ja3(fields), fingerprints.ja4(fields)

    return [
        ("dns.parse query", lambda: dns.parse(query)),
        ("dns.parse response (CNAME + 2 A)", lambda: dns.parse(response)),
        ("dns.parse NXDOMAIN", lambda: dns.parse(nx)),
        ("dns.parse random bytes", lambda: dns.parse(binary[:80])),
        ("http.parse_request (6 headers)", lambda: http.parse_request(request)),
        ("http.parse_request non-HTTP reject", lambda: http.parse_request(binary)),
        ("http.parse_response (+ body)", lambda: http.parse_response(resp)),
        ("tls.client_hello_sni", lambda: tls.client_hello_sni(hello_bytes)),
        ("tls.client_hello_sni reject", lambda: tls.client_hello_sni(binary)),
        ("fingerprints JA3 + JA4 of a ClientHello", fingerprint),
        (f"tls.ServerFlights {len(segments)}-segment flight", flight_feed),
        ("tls.ServerFlights.feed untracked", lambda: untracked.feed("k", binary)),
        ("quic.initial_sni (1200-byte Initial)", lambda: quic.initial_sni(initial)),
        ("quic.initial_sni reject", lambda: quic.initial_sni(udp_noise)),
    ]


def measure(fn: Callable[[], object], calls: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'case':44} {'ns/call':>10}")
    for name, fn in cases():
        assert fn() is not None or "reject" in name or "random" in name or "untracked" in name, name
        calls = args.calls // 10 if "flight" in name or "quic.initial_sni (" in name else args.calls
        print(f"{name:44} {measure(fn, calls, args.repeat):10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
