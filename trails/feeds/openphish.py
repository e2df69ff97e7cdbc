"""openphish: OpenPhish community feed of phishing URLs.

Source: https://openphish.com/feed.txt
Terms: free community feed for non-commercial use (OpenPhish terms).
Format: one URL a line.
Category: `phishing` trails (urls).
"""

from core.update.feeds import urls_in_lines

__url__ = "https://openphish.com/feed.txt"
__check__ = "http"
__info__ = "phishing"
__reference__ = "openphish.com"


def fetch(ctx):
    return urls_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
