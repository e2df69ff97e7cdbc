"""dshieldblock: SANS ISC DShield recommended block list -- the top 20 attacking /24 networks.

Source: https://feeds.dshield.org/block.txt
Terms: SANS ISC data, CC BY-NC-SA 2.5.
Format: `#` comments, a `Start End Netblock Attacks Name Country email` title line, tab-separated rows.
Category: `known attacker` trails (every address of each listed network, at most /22).
"""

from core.update.feeds import content_lines, expand_cidr, is_ipv4

__url__ = "https://feeds.dshield.org/block.txt"
__check__ = "Start"
__info__ = "known attacker"
__reference__ = "dshield.org"


def fetch(ctx):
    trails = {}
    for line in content_lines(ctx.retrieve(__url__, __check__)):
        parts = line.split("\t")
        if len(parts) >= 3 and is_ipv4(parts[0].strip()) and parts[2].strip().isdigit():
            for ip in expand_cidr(f"{parts[0].strip()}/{parts[2].strip()}"):
                trails[ip] = (__info__, __reference__)
    return trails
