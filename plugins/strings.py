"""strings: print every run of 4+ printable ASCII bytes of each event's packet to stderr.

Contract: plugin(event_tuple, packet), like plugins/peek.py.
"""

import re
import sys
import time

_RUNS = re.compile(rb"[\x20-\x7e]{4,}")


def plugin(event_tuple, packet):
    if not packet:
        return
    sec, usec, src_ip, src_port, dst_ip, dst_port = event_tuple[:6]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec)) + f".{usec:06d}"
    runs = [match.decode("ascii") for match in _RUNS.findall(packet)]
    sys.stderr.write(f"[{stamp}] {src_ip}:{src_port or '-'} -> {dst_ip}:{dst_port or '-'}:\n")
    for run in runs:
        sys.stderr.write(run + "\n")
    sys.stderr.write("\n")
