"""torproject: Tor Project: current Tor exit relays (bulk exit list).

Source: https://check.torproject.org/torbulkexitlist
Terms: Tor Project public data (CC0 / public domain).
Format: one IPv4 a line.
Category: `tor exit node (suspicious)` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://check.torproject.org/torbulkexitlist"
__check__ = "."
__info__ = "tor exit node (suspicious)"
__reference__ = "torproject.org"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
