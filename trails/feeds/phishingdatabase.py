"""phishingdatabase: Phishing.Database: active phishing domains (tested by PyFunceble).

Source: https://raw.githubusercontent.com/mitchellkrogza/Phishing.Database/master/phishing-domains-ACTIVE.txt
Terms: MIT licence.
Format: one domain a line.
Category: `phishing` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://raw.githubusercontent.com/mitchellkrogza/Phishing.Database/master/phishing-domains-ACTIVE.txt"
__check__ = "."
__info__ = "phishing"
__reference__ = "github.com/mitchellkrogza/Phishing.Database"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
