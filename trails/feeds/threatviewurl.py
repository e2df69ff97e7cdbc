"""threatviewurl: Threatview.io high-confidence malicious URL feed.

Source: https://threatview.io/Downloads/URL-High-Confidence-Feed.txt
Terms: free for use; see threatview.io terms.
Format: one URL a line.
Category: `malware` trails (urls).
"""

from core.update.feeds import urls_in_lines

__url__ = "https://threatview.io/Downloads/URL-High-Confidence-Feed.txt"
__check__ = "http"
__info__ = "malware"
__reference__ = "threatview.io"


def fetch(ctx):
    return urls_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
