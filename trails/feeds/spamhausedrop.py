"""spamhausedrop: Spamhaus EDROP: the extended DROP list (merged into DROP by Spamhaus in 2024; the file is still published).

Source: https://www.spamhaus.org/drop/edrop.txt
Terms: free for use under the Spamhaus DROP terms (no redistribution for profit).
Format: `;` comments, `CIDR ; SBLnnnn` lines.
Category: `spamhaus edrop (malicious)` trails (IPv4; networks of up to 1024 addresses expanded, larger ones skipped).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://www.spamhaus.org/drop/edrop.txt"
__check__ = "Spamhaus"
__info__ = "spamhaus edrop (malicious)"
__reference__ = "spamhaus.org"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__, expand=True)
