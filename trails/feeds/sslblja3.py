"""sslblja3: abuse.ch SSLBL JA3 fingerprints of malware TLS clients.

Source: https://sslbl.abuse.ch/blacklist/ja3_fingerprints.csv
Terms: CC0 (abuse.ch). abuse.ch froze this list in 2023 but still publishes it.
Format: CSV `ja3_md5,Firstseen,Lastseen,Listingreason` with `#` comments.
Category: `<family> ja3 (suspicious)` trails keyed by the lower-case JA3 MD5 (for JA3-aware consumers;
the sensor matches TLS client fingerprints only where it computes them).
"""

import re

from core.update.feeds import csv_rows

__url__ = "https://sslbl.abuse.ch/blacklist/ja3_fingerprints.csv"
__check__ = "ja3"
__info__ = "ja3 (suspicious)"
__reference__ = "sslbl.abuse.ch"
_MD5 = re.compile(r"[0-9a-f]{32}")


def fetch(ctx):
    trails = {}
    for row in csv_rows(ctx.retrieve(__url__, __check__)):
        if len(row) >= 4 and _MD5.fullmatch(row[0].lower()):
            family = row[3].strip().lower()
            trails[row[0].lower()] = (f"{family} ja3 (suspicious)" if family else __info__, __reference__)
    return trails
