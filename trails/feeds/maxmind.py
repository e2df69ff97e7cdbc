"""maxmind: MaxMind list of high-risk anonymous proxies seen in fraud (FireHOL ipset).

Source: https://iplists.firehol.org/files/maxmind_proxy_fraud.ipset
Terms: MaxMind public sample page, redistributed by FireHOL.
Format: FireHOL ipset.
Category: `bad reputation (suspicious)` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/maxmind_proxy_fraud.ipset"
__check__ = "maxmind"
__info__ = "bad reputation (suspicious)"
__reference__ = "maxmind.com"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
