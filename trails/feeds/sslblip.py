"""sslblip: abuse.ch SSLBL botnet C2 addresses (host and port of TLS-speaking C2 servers).

Source: https://sslbl.abuse.ch/blacklist/sslipblacklist.csv
Terms: CC0 (abuse.ch).
Format: CSV `Firstseen,DstIP,DstPort` with `#` comments.
Category: `c2 server (malware)` trails keyed `ip:port`.
"""

from core.update.feeds import csv_rows, is_ipv4

__url__ = "https://sslbl.abuse.ch/blacklist/sslipblacklist.csv"
__check__ = "SSL"
__info__ = "c2 server (malware)"
__reference__ = "sslbl.abuse.ch"


def fetch(ctx):
    trails = {}
    for row in csv_rows(ctx.retrieve(__url__, __check__)):
        if len(row) >= 3 and is_ipv4(row[1]) and row[2].isdigit() and 0 < int(row[2]) < 65536:
            trails[f"{row[1]}:{int(row[2])}"] = (__info__, __reference__)
    return trails
