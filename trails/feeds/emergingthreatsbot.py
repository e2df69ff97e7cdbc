"""emergingthreatsbot: Proofpoint Emerging Threats botnet command-and-control server rules.

Source: https://rules.emergingthreats.net/open/suricata/rules/botcc.rules
Terms: ET Open ruleset, free to use (BSD-style ET Open licence).
Format: Suricata rules; the destination address lists `-> [a,b,c]` hold the C2 addresses.
Category: `potential malware site` trails (IPv4).
"""

import re

from core.update.feeds import content_lines, is_ipv4

__url__ = "https://rules.emergingthreats.net/open/suricata/rules/botcc.rules"
__check__ = "CnC"
__info__ = "potential malware site"
__reference__ = "emergingthreats.net"
_TARGETS = re.compile(r"->\s*\[([^\]]+)\]")


def fetch(ctx):
    trails = {}
    for line in content_lines(ctx.retrieve(__url__, __check__)):
        match = _TARGETS.search(line)
        if match:
            for item in match.group(1).split(","):
                if is_ipv4(item.strip()):
                    trails[item.strip()] = (__info__, __reference__)
    return trails
