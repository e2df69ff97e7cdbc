"""scriptzteam: scriptzteam badIPS: aggregated attacker addresses from honeypots.

Source: https://raw.githubusercontent.com/scriptzteam/badIPS/main/ips.txt
Terms: public GitHub repository (no explicit licence; published for blocking use).
Format: one IPv4 a line.
Category: `bad reputation` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://raw.githubusercontent.com/scriptzteam/badIPS/main/ips.txt"
__check__ = "."
__info__ = "bad reputation"
__reference__ = "github.com/scriptzteam/badIPS"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
