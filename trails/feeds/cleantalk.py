"""cleantalk: CleanTalk spam bots of the last day (FireHOL ipset).

Source: https://iplists.firehol.org/files/cleantalk_1d.ipset
Terms: CleanTalk public data, redistributed by FireHOL.
Format: FireHOL ipset.
Category: `spammer` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/cleantalk_1d.ipset"
__check__ = "cleantalk"
__info__ = "spammer"
__reference__ = "cleantalk.org"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
