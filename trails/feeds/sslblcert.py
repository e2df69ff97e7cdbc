"""sslblcert: abuse.ch SSL Blacklist: SHA-1 fingerprints of TLS certificates used by botnet C2 servers.

Source: https://sslbl.abuse.ch/blacklist/sslblacklist.csv
Terms: CC0 (abuse.ch).
Format: CSV `Listingdate,SHA1,Listingreason` with `#` comments (reason e.g. `Dridex C&C`).
Category: `<family> c2 cert (suspicious)` trails keyed by the lower-case hex SHA-1.
"""

import re

from core.update.feeds import csv_rows

__url__ = "https://sslbl.abuse.ch/blacklist/sslblacklist.csv"
__check__ = "SSL"
__info__ = "c2 cert (suspicious)"
__reference__ = "sslbl.abuse.ch"
_SHA1 = re.compile(r"[0-9a-f]{40}")


def fetch(ctx):
    trails = {}
    for row in csv_rows(ctx.retrieve(__url__, __check__)):
        if len(row) >= 3 and _SHA1.fullmatch(row[1].lower()):
            family = re.sub(r"\s*(C&C|C2|CnC).*", "", row[2], flags=re.I).strip().lower()
            trails[row[1].lower()] = (f"{family} c2 cert (suspicious)" if family else __info__, __reference__)
    return trails
