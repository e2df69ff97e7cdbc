"""fireholabusers: FireHOL abusers (1 day): traffic abusers, spammers and attackers combined from several lists.

Source: https://iplists.firehol.org/files/firehol_abusers_1d.netset
Terms: FireHOL list, GPLv2; the data keeps the terms of each source.
Format: FireHOL netset: `#` header, addresses and CIDRs.
Category: `bad reputation (abuser)` trails (IPv4 addresses, CIDRs of up to 1024 addresses expanded).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/firehol_abusers_1d.netset"
__check__ = "firehol_abusers_1d"
__info__ = "bad reputation (abuser)"
__reference__ = "iplists.firehol.org"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__, expand=True)
