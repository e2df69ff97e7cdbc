"""blackbook: malware domains with their family names, curated by the original Maltrail author.

Source: https://raw.githubusercontent.com/stamparm/blackbook/master/blackbook.csv
Terms: MIT licence (stamparm/blackbook).
Format: CSV with a header `Domain,Malware,Date added,Source`.
Category: `<family> (malware)` domain trails.
"""

from core.update.feeds import csv_rows, domain_of, malware_info

__url__ = "https://raw.githubusercontent.com/stamparm/blackbook/master/blackbook.csv"
__check__ = "Malware"
__info__ = "malware"
__reference__ = "github.com/stamparm/blackbook"


def fetch(ctx):
    trails = {}
    for row in csv_rows(ctx.retrieve(__url__, __check__)):
        domain = domain_of(row[0]) if len(row) >= 2 else None
        if domain:
            trails[domain] = (malware_info(row[1]), __reference__)
    return trails
