"""fireholl4: FireHOL IP list level 4 -- attacks seen in the last 90 days and lists with more false positives (CleanTalk, blocklist.net.ua, ...); use with care.

Source: https://iplists.firehol.org/files/firehol_level4.netset
Terms: FireHOL list, GPLv2; the data keeps the terms of each of its sources.
Format: FireHOL netset: `#` header, IPv4 addresses and CIDR networks.
Category: `bad reputation (firehol level4)` trails (IPv4; CIDRs of up to 1024 addresses expanded, larger
networks skipped; bogon networks in level 1 are removed by the update's bogon filter).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/firehol_level4.netset"
__check__ = "firehol_level4"
__info__ = "bad reputation (firehol level4)"
__reference__ = "iplists.firehol.org"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__, expand=True)
