"""peek: print each event's packet (header line, then the raw bytes, non-printables as '.') to stderr.

Contract: plugin(event_tuple, packet); event_tuple is (sec, usec, src_ip, src_port, dst_ip,
dst_port, proto, type, trail, info, reference); packet is the raw frame (bytes) or None.
"""

import sys
import time


def _header(event_tuple):
    sec, usec, src_ip, src_port, dst_ip, dst_port = event_tuple[:6]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec)) + f".{usec:06d}"
    return f"[{stamp}] {src_ip}:{src_port or '-'} -> {dst_ip}:{dst_port or '-'}:"


def plugin(event_tuple, packet):
    if not packet:
        return
    shown = "".join(chr(b) if 32 <= b < 127 else "." for b in packet)
    sys.stderr.write(_header(event_tuple) + "\n" + shown + "\n\n")
