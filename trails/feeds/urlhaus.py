"""urlhaus: abuse.ch URLhaus: malware distribution URLs.

Source: https://urlhaus.abuse.ch/downloads/text/
Terms: CC0 (abuse.ch).
Format: `#` header, one URL a line.
Category: `malware` trails (urls).
"""

from core.update.feeds import urls_in_lines

__url__ = "https://urlhaus.abuse.ch/downloads/text/"
__check__ = "URLhaus"
__info__ = "malware"
__reference__ = "urlhaus.abuse.ch"


def fetch(ctx):
    return urls_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
