"""ipsum: IPsum daily threat-intelligence aggregate (addresses listed by 30+ public blacklists),
by the original Maltrail author; only addresses on at least MIN_LISTS lists are taken.

Source: https://raw.githubusercontent.com/stamparm/ipsum/master/ipsum.txt
Terms: Unlicense (public domain).
Format: `#` header, `IP<TAB>number of lists` lines.
Category: `known attacker` trails (IPv4).
"""

from core.update.feeds import content_lines, is_ipv4

__url__ = "https://raw.githubusercontent.com/stamparm/ipsum/master/ipsum.txt"
__check__ = "IPsum"
__info__ = "known attacker"
__reference__ = "github.com/stamparm/ipsum"
MIN_LISTS = 3


def fetch(ctx):
    trails = {}
    for line in content_lines(ctx.retrieve(__url__, __check__)):
        parts = line.split()
        if len(parts) == 2 and is_ipv4(parts[0]) and parts[1].isdigit() and int(parts[1]) >= MIN_LISTS:
            trails[parts[0]] = (__info__, __reference__)
    return trails
