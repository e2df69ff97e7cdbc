"""minerchk: minerchk: crypto-mining pool and in-browser miner hosts.

Source: https://raw.githubusercontent.com/Hestat/minerchk/master/hostslist.txt
Terms: public GitHub repository (GPLv3).
Format: one domain a line.
Category: `crypto mining (suspicious)` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://raw.githubusercontent.com/Hestat/minerchk/master/hostslist.txt"
__check__ = "."
__info__ = "crypto mining (suspicious)"
__reference__ = "github.com/Hestat/minerchk"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
