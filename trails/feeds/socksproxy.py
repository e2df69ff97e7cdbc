"""socksproxy: Open SOCKS proxies of the last 7 days from socks-proxy.net (FireHOL ipset).

Source: https://iplists.firehol.org/files/socks_proxy_7d.ipset
Terms: socks-proxy.net public data, redistributed by FireHOL.
Format: FireHOL ipset.
Category: `proxy (suspicious)` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/socks_proxy_7d.ipset"
__check__ = "socks_proxy"
__info__ = "proxy (suspicious)"
__reference__ = "socks-proxy.net"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
