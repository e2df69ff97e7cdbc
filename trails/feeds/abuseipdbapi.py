"""abuseipdbapi: AbuseIPDB blacklist API (addresses with 90%+ abuse confidence), needs ABUSEIPDB_API_KEY.

Source: https://api.abuseipdb.com/api/v2/blacklist (plain-text variant, `Accept: text/plain`)
Terms: AbuseIPDB API terms; a free account allows a limited number of blacklist calls a day.
Format: one IPv4/IPv6 address a line.
Category: `known attacker` trails (IPv4). Skipped (not failed) when ABUSEIPDB_API_KEY is not set.
"""

from core.update.feeds import ips_in_lines

__url__ = "https://api.abuseipdb.com/api/v2/blacklist"
__check__ = "."
__info__ = "known attacker"
__reference__ = "abuseipdb.com"
__api_key__ = "ABUSEIPDB_API_KEY"


def fetch(ctx):
    headers = {"Key": ctx.api_key(__api_key__), "Accept": "text/plain"}
    text = ctx.retrieve(__url__, __check__, headers=headers, params={"confidenceMinimum": 90})
    return ips_in_lines(text, __info__, __reference__)
