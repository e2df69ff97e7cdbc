"""threatviewdomain: Threatview.io high-confidence malicious domain feed.

Source: https://threatview.io/Downloads/DOMAIN-High-Confidence-Feed.txt
Terms: free for use; see threatview.io terms.
Format: one domain a line.
Category: `malware` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://threatview.io/Downloads/DOMAIN-High-Confidence-Feed.txt"
__check__ = "."
__info__ = "malware"
__reference__ = "threatview.io"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
