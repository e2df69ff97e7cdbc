"""threatfox: abuse.ch ThreatFox -- recent indicators of compromise (C2 domains, ip:port, URLs).

Source: https://threatfox.abuse.ch/export/csv/recent/ (indicators of the last 48 hours)
Terms: CC0 (abuse.ch).
Format: CSV with `#` comments; columns first_seen_utc, ioc_id, ioc_value, ioc_type, threat_type,
fk_malware, malware_alias, malware_printable, last_seen_utc, confidence_level, reference, tags, ...
Category: `<malware_printable> (malware)` trails for `domain`, `ip:port` and `url` indicators (hashes skipped).
"""

from core.update.feeds import csv_rows, domain_of, malware_info, strip_scheme

__url__ = "https://threatfox.abuse.ch/export/csv/recent/"
__check__ = "ThreatFox"
__info__ = "malware"
__reference__ = "threatfox.abuse.ch"


def fetch(ctx):
    trails = {}
    for row in csv_rows(ctx.retrieve(__url__, __check__)):
        if len(row) < 8:
            continue
        value, kind, info = row[2], row[3], (malware_info(row[7]), __reference__)
        if kind == "domain" and domain_of(value):
            trails[domain_of(value)] = info
        elif kind == "ip:port" and value.count(":") == 1:
            trails[value] = info
        elif kind == "url":
            trails[strip_scheme(value)] = info
    return trails
