"""digitalsideip: DigitalSide Threat-Intel: IPv4 addresses hosting malware samples it analysed recently.

Source: https://osint.digitalside.it/Threat-Intel/lists/latestips.txt
Terms: MIT licence (DigitalSide Threat-Intel repository).
Format: `#` header, one IPv4 a line.
Category: `potential malware site` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://osint.digitalside.it/Threat-Intel/lists/latestips.txt"
__check__ = "."
__info__ = "potential malware site"
__reference__ = "osint.digitalside.it"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
