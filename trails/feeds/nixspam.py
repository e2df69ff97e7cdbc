"""nixspam: NiX Spam DNSBL (heise iX) spam sources of the last hours (FireHOL ipset).

Source: https://iplists.firehol.org/files/nixspam.ipset
Terms: NiX Spam public data, redistributed by FireHOL.
Format: FireHOL ipset.
Category: `spammer` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/nixspam.ipset"
__check__ = "nixspam"
__info__ = "spammer"
__reference__ = "nixspam.net"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
