"""c2inteldomain: C2IntelFeeds -- domain C2 indicators (Cobalt Strike, Sliver, Metasploit, ...) from Censys data.

Source: https://raw.githubusercontent.com/drb-ra/C2IntelFeeds/master/feeds/domainC2s.csv
Terms: public GitHub repository (drb-ra/C2IntelFeeds), free to use.
Format: CSV `#domain,ioc` (header commented), e.g. `x,Possible Cobalt Strike C2 ...`.
Category: `<framework> (malware)` domain trails (framework taken from the description).
"""

from core.update.feeds import c2intel_rows, domain_of

__url__ = "https://raw.githubusercontent.com/drb-ra/C2IntelFeeds/master/feeds/domainC2s.csv"
__check__ = ","
__info__ = "c2 server (malware)"
__reference__ = "github.com/drb-ra/C2IntelFeeds"


def fetch(ctx):
    trails = {}
    for indicator, info in c2intel_rows(ctx.retrieve(__url__, __check__), __info__, __reference__):
        domain = domain_of(indicator)
        if domain:
            trails[domain] = info
    return trails
