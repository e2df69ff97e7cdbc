"""fireholl2: FireHOL IP list level 2 -- attacks of the last 48 hours (blocklist.de, DShield 1 day, GreenSnow, ...).

Source: https://iplists.firehol.org/files/firehol_level2.netset
Terms: FireHOL list, GPLv2; the data keeps the terms of each of its sources.
Format: FireHOL netset: `#` header, IPv4 addresses and CIDR networks.
Category: `bad reputation (firehol level2)` trails (IPv4; CIDRs of up to 1024 addresses expanded, larger
networks skipped; bogon networks in level 1 are removed by the update's bogon filter).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/firehol_level2.netset"
__check__ = "firehol_level2"
__info__ = "bad reputation (firehol level2)"
__reference__ = "iplists.firehol.org"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__, expand=True)
