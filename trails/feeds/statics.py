"""statics: the original Maltrail project's compilation of its static trails (about 1.6 million rows).

Source: https://raw.githubusercontent.com/stamparm/aux/master/maltrail-static-trails.txt
Terms: MIT licence (the original Maltrail project's trail data).
Format: CSV rows `trail,info,reference`, streamed (the body is about 80 MB; cap raised to 512 MB).
Category: per row (`<family> (malware)`, `... (malicious)`, `... (suspicious)`, `mass scanner`); the
rows keep their own reference (normally `(static)`, so they take the static trails' precedence).
"""

import csv

__url__ = "https://raw.githubusercontent.com/stamparm/aux/master/maltrail-static-trails.txt"
__check__ = ","
__info__ = "static trails compilation"
__reference__ = "(static)"
__max_size__ = 512 << 20


def fetch(ctx):
    trails = {}
    pairs = {}
    for row in csv.reader(ctx.lines(__url__, __check__)):
        if len(row) == 3 and row[0] and not row[0].startswith("#"):
            pair = (row[1], row[2])
            trails[row[0]] = pairs.setdefault(pair, pair)
    return trails
