"""emergingthreatsdns: C2 domains from Proofpoint Emerging Threats DNS/TLS SNI malware rules.

Source: https://rules.emergingthreats.net/open/suricata/rules/emerging-malware.rules
Terms: ET Open ruleset, free to use (BSD-style ET Open licence).
Format: Suricata rules; rules whose message names a CnC/C2 domain and that match on `dns.query` or
`tls.sni` carry the domain in `content:"..."` (`|hex|` escapes decoded, leading dot removed).
Category: `<family> (malware)` domain trails (family taken from the rule message, else `malware`).
"""

import re

from core.update.feeds import content_lines, domain_of, malware_info

__url__ = "https://rules.emergingthreats.net/open/suricata/rules/emerging-malware.rules"
__check__ = "CnC"
__info__ = "malware"
__reference__ = "emergingthreats.net"
_MSG = re.compile(r'msg:"([^"]+)"')
_CONTENT = re.compile(r'(?:dns[._]query|tls[._]sni);\s*content:"([^"]+)"')
_FAMILY = re.compile(r"ET (?:MALWARE|TROJAN|MOBILE_MALWARE) (?:Observed )?(?:[\w-]+/)?(.+?) (?:CnC|C2)\b")
_HEX = re.compile(r"\|([0-9a-fA-F ]+)\|")


def _decode(content):
    return _HEX.sub(lambda m: bytes.fromhex(m.group(1).replace(" ", "")).decode("latin-1"), content)


def fetch(ctx):
    trails = {}
    for line in content_lines(ctx.retrieve(__url__, __check__)):
        msg = _MSG.search(line)
        if not msg or not re.search(r"(CnC|C2) (Domain|DNS Query)", msg.group(1)):
            continue
        content = _CONTENT.search(line)
        domain = domain_of(_decode(content.group(1)).lstrip(".")) if content else None
        if domain:
            family = _FAMILY.search(msg.group(1))
            trails[domain] = (malware_info(family.group(1) if family else None), __reference__)
    return trails
