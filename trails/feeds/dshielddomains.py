"""dshielddomains: SANS ISC DShield suspicious domains, high sensitivity level.

Source: https://www.dshield.org/feeds/suspiciousdomains_High.txt
Terms: SANS ISC data, CC BY-NC-SA 2.5.
Format: `#` header, a `Site` column title, one domain a line.
Category: `suspicious domain (suspicious)` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://www.dshield.org/feeds/suspiciousdomains_High.txt"
__check__ = "Site"
__info__ = "suspicious domain (suspicious)"
__reference__ = "dshield.org"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
