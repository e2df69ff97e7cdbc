"""dshieldip: DShield (SANS ISC) top 1000 attacking addresses (FireHOL ipset).

Source: https://iplists.firehol.org/files/dshield_top_1000.ipset
Terms: SANS ISC DShield data, CC BY-NC-SA 2.5; redistributed by FireHOL.
Format: FireHOL ipset.
Category: `known attacker` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/dshield_top_1000.ipset"
__check__ = "dshield"
__info__ = "known attacker"
__reference__ = "dshield.org"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
