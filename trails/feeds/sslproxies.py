"""sslproxies: Open SSL proxies of the last day from sslproxies.org (FireHOL ipset).

Source: https://iplists.firehol.org/files/sslproxies_1d.ipset
Terms: sslproxies.org public data, redistributed by FireHOL.
Format: FireHOL ipset.
Category: `proxy (suspicious)` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/sslproxies_1d.ipset"
__check__ = "sslproxies"
__info__ = "proxy (suspicious)"
__reference__ = "sslproxies.org"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
