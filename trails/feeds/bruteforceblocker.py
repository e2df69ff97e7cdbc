"""bruteforceblocker: SSH brute-force sources reported by BruteForceBlocker users (danger.rulez.sk).

Source: https://danger.rulez.sk/projects/bruteforceblocker/blist.php
Terms: free public list (rulez.sk project).
Format: tab-separated `IP  # Last Reported  Count  ID`, a `#` header line.
Category: `known attacker` trails (IPv4).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://danger.rulez.sk/projects/bruteforceblocker/blist.php"
__check__ = "Last Reported"
__info__ = "known attacker"
__reference__ = "rulez.sk"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
