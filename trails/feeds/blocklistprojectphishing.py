"""blocklistprojectphishing: The Block List Project: phishing domains.

Source: https://blocklistproject.github.io/Lists/alt-version/phishing-nl.txt
Terms: Unlicense (public domain).
Format: one domain a line (no-localhost variant).
Category: `phishing` trails (domains).
"""

from core.update.feeds import domains_in_lines

__url__ = "https://blocklistproject.github.io/Lists/alt-version/phishing-nl.txt"
__check__ = "."
__info__ = "phishing"
__reference__ = "blocklistproject.github.io"


def fetch(ctx):
    return domains_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
