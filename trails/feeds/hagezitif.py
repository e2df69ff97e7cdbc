"""hagezitif: HaGeZi Threat Intelligence Feeds: malware, phishing, scam and C2 domains compiled from many sources.

Source: https://raw.githubusercontent.com/hagezi/dns-blocklists/main/domains/tif.txt
Terms: GPLv3 (hagezi/dns-blocklists).
Format: `#` header, one domain a line.
Category: `bad reputation (threat intelligence)` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://raw.githubusercontent.com/hagezi/dns-blocklists/main/domains/tif.txt"
__check__ = "Threat"
__info__ = "bad reputation (threat intelligence)"
__reference__ = "github.com/hagezi/dns-blocklists"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
