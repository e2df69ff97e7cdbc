"""digitalsideurl: DigitalSide Threat-Intel: URLs serving malware samples it analysed recently.

Source: https://osint.digitalside.it/Threat-Intel/lists/latesturls.txt
Terms: MIT licence (DigitalSide Threat-Intel repository).
Format: `#` header, one URL a line.
Category: `malware` trails (urls).
"""

from core.update.feeds import urls_in_lines

__url__ = "https://osint.digitalside.it/Threat-Intel/lists/latesturls.txt"
__check__ = "http"
__info__ = "malware"
__reference__ = "osint.digitalside.it"


def fetch(ctx):
    return urls_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
