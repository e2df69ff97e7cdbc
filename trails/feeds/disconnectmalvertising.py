"""disconnectmalvertising: Disconnect malvertising list.

Source: https://s3.amazonaws.com/lists.disconnect.me/simple_malvertising.txt
Terms: GPLv3 (Disconnect tracking protection lists).
Format: `#` header, one domain a line.
Category: `malvertising (suspicious)` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://s3.amazonaws.com/lists.disconnect.me/simple_malvertising.txt"
__check__ = "."
__info__ = "malvertising (suspicious)"
__reference__ = "disconnect.me"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
