"""otx: AlienVault OTX (LevelBlue) -- indicators of the pulses the account subscribes to; needs OTX_API_KEY.

Source: https://otx.alienvault.com/api/v1/pulses/subscribed (header X-OTX-API-KEY; paged through `next`)
Terms: OTX terms of service (free account).
Format: JSON `{"results": [{"malware_families": [...], "indicators": [{"type", "indicator"}]}], "next": url}`.
Category: `<family> (malware)` when the pulse names a malware family, else `bad reputation (otx)`; IPv4,
domain, hostname and URL indicators. Skipped (not failed) when OTX_API_KEY is not set.
"""

import json

from core.update.feeds import FeedError, domain_of, is_ipv4, malware_info, strip_scheme

__url__ = "https://otx.alienvault.com/api/v1/pulses/subscribed?limit=50"
__check__ = "results"
__info__ = "bad reputation (otx)"
__reference__ = "otx.alienvault.com"
__api_key__ = "OTX_API_KEY"
MAX_PAGES = 20


def _family(pulse):
    for family in pulse.get("malware_families") or []:
        name = family.get("display_name") if isinstance(family, dict) else family
        if name:
            return malware_info(str(name), __info__)
    return __info__


def fetch(ctx):
    headers = {"X-OTX-API-KEY": ctx.api_key(__api_key__)}
    trails = {}
    url = __url__
    for _page in range(MAX_PAGES):
        try:
            data = json.loads(ctx.retrieve(url, __check__, headers=headers))
        except ValueError as ex:
            raise FeedError(f"invalid JSON: {ex}") from None
        for pulse in data.get("results") or []:
            info = _family(pulse)
            for item in pulse.get("indicators") or []:
                kind, value = item.get("type"), str(item.get("indicator") or "")
                if kind == "IPv4" and is_ipv4(value):
                    trails[value] = (info, __reference__)
                elif kind in ("domain", "hostname") and domain_of(value):
                    trails[domain_of(value)] = (info, __reference__)
                elif kind == "URL":
                    trails[strip_scheme(value)] = (info, __reference__)
        url = data.get("next")
        if not url:
            break
    return trails
