"""turris: Turris Sentinel greylist -- addresses attacking Turris routers' honeypots and firewalls (CZ.NIC).

Source: https://view.sentinel.turris.cz/greylist-data/greylist-latest.csv
Terms: see https://view.sentinel.turris.cz/greylist-data/LICENSE.txt (free use with attribution).
Format: CSV `Address,Tags` after `#` comments.
Category: `bad reputation` trails (IPv4). The original ships it in DISABLED_FEEDS (noisy).
"""

from core.update.feeds import csv_rows, is_ipv4

__url__ = "https://view.sentinel.turris.cz/greylist-data/greylist-latest.csv"
__check__ = "Address"
__info__ = "bad reputation"
__reference__ = "turris.cz"


def fetch(ctx):
    pair = (__info__, __reference__)
    return {row[0]: pair for row in csv_rows(ctx.retrieve(__url__, __check__)) if row and is_ipv4(row[0])}
