"""c2intelip: C2IntelFeeds -- IPv4 C2 indicators (Cobalt Strike, Sliver, Metasploit, ...) from Censys data.

Source: https://raw.githubusercontent.com/drb-ra/C2IntelFeeds/master/feeds/IPC2s.csv
Terms: public GitHub repository (drb-ra/C2IntelFeeds), free to use.
Format: CSV `#ip,ioc` (header commented), e.g. `x,Possible Cobalt Strike C2 ...`.
Category: `<framework> (malware)` IPv4 trails (framework taken from the description).
"""

from core.update.feeds import c2intel_rows, is_ipv4

__url__ = "https://raw.githubusercontent.com/drb-ra/C2IntelFeeds/master/feeds/IPC2s.csv"
__check__ = ","
__info__ = "c2 server (malware)"
__reference__ = "github.com/drb-ra/C2IntelFeeds"


def fetch(ctx):
    rows = c2intel_rows(ctx.retrieve(__url__, __check__), __info__, __reference__)
    return {ip: info for ip, info in rows if is_ipv4(ip)}
