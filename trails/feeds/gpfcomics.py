"""gpfcomics: GPF Comics DNSBL of attacking hosts (FireHOL ipset).

Source: https://iplists.firehol.org/files/gpf_comics.ipset
Terms: GPF Comics public data, redistributed by FireHOL.
Format: FireHOL ipset.
Category: `known attacker` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://iplists.firehol.org/files/gpf_comics.ipset"
__check__ = "gpf_comics"
__info__ = "known attacker"
__reference__ = "gpf-comics.com"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
