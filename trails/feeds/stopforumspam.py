"""stopforumspam: StopForumSpam toxic address ranges (dedicated spam infrastructure).

Source: https://www.stopforumspam.com/downloads/toxic_ip_cidr.txt
Terms: StopForumSpam data, free for non-commercial use.
Format: one IPv4 CIDR or address a line.
Category: `spammer` trails (IPv4 addresses, CIDRs of up to 1024 addresses expanded).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://www.stopforumspam.com/downloads/toxic_ip_cidr.txt"
__check__ = "."
__info__ = "spammer"
__reference__ = "stopforumspam.com"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__, expand=True)
