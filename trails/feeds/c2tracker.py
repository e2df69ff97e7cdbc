"""c2tracker: C2-Tracker: command-and-control servers (Cobalt Strike, Sliver, Metasploit, ...) found by Shodan/Censys queries.

Source: https://raw.githubusercontent.com/montysecurity/C2-Tracker/main/data/all.txt
Terms: public GitHub repository (MIT licence).
Format: one IPv4 a line.
Category: `c2 server (malware)` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://raw.githubusercontent.com/montysecurity/C2-Tracker/main/data/all.txt"
__check__ = "."
__info__ = "c2 server (malware)"
__reference__ = "github.com/montysecurity/C2-Tracker"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
