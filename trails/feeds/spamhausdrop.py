"""spamhausdrop: Spamhaus DROP (Don't Route Or Peer): netblocks hijacked or leased by professional spam and cybercrime operations.

Source: https://www.spamhaus.org/drop/drop.txt
Terms: free for use under the Spamhaus DROP terms (no redistribution for profit).
Format: `;` comments, `CIDR ; SBLnnnn` lines.
Category: `spamhaus drop (malicious)` trails (IPv4; networks of up to 1024 addresses expanded, larger ones skipped).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://www.spamhaus.org/drop/drop.txt"
__check__ = "Spamhaus"
__info__ = "spamhaus drop (malicious)"
__reference__ = "spamhaus.org"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__, expand=True)
