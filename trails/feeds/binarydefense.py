"""binarydefense: Binary Defense Systems Artillery threat intelligence banlist.

Source: https://www.binarydefense.com/banlist.txt
Terms: free for use; attribution to Binary Defense Systems requested in the file header.
Format: one IPv4 a line after a `#` header.
Category: `known attacker` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://www.binarydefense.com/banlist.txt"
__check__ = "Binary Defense"
__info__ = "known attacker"
__reference__ = "binarydefense.com"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
