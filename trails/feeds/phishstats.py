"""phishstats: PhishStats phishing URLs of the last 30 days with a phishing score (0-10).

Source: https://phishstats.info/phish_score.csv
Terms: free for use (PhishStats, CC BY 4.0-style attribution requested).
Format: CSV `"date","score","url","ip"` with `#` comments; rows with score >= MIN_SCORE are taken.
Category: `phishing` URL trails (scheme stripped).
"""

from core.update.feeds import csv_rows, strip_scheme

__url__ = "https://phishstats.info/phish_score.csv"
__check__ = "PhishStats"
__info__ = "phishing"
__reference__ = "phishstats.info"
MIN_SCORE = 4.0


def fetch(ctx):
    trails = {}
    for row in csv_rows(ctx.retrieve(__url__, __check__)):
        try:
            score = float(row[1])
        except (IndexError, ValueError):
            continue
        if score >= MIN_SCORE and len(row) >= 3 and "." in row[2]:
            trails[strip_scheme(row[2])] = (__info__, __reference__)
    return trails
