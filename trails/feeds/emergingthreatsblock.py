"""emergingthreatsblock: Proofpoint Emerging Threats firewall block list (Spamhaus DROP, DShield and abuse.ch sources combined).

Source: https://rules.emergingthreats.net/fwrules/emerging-Block-IPs.txt
Terms: ET Open, free to use (BSD-style ET Open licence).
Format: `#` comments, IPv4 addresses and CIDR networks.
Category: `known attacker` trails (IPv4 addresses, CIDRs of up to 1024 addresses expanded).
"""

from core.update.feeds import ips_in_lines

__url__ = "https://rules.emergingthreats.net/fwrules/emerging-Block-IPs.txt"
__check__ = "."
__info__ = "known attacker"
__reference__ = "emergingthreats.net"


def fetch(ctx):
    return ips_in_lines(ctx.retrieve(__url__, __check__), __info__, __reference__, expand=True)
