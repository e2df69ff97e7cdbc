"""digitalsidedomain: DigitalSide Threat-Intel: domains hosting malware samples it analysed recently.

Source: https://osint.digitalside.it/Threat-Intel/lists/latestdomains.txt
Terms: MIT licence (DigitalSide Threat-Intel repository).
Format: `#` header, one domain a line.
Category: `malware` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://osint.digitalside.it/Threat-Intel/lists/latestdomains.txt"
__check__ = "."
__info__ = "malware"
__reference__ = "osint.digitalside.it"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
