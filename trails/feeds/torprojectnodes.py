"""torprojectnodes: every running Tor relay (not only exits), from the Tor Project's Onionoo service.

Source: https://onionoo.torproject.org/details?type=relay&running=true&fields=or_addresses
Terms: Tor Project public data (CC0 / public domain).
Format: JSON `{"relays": [{"or_addresses": ["ip:port", "[v6]:port", ...]}, ...]}`.
Category: `bad reputation (tor node)` trails (IPv4 and IPv6 hosts).
"""

import ipaddress
import json

from core.update.feeds import FeedError

__url__ = "https://onionoo.torproject.org/details?type=relay&running=true&fields=or_addresses"
__check__ = "relays"
__info__ = "bad reputation (tor node)"
__reference__ = "torproject.org"


def fetch(ctx):
    try:
        relays = json.loads(ctx.retrieve(__url__, __check__)).get("relays") or []
    except (ValueError, AttributeError) as ex:
        raise FeedError(f"invalid JSON: {ex}") from None
    trails = {}
    for relay in relays:
        for address in (relay.get("or_addresses") or []) if isinstance(relay, dict) else []:
            host = str(address).rsplit(":", 1)[0].strip("[]")
            try:
                trails[str(ipaddress.ip_address(host))] = (__info__, __reference__)
            except ValueError:
                continue
    return trails
