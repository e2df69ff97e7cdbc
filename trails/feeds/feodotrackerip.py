"""feodotrackerip: abuse.ch Feodo Tracker botnet C2 servers (Emotet, Dridex, QakBot, Pikabot, ...).

Source: https://feodotracker.abuse.ch/downloads/ipblocklist.csv
Terms: CC0 (abuse.ch).
Format: CSV `first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware` with `#` comments;
only rows whose status is `online` are used.
Category: `<malware> (malware)` trails (IPv4).
"""

from core.update.feeds import csv_rows, is_ipv4, malware_info

__url__ = "https://feodotracker.abuse.ch/downloads/ipblocklist.csv"
__check__ = "Feodo"
__info__ = "malware"
__reference__ = "feodotracker.abuse.ch"


def fetch(ctx):
    trails = {}
    for row in csv_rows(ctx.retrieve(__url__, __check__)):
        if len(row) >= 6 and is_ipv4(row[1]) and row[3].lower() == "online":
            trails[row[1]] = (malware_info(row[5]), __reference__)
    return trails
