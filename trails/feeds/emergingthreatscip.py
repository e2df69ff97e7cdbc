"""emergingthreatscip: Proofpoint Emerging Threats: known compromised hosts.

Source: https://rules.emergingthreats.net/blockrules/compromised-ips.txt
Terms: ET Open, free to use (BSD-style ET Open licence).
Format: one IPv4 a line.
Category: `compromised (suspicious)` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://rules.emergingthreats.net/blockrules/compromised-ips.txt"
__check__ = "."
__info__ = "compromised (suspicious)"
__reference__ = "emergingthreats.net"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
