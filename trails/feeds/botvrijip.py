"""botvrijip: botvrij.eu destination-address indicators from its public MISP events.

Source: https://www.botvrij.eu/data/ioclist.ip-dst
Terms: free for use (botvrij.eu open data).
Format: `ip # description` lines.
Category: `potential malware site` trails (IPv4).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://www.botvrij.eu/data/ioclist.ip-dst"
__check__ = "."
__info__ = "potential malware site"
__reference__ = "botvrij.eu"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
