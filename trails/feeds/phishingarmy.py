"""phishingarmy: Phishing Army blocklist of phishing domains.

Source: https://phishing.army/download/phishing_army_blocklist.txt
Terms: CC BY-NC 4.0.
Format: `#` header, one domain a line.
Category: `phishing` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://phishing.army/download/phishing_army_blocklist.txt"
__check__ = "Phishing Army"
__info__ = "phishing"
__reference__ = "phishing.army"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
