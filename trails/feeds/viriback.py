"""viriback: ViriBack C2 tracker -- malware control panels (families, URLs, hosting IPs).

Source: https://tracker.viriback.com/dump.php
Terms: free public data (ViriBack tracker).
Format: CSV `Family,URL,IP,FirstSeen`.
Category: `<family> (malware)` trails: the panel URL reduced to its directory (`host/panel/`).
"""

from core.update.feeds import csv_rows, malware_info, strip_scheme

__url__ = "https://tracker.viriback.com/dump.php"
__check__ = "Family"
__info__ = "malware"
__reference__ = "tracker.viriback.com"


def fetch(ctx):
    trails = {}
    for row in csv_rows(ctx.retrieve(__url__, __check__)):
        if len(row) >= 2 and row[0] != "Family" and "." in row[1]:
            url = strip_scheme(row[1])
            trails[url.rsplit("/", 1)[0] + "/"] = (malware_info(row[0]), __reference__)
    return trails
