"""greensnow: GreenSnow: addresses caught attacking its honeypots (SSH, FTP, SMTP, ...).

Source: https://blocklist.greensnow.co/greensnow.txt
Terms: free for use; see greensnow.co.
Format: one IPv4 a line.
Category: `known attacker` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://blocklist.greensnow.co/greensnow.txt"
__check__ = "."
__info__ = "known attacker"
__reference__ = "greensnow.co"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
