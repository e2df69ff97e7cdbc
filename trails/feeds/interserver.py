"""interserver: InterServer: addresses blocked by its hosting network's intrusion detection.

Source: https://sigs.interserver.net/ipslim.txt
Terms: free public list; see sigs.interserver.net.
Format: one IPv4 a line.
Category: `known attacker` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://sigs.interserver.net/ipslim.txt"
__check__ = "."
__info__ = "known attacker"
__reference__ = "interserver.net"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
