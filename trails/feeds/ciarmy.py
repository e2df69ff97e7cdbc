"""ciarmy: CINS Army list: poorly-scored addresses from the Sentinel IPS network (Collective Intelligence Network Security).

Source: https://cinsscore.com/list/ci-badguys.txt
Terms: free for use; see cinsscore.com.
Format: one IPv4 a line.
Category: `known attacker` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://cinsscore.com/list/ci-badguys.txt"
__check__ = "."
__info__ = "known attacker"
__reference__ = "cinsscore.com"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
