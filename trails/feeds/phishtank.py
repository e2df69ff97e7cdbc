"""phishtank: PhishTank verified, online phishing URLs (Cisco Talos); PHISHTANK_API_KEY recommended.

Source: https://data.phishtank.com/data/online-valid.csv, or .../data/<PHISHTANK_API_KEY>/online-valid.csv
when the key is set (keyless downloads are heavily rate-limited).
Terms: PhishTank terms of use (free; register an application key for regular downloads).
Format: CSV with a header `phish_id,url,phish_detail_url,submission_time,verified,verification_time,online,target`.
Category: `phishing` URL trails (scheme stripped).
"""

from core.update.feeds import csv_rows, strip_scheme

__url__ = "https://data.phishtank.com/data/online-valid.csv"
__check__ = "phish_id"
__info__ = "phishing"
__reference__ = "phishtank.com"


def fetch(ctx):
    key = ctx.api_key("PHISHTANK_API_KEY")
    url = __url__.replace("/data/", f"/data/{key}/") if key else __url__
    trails = {}
    for row in csv_rows(ctx.retrieve(url, __check__)):
        if len(row) >= 2 and row[0].isdigit() and "." in row[1]:
            trails[strip_scheme(row[1])] = (__info__, __reference__)
    return trails
