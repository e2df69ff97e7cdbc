"""bitcoinnodes: Bitcoin nodes seen by bitnodes.io in the last day (FireHOL ipset).

Source: https://iplists.firehol.org/files/bitcoin_nodes_1d.ipset
Terms: bitnodes.io public data, redistributed by FireHOL (GPLv2 tooling; data under the source's terms).
Format: FireHOL ipset: `#` header, one IPv4 a line.
Category: `bad reputation (bitcoin node)` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/bitcoin_nodes_1d.ipset"
__check__ = "bitcoin_nodes"
__info__ = "bad reputation (bitcoin node)"
__reference__ = "bitnodes.io"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
