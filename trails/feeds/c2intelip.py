"""c2intelip: C2IntelFeeds -- IPv4 C2 indicators (Cobalt Strike, Sliver, Metasploit, ...) from Censys data.

Source: https://raw.githubusercontent.com/drb-ra/C2IntelFeeds/master/feeds/IPC2s.csv
Terms: public GitHub repository (drb-ra/C2IntelFeeds), free to use.
Format: CSV `#ip,ioc` (header commented), e.g. `x,Possible Cobalt Strike C2 ...`.
Category: `<framework> (malware)` IPv4 trails (framework taken from the description).
"""

import re

from core.feeds import csv_rows, is_ipv4, malware_info

__url__ = "https://raw.githubusercontent.com/drb-ra/C2IntelFeeds/master/feeds/IPC2s.csv"
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
        if is_ipv4(row[0]):
            trails[row[0]] = info
    return trails
