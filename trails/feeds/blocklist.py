"""blocklist: blocklist.de: all addresses reported by fail2ban users in the last 48 hours.

Source: https://lists.blocklist.de/lists/all.txt
Terms: free of charge; blocklist.de asks for no more than one download every 30 minutes.
Format: one IPv4 (or IPv6) a line.
Category: `known attacker` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://lists.blocklist.de/lists/all.txt"
__check__ = "."
__info__ = "known attacker"
__reference__ = "blocklist.de"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
