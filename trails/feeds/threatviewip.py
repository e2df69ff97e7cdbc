"""threatviewip: Threatview.io high-confidence malicious IPv4 feed.

Source: https://threatview.io/Downloads/IP-High-Confidence-Feed.txt
Terms: free for use; see threatview.io terms.
Format: one IPv4 a line.
Category: `bad reputation (threatview)` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://threatview.io/Downloads/IP-High-Confidence-Feed.txt"
__check__ = "."
__info__ = "bad reputation (threatview)"
__reference__ = "threatview.io"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
