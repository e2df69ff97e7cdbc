"""abuseipdb: AbuseIPDB 100%-confidence addresses of the last day, mirrored daily by the borestad/blocklist-abuseipdb project.

Source: https://raw.githubusercontent.com/borestad/blocklist-abuseipdb/main/abuseipdb-s100-1d.ipv4
Terms: AbuseIPDB data, redistributed by the mirror under AbuseIPDB's terms (free for non-commercial blocking).
Format: one IPv4 a line, optional `# ...` comments.
Category: `known attacker` trails (IPv4 addresses).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://raw.githubusercontent.com/borestad/blocklist-abuseipdb/main/abuseipdb-s100-1d.ipv4"
__check__ = "."
__info__ = "known attacker"
__reference__ = "abuseipdb.com"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__)
