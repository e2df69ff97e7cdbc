"""botvrijdomain: botvrij.eu: domain indicators from its public MISP events.

Source: https://www.botvrij.eu/data/ioclist.domain
Terms: free for use (botvrij.eu open data).
Format: `domain # description` lines.
Category: `malware` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://www.botvrij.eu/data/ioclist.domain"
__check__ = "."
__info__ = "malware"
__reference__ = "botvrij.eu"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
