"""certpl: CERT Polska warning list of phishing and fraud domains.

Source: https://hole.cert.pl/domains/v2/domains.txt
Terms: public list published by CERT Polska for blocking (free use).
Format: one domain a line.
Category: `phishing` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://hole.cert.pl/domains/v2/domains.txt"
__check__ = "."
__info__ = "phishing"
__reference__ = "cert.pl"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
