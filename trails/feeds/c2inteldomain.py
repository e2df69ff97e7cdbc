"""c2inteldomain: C2IntelFeeds -- domain C2 indicators (Cobalt Strike, Sliver, Metasploit, ...) from Censys data.

Source: https://raw.githubusercontent.com/drb-ra/C2IntelFeeds/master/feeds/domainC2s.csv
Terms: public GitHub repository (drb-ra/C2IntelFeeds), free to use.
Format: CSV `#domain,ioc` (header commented), e.g. `x,Possible Cobalt Strike C2 ...`.
Category: `<framework> (malware)` domain trails (framework taken from the description).
"""

import re

from core.feeds import csv_rows, domain_of, malware_info

__url__ = "https://raw.githubusercontent.com/drb-ra/C2IntelFeeds/master/feeds/domainC2s.csv"
__check__ = ","
__info__ = "c2 server (malware)"
__reference__ = "github.com/drb-ra/C2IntelFeeds"
_FRAMEWORK = re.compile(r"Possible (.+?) C2", re.I)


def fetch(ctx):
    trails = {}
    for row in csv_rows(ctx.retrieve(__url__, __check__)):
        if len(row) < 2:
            continue
        match = _FRAMEWORK.search(row[1])
        info = (malware_info(match.group(1), __info__) if match else __info__, __reference__)
        domain = domain_of(row[0])
        if domain:
            trails[domain] = info
    return trails
