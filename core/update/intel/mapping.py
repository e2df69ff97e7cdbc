"""Intel mapping rules: MISP attributes -> trail keys, tags/labels/names -> the info column, counts.

Where it sits: intel sources (core/update/intel/: stix.py, taxii.py, misp_feed.py, misp.py) ->
**mapping** -> the source's trails -> warning lists (warninglists.py) -> the update's merge, where
every row passes the one row validation (core/update/sanity.py) like every other source.

- `attribute_keys(type, value)`: MISP attribute types domain, hostname, ip-dst, ip-src, ip-dst|port,
  ip-src|port, domain|ip, hostname|port, url, uri, x509-fingerprint-sha1, ja3-fingerprint-md5,
  user-agent (a `ua:` trail; the `|` composites split as MISP defines them); anything else is a
  counted reason.
- `ja4_keys(value, variant)`: the `ja4-fingerprint` of a MISP `ja4-plus` object, loaded only for the
  JA4 (TLS client) variant named by its sibling `ja4-type`, or, with no `ja4-type` at hand (a
  restSearch answer lists attributes, not objects), when the value has a JA4's shape.
- `info_for(names, tags)`: the info column in the original's style: a related malware family
  `<name> (malware)`, a threat actor or intrusion set `<name> (apt)`, a phishing tag `phishing`, else
  `malicious` (a low-priority word for the merge: a feed's more specific info wins).
- `IntelStats`: loaded indicators and the reasons why others were not loaded, per source.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from core.protocols.fingerprints import fingerprint_kind
from core.update.feeds import malware_info, strip_scheme
from core.update.intel.pattern import Unmappable, address_key, user_agent_key

DEFAULT_INFO = "malicious"
MAX_REASONS = 64  # distinct reasons kept per source (hostile input cannot grow the report)
_HEX = re.compile(r"[0-9a-f]+\Z")
_MALWARE_GALAXIES = ("malpedia", "ransomware", "rat", "botnet", "banker", "stealer", "backdoor", "tool",
                     "android", "malware", "exploit-kit", "cryptominers")
_ACTOR_GALAXIES = ("threat-actor", "mitre-intrusion-set", "intrusion-set", "microsoft-activity-group")
_GALAXY_TAG = re.compile(r'misp-galaxy:([a-z0-9-]+)="([^"]{1,128})"')
_TRAIL_INFO = re.compile(r"[a-z0-9][a-z0-9 ._-]{0,96} \([a-z ]{3,24}\)\Z")  # `emotet (malware)`: this
# product's own info, as its exports label indicators and events (a trail set exchanged between servers)


@dataclass
class IntelStats:
    """What one intel source yielded: indicators loaded and trail keys, reasons for the rest, and
    the source object of each trail key (STIX id, MISP event UUID) for the client's drawer."""

    loaded: int = 0
    keys: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        if reason not in self.skipped and len(self.skipped) >= MAX_REASONS:
            reason = "other"
        self.skipped[reason] = self.skipped.get(reason, 0) + count


def actor_info(name: str) -> str:
    """`<name> (apt)` for a threat actor or intrusion set (`APT28 - G0007` -> `apt28 (apt)`)."""
    text = re.sub(r"\s+-\s+G\d{4}\Z", "", name.strip())
    text = re.sub(r"[^a-z0-9 ._-]", "", text.lower()).strip()
    return f"{text} (apt)" if text else DEFAULT_INFO


def info_for_tags(tags: list[str]) -> str | None:
    """Info from MISP tags or STIX labels: galaxy clusters first, then a label already in the trail
    info style (`emotet (malware)`), then a phishing tag; None if none of them."""
    phishing = False
    styled: str | None = None
    for tag in tags:
        if not isinstance(tag, str):
            continue
        match = _GALAXY_TAG.match(tag.lower())
        if match:
            galaxy, name = match.groups()
            if galaxy in _ACTOR_GALAXIES:
                return actor_info(name)
            if galaxy in _MALWARE_GALAXIES:
                family = name.split(" - ", 1)[0]
                info = malware_info(family.split(".", 1)[1] if family.startswith(("win.", "elf.", "apk.", "osx."))
                                    else family, "")
                if info:
                    return info
        if styled is None and _TRAIL_INFO.match(tag):
            styled = tag
        if "phishing" in tag.lower():
            phishing = True
    return styled or ("phishing" if phishing else None)


def info_for(names: list[str], tags: list[str]) -> str:
    """The info column: a related object's name (already `<x> (malware)`/`(apt)`), else the tags."""
    for name in sorted(names):
        if name:
            return name
    return info_for_tags(tags) or DEFAULT_INFO


# --- MISP attributes -------------------------------------------------------------------------------

def _hex(value: str, length: int) -> str:
    digest = value.strip().lower()
    if len(digest) != length or not _HEX.match(digest):
        raise Unmappable("bad hash value")
    return digest


def _domain(value: str) -> str:
    name = value.strip().lower().rstrip(".")
    if not name or "/" in name or " " in name:
        raise Unmappable("bad domain value")
    return name


def _port(value: str) -> int:
    text = value.strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise Unmappable("bad port")
    return int(text)


def _ip_port(address: str, port: str) -> str:
    key = address_key(address)
    if "/" in key:
        raise Unmappable("network with port")
    number = _port(port)
    return f"[{key}]:{number}" if ":" in key else f"{key}:{number}"


def _uri(value: str) -> str:
    text = value.strip()
    if "://" in text:
        return strip_scheme(text)
    if not text.startswith("/") or len(text) < 2:
        raise Unmappable("bad uri value")
    return text


JA4_RELATION = "ja4-fingerprint"  # the `ja4-plus` object's fingerprint; its `ja4-type` names the variant
JA4_TYPE_RELATION = "ja4-type"


def ja4_keys(value: object, variant: object) -> list[str]:
    """The trail key of a `ja4-plus` object's fingerprint: only the JA4 (TLS client) variant has a
    trail type; JA4S, JA4H, JA4X, JA4SSH, JA4T... are counted. Without a `ja4-type` the value's
    shape decides (the other variants' shapes differ from a JA4's)."""
    if isinstance(variant, str) and variant.strip() and variant.strip().upper() != "JA4":
        raise Unmappable("ja4+ variant other than JA4")
    text = value.strip().lower() if isinstance(value, str) else ""
    if fingerprint_kind(text) != "ja4":
        raise Unmappable("ja4+ fingerprint not a JA4")
    return [text]


def attribute_keys(kind: str, value: str) -> list[str]:
    """Trail keys of one MISP attribute; raises Unmappable (the counted reason) otherwise."""
    if not isinstance(kind, str) or not isinstance(value, str) or not value.strip():
        raise Unmappable("malformed attribute")
    if kind in ("domain", "hostname"):
        return [_domain(value)]
    if kind in ("ip-dst", "ip-src"):
        return [address_key(value)]
    if kind == "url":
        return [strip_scheme(value)]
    if kind == "uri":
        return [_uri(value)]
    if kind == "x509-fingerprint-sha1":
        return [_hex(value, 40)]
    if kind == "ja3-fingerprint-md5":
        return [_hex(value, 32)]
    if "|" in kind:
        first, _, second = value.partition("|")
        if kind == "ip-dst|port":
            return [_ip_port(first, second)]
        if kind == "ip-src|port":
            _port(second)
            return [address_key(first)]  # the port is the source's own: the address is the trail
        if kind == "domain|ip":
            return [_domain(first), address_key(second)]
        if kind == "hostname|port":
            _port(second)
            return [_domain(first)]
    if kind == "user-agent":
        return [user_agent_key(value)]
    raise Unmappable("attribute type without trail")


def is_address(key: str) -> bool:
    try:
        ipaddress.ip_address(key)
    except ValueError:
        return False
    return True


def tag_names(value: object) -> list[str]:
    """The names of a MISP `Tag` list (`[{"name": ...}]`), anything malformed left out."""
    if not isinstance(value, list):
        return []
    return [tag["name"] for tag in value[:256] if isinstance(tag, dict) and isinstance(tag.get("name"), str)]


def ja4_variants(attributes: list[object]) -> dict[str, str]:
    """{object_id: ja4-type value} of the `ja4-type` attributes among `attributes` (a restSearch
    page lists an object's attributes side by side, linked by `object_id`)."""
    found: dict[str, str] = {}
    for attribute in attributes:
        if isinstance(attribute, dict) and attribute.get("object_relation") == JA4_TYPE_RELATION:
            value, owner = attribute.get("value"), attribute.get("object_id")
            if isinstance(value, str) and isinstance(owner, str | int) and str(owner) not in ("", "0"):
                found[str(owner)] = value
    return found


def object_variant(obj: object) -> str | None:
    """The `ja4-type` value of one MISP object (a feed event's `Object` entry), or None."""
    attributes = obj.get("Attribute") if isinstance(obj, dict) else None
    for attribute in attributes[:64] if isinstance(attributes, list) else []:
        if isinstance(attribute, dict) and attribute.get("object_relation") == JA4_TYPE_RELATION:
            value = attribute.get("value")
            return value if isinstance(value, str) else None
    return None


def misp_attribute_keys(attribute: object, stats: IntelStats, variant: str | None = None) -> list[str]:
    """Trail keys of one MISP attribute dict; `to_ids` false, deleted and unmappable ones are counted.
    `variant` is the `ja4-type` of the attribute's object, when known."""
    if not isinstance(attribute, dict):
        stats.skip("malformed attribute")
        return []
    if attribute.get("deleted") in (True, 1, "1"):
        stats.skip("deleted")
        return []
    if attribute.get("to_ids") not in (True, 1, "1"):
        stats.skip("to_ids false")
        return []
    try:
        if attribute.get("object_relation") == JA4_RELATION:
            return ja4_keys(attribute.get("value"), variant)
        return attribute_keys(attribute.get("type"), attribute.get("value"))  # type: ignore[arg-type]
    except Unmappable as ex:
        stats.skip(str(ex))
        return []
