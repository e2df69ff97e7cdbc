"""Trail set exports for other tools: STIX 2.1, a MISP feed, a Zeek Intel file, Suricata datasets.

Where it sits: api.py's route table sends every `/intel/...` path here (logged-in users). Each
export reads TRAILS_FILE row by row and streams its format (httpd.py gzips it for clients that
accept it); nothing holds the trail set in memory. Every answer carries a weak ETag made of the
trails file's identity (inode, size, mtime), the path, the query and the caller's custom-trail
visibility, so a subscriber's `If-None-Match` poll is a 304 with no body while nothing changed.

- `GET /intel/stix[?source=..][&kind=..]`: a STIX 2.1 bundle, one indicator per trail, ids UUIDv5
  of the trail so a re-import updates instead of duplicating;
- `GET /intel/misp/manifest.json`, `/intel/misp/<uuid>.json`: a MISP feed, one event per trail
  info (a malware family, an actor); events are found through an offset index built once per
  trails file (row offsets only);
- `GET /intel/zeek`: `#fields indicator indicator_type meta.source meta.desc` (Intel::DOMAIN,
  ADDR, SUBNET, URL, CERT_HASH, and SOFTWARE for User-Agent trails);
- `GET /intel/suricata`: the list of the files below; `/intel/suricata/maltrail.rules`,
  `maltrail-domains.lst` (a string dataset: base64 lines, for dns.query, tls.sni, http.host),
  `maltrail-iprep.list` and `maltrail-categories.txt` (IP reputation).
Custom trails are left out for callers who may not see them (the /trails rule, lookup.py).
`source_object` answers lookup.py's /reference for imported trails: the STIX id or MISP event UUID
(from the ids files the intel import writes beside the trails), shown in the client's drawer.
"""

from __future__ import annotations

import base64
import csv
import glob
import hashlib
import ipaddress
import json
import os
import re
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from core.config import Config
from core.protocols.fingerprints import fingerprint_kind
from core.server.auth import Session
from core.server.httpd import HttpError, Request, Response
from core.server.lookup import CUSTOM, sees_custom
from core.trails.index import UA_PREFIX

NAMESPACE = uuid.UUID("6f1e9a3c-5b7d-5e2f-9a4c-3d8b7e6f1a20")  # fixed: exported ids never change
ORG = {"name": "Maltrail", "uuid": str(uuid.uuid5(NAMESPACE, "organisation"))}
IDENTITY = f"identity--{uuid.uuid5(NAMESPACE, 'identity')}"
CHUNK = 256 << 10
KINDS = ("domain", "ip", "cidr", "ipport", "url", "path", "cert", "ja3", "ja4", "ua")
_REGEX_CHARS = re.compile(r"[\\()\[\]*+|^${}]")
_SURICATA_FILES = {
    "maltrail.rules": "rules using the dataset and the reputation list",
    "maltrail-domains.lst": "string dataset (base64 lines): domain trails for dns.query, tls.sni, http.host",
    "maltrail-iprep.list": "IP reputation: address or network,category,score",
    "maltrail-categories.txt": "IP reputation categories",
}
RULES = """\
# Maltrail trail set for Suricata (docs/intel.md). suricata.yaml:
#   reputation-categories-file: maltrail-categories.txt
#   reputation-files: [maltrail-iprep.list]
alert dns any any -> any any (msg:"MALTRAIL known bad domain (DNS query)"; dns.query; \
dataset:isset,maltrail-domains,type string,load maltrail-domains.lst; classtype:trojan-activity; sid:1933001; rev:1;)
alert tls any any -> any any (msg:"MALTRAIL known bad domain (TLS SNI)"; tls.sni; \
dataset:isset,maltrail-domains,type string,load maltrail-domains.lst; classtype:trojan-activity; sid:1933002; rev:1;)
alert http any any -> any any (msg:"MALTRAIL known bad domain (HTTP Host)"; http.host; \
dataset:isset,maltrail-domains,type string,load maltrail-domains.lst; classtype:trojan-activity; sid:1933003; rev:1;)
alert ip any any -> any any (msg:"MALTRAIL known bad address"; iprep:dst,maltrail,>,0; \
classtype:trojan-activity; sid:1933004; rev:1;)
alert ip any any -> any any (msg:"MALTRAIL known bad address (inbound)"; iprep:src,maltrail,>,0; \
classtype:trojan-activity; sid:1933005; rev:1;)
"""


def trail_kind(key: str) -> str:
    """What a trail key is: domain, ip, cidr, ipport, hostport, url, path, cert, ja3, ja4, ua or regex."""
    if key.startswith(UA_PREFIX):
        return "ua"
    if not key or _REGEX_CHARS.search(key) and not key.startswith("["):
        return "regex"
    if key.startswith("/"):
        return "path"
    fingerprint = fingerprint_kind(key)
    if fingerprint is not None:
        return fingerprint
    host, slash, rest = key.partition("/")
    if slash:
        if rest.isdigit() and host.replace(".", "").isdigit():
            return "cidr"
        return "url"
    if host.startswith("["):
        return "ipport"
    if host.count(":") == 1:  # a.b.c.d:port, or name:port (no export format holds that)
        return "ipport" if host[:1].isdigit() and _is_address(host.partition(":")[0]) else "hostport"
    return "ip" if (host[:1].isdigit() or ":" in host) and _is_address(host) else "domain"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def split_ipport(key: str) -> tuple[str, int]:
    address, _, port = key.rpartition(":")
    return address.strip("[]"), int(port)


def references(reference: str) -> list[str]:
    """The sources of a row: `a (+b,c)` -> [a, b, c]."""
    primary, sep, extra = reference.partition(" (+")
    return [primary] + (extra.rstrip(")").split(",") if sep else [])


@dataclass(frozen=True)
class Row:
    key: str
    info: str
    reference: str
    kind: str


def _fields(raw: bytes) -> list[str]:
    """One trails.csv line's fields (QUOTE_MINIMAL: a line without quotes is three plain fields)."""
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    if '"' not in text:
        return text.split(",")
    try:
        return next(csv.reader([text]))
    except (csv.Error, StopIteration):
        return []


# --- formats ---------------------------------------------------------------------------------------

def _stix_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stix_pattern(row: Row) -> str | None:
    if row.kind == "domain":
        return f"[domain-name:value = {_stix_string(row.key)}]"
    if row.kind in ("ip", "cidr"):
        family = "ipv6-addr" if ":" in row.key else "ipv4-addr"
        return f"[{family}:value = {_stix_string(row.key)}]"
    if row.kind == "ipport":
        address, port = split_ipport(row.key)
        family = "ipv6-addr" if ":" in address else "ipv4-addr"
        return (f"[network-traffic:dst_ref.type = '{family}' AND network-traffic:dst_ref.value = "
                f"{_stix_string(address)} AND network-traffic:dst_port = {port}]")
    if row.kind == "url":
        return f"[url:value = {_stix_string('http://' + row.key)}]"
    if row.kind == "cert":
        return f"[x509-certificate:hashes.'SHA-1' = {_stix_string(row.key)}]"
    if row.kind == "ua":  # the STIX 2.1 HTTP request extension of network-traffic
        return (f"[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = "
                f"{_stix_string(row.key[len(UA_PREFIX):])}]")
    return None


def stix_indicator(row: Row, stamp: str) -> str | None:
    """One indicator as compact JSON text (built from JSON-encoded fields: the objects of a 1.6M-row
    export are written, not held; json.dumps of a dict per row was the export's main cost)."""
    pattern = stix_pattern(row)
    if pattern is None:
        return None
    text = json.dumps
    sources = ",".join(f'{{"source_name":{text(source)},"description":"trail source"}}'
                       for source in references(row.reference))
    return (f'{{"type":"indicator","spec_version":"2.1","id":"indicator--{uuid.uuid5(NAMESPACE, row.key)}",'
            f'"created_by_ref":"{IDENTITY}","created":"{stamp}","modified":"{stamp}","name":{text(row.key)},'
            f'"description":{text(f"{row.info} ({row.reference})")},"indicator_types":["malicious-activity"],'
            f'"pattern":{text(pattern)},"pattern_type":"stix","pattern_version":"2.1","valid_from":"{stamp}",'
            f'"labels":[{text(row.info[:256] or "malicious")}],"external_references":[{sources}]}}')


ZEEK_HEAD = "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n"
# Zeek's intel/seen scripts report an HTTP request's User-Agent header as Intel::SOFTWARE
ZEEK_TYPES = {"domain": "Intel::DOMAIN", "ip": "Intel::ADDR", "cidr": "Intel::SUBNET", "url": "Intel::URL",
              "cert": "Intel::CERT_HASH", "ua": "Intel::SOFTWARE"}
MISP_TYPES = {"domain": "domain", "ip": "ip-dst", "cidr": "ip-dst", "ipport": "ip-dst|port", "url": "url",
              "path": "uri", "cert": "x509-fingerprint-sha1", "ja3": "ja3-fingerprint-md5", "ua": "user-agent"}


def _zeek_field(value: str) -> str:
    """A Zeek field: no tab or line break inside, `-` (Zeek's unset) for an empty one."""
    if "\t" in value or "\n" in value or "\r" in value:
        value = re.sub(r"[\t\r\n]+", " ", value)
    return value.strip() or "-"


def misp_attribute(row: Row, stamp: int) -> dict[str, object] | None:
    kind = MISP_TYPES.get(row.kind)
    if kind is None:
        return None
    value = row.key
    if row.kind == "ipport":
        address, port = split_ipport(row.key)
        value = f"{address}|{port}"
    elif row.kind == "url":
        value = "http://" + row.key
    elif row.kind == "ua":
        value = row.key[len(UA_PREFIX):]
    return {"uuid": str(uuid.uuid5(NAMESPACE, "attribute:" + row.key)), "type": kind, "category": "Network activity",
            "value": value, "to_ids": True, "timestamp": str(stamp), "distribution": "5", "deleted": False,
            "comment": row.reference}


# --- the endpoints ---------------------------------------------------------------------------------

class IntelExports:
    """The /intel/... endpoints over TRAILS_FILE; one instance per server process."""

    def __init__(self, config: Config) -> None:
        self.trails_file: str = config.TRAILS_FILE or os.path.expanduser("~/.maltrail/trails.csv")
        self.lock = threading.Lock()
        self.misp_index: dict[tuple[str, bool], dict[str, tuple[str, array[int]]]] = {}

    def handle(self, request: Request, session: Session | None) -> Response:
        path = request.path.rstrip("/")
        custom_ok = sees_custom(session)
        try:
            stat = os.stat(self.trails_file)
        except OSError:
            raise HttpError(503, "no trails file yet") from None
        signature = f"{stat.st_ino}-{stat.st_size}-{stat.st_mtime_ns}"
        query = "&".join(f"{k}={request.params.get(k, '')}" for k in ("source", "kind"))
        etag = 'W/"' + hashlib.sha256(f"{signature}|{path}|{query}|{custom_ok}".encode()).hexdigest()[:32] + '"'
        headers = [("ETag", etag)]
        if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
            return Response(304, b"", headers=headers, cache="private, no-cache")
        stamp = stat.st_mtime
        if path == "/intel/stix":
            body, kind = self._stix(custom_ok, request, stamp), "application/json; charset=utf-8"
        elif path == "/intel/zeek":
            body, kind = self._lines(custom_ok, self._zeek_lines, ZEEK_HEAD), "text/plain; charset=utf-8"
        elif path == "/intel/suricata":
            index = "".join(f"{name}\t{what}\n" for name, what in _SURICATA_FILES.items())
            body, kind = iter([index.encode()]), "text/plain; charset=utf-8"
        elif path == "/intel/suricata/maltrail.rules":
            body, kind = iter([RULES.encode()]), "text/plain; charset=utf-8"
        elif path == "/intel/suricata/maltrail-domains.lst":
            body, kind = self._lines(custom_ok, _dataset_lines), "text/plain; charset=utf-8"
        elif path == "/intel/suricata/maltrail-iprep.list":
            body, kind = self._lines(custom_ok, _iprep_lines), "text/plain; charset=utf-8"
        elif path == "/intel/suricata/maltrail-categories.txt":
            body, kind = iter([b"1,maltrail,Maltrail trail set\n"]), "text/plain; charset=utf-8"
        elif path == "/intel/misp/manifest.json":
            body, kind = self._misp_manifest(signature, custom_ok, stamp), "application/json; charset=utf-8"
        elif path.startswith("/intel/misp/") and path.endswith(".json"):
            body, kind = self._misp_event(signature, custom_ok, stamp, path[12:-5].lower()), "application/json"
        else:
            raise HttpError(404, "unknown export")
        return Response(200, body, kind, headers, cache="private, no-cache")

    # -- rows ------------------------------------------------------------------------------------

    def _rows(self, custom_ok: bool, offsets: bool = False) -> Iterator[tuple[int, Row]]:
        """(byte offset, row) of every visible, well-formed row of the trails file, streamed."""
        with open(self.trails_file, "rb") as handle:
            offset = 0
            for raw in handle:
                start, offset = offset, offset + len(raw)
                fields = _fields(raw)
                if len(fields) != 3 or not fields[0] or (not custom_ok and fields[2] == CUSTOM):
                    continue
                yield start, Row(fields[0], fields[1], fields[2], trail_kind(fields[0]))

    def _lines(self, custom_ok: bool, render: Callable[[Row], str | None],
               head: str = "") -> Iterator[bytes]:
        out: list[str] = [head] if head else []
        size = 0
        for _offset, row in self._rows(custom_ok):
            line = render(row)
            if line is None:
                continue
            out.append(line)
            size += len(line)
            if size >= CHUNK:
                yield "".join(out).encode("utf-8")
                out, size = [], 0
        if out:
            yield "".join(out).encode("utf-8")

    def _zeek_lines(self, row: Row) -> str | None:
        kind = ZEEK_TYPES.get(row.kind)
        if kind is None:
            return None
        indicator = row.key[len(UA_PREFIX):] if row.kind == "ua" else row.key
        return f"{_zeek_field(indicator)}\t{kind}\t{_zeek_field(row.reference)}\t{_zeek_field(row.info)}\n"

    # -- STIX ------------------------------------------------------------------------------------

    def _stix(self, custom_ok: bool, request: Request, mtime: float) -> Iterator[bytes]:
        source = request.params.get("source") or None
        kind = request.params.get("kind") or None
        if kind is not None and kind not in KINDS:  # checked before the body starts
            raise HttpError(400, "kind must be one of " + ", ".join(KINDS))
        return self._stix_body(custom_ok, source, kind, mtime)

    def _stix_body(self, custom_ok: bool, source: str | None, kind: str | None, mtime: float) -> Iterator[bytes]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(mtime))
        identity = {"type": "identity", "spec_version": "2.1", "id": IDENTITY, "created": stamp,
                    "modified": stamp, "name": "Maltrail", "identity_class": "system"}
        bundle_id = f"bundle--{uuid.uuid5(NAMESPACE, f'{mtime}|{source}|{kind}|{custom_ok}')}"

        def render(row: Row) -> str | None:
            if kind is not None and row.kind != kind:
                return None
            if source is not None and source not in references(row.reference):
                return None
            obj = stix_indicator(row, stamp)
            return None if obj is None else "," + obj

        head = '{"type":"bundle","id":"' + bundle_id + '","objects":[' + json.dumps(identity, separators=(",", ":"))
        yield from self._lines(custom_ok, render, head)
        yield b"]}"

    # -- MISP feed -------------------------------------------------------------------------------

    def _index(self, signature: str, custom_ok: bool) -> dict[str, tuple[str, array[int]]]:
        """event uuid -> (info, row offsets), built once per trails file and visibility."""
        key = (signature, custom_ok)
        with self.lock:
            found = self.misp_index.get(key)
            if found is not None:
                return found
            index: dict[str, tuple[str, array[int]]] = {}
            by_info: dict[str, array[int]] = {}
            for offset, row in self._rows(custom_ok):
                if row.kind in MISP_TYPES:
                    by_info.setdefault(row.info, array("Q")).append(offset)
            for info, offsets in by_info.items():
                index[str(uuid.uuid5(NAMESPACE, "event:" + info))] = (info, offsets)
            # one trails file at a time (both visibilities of it)
            self.misp_index = {k: v for k, v in self.misp_index.items() if k[0] == signature}
            self.misp_index[key] = index
            return index

    def _misp_manifest(self, signature: str, custom_ok: bool, mtime: float) -> Iterator[bytes]:
        index = self._index(signature, custom_ok)
        date = time.strftime("%Y-%m-%d", time.gmtime(mtime))
        manifest = {event: {"info": info, "Orgc": ORG, "Tag": [{"name": "tlp:white"}], "date": date,
                            "analysis": 2, "threat_level_id": 3, "timestamp": int(mtime)}
                    for event, (info, _offsets) in index.items()}
        yield json.dumps(manifest, separators=(",", ":")).encode("utf-8")

    def _misp_event(self, signature: str, custom_ok: bool, mtime: float, event: str) -> Iterator[bytes]:
        found = self._index(signature, custom_ok).get(event)
        if found is None:
            raise HttpError(404, "no such event")
        info, offsets = found
        head = {"uuid": event, "info": info, "date": time.strftime("%Y-%m-%d", time.gmtime(mtime)),
                "timestamp": str(int(mtime)), "published": True, "analysis": "2", "threat_level_id": "3",
                "distribution": "3", "Orgc": ORG, "Tag": [{"name": "tlp:white"}, {"name": info}]}
        path = self.trails_file

        def body() -> Iterator[bytes]:
            yield b'{"Event":' + json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"Attribute":['
            out: list[bytes] = []
            size, first = 0, True
            with open(path, "rb") as handle:
                for offset in offsets:
                    handle.seek(offset)
                    fields = _fields(handle.readline())
                    if len(fields) != 3:
                        continue
                    attribute = misp_attribute(Row(fields[0], fields[1], fields[2], trail_kind(fields[0])), int(mtime))
                    if attribute is None:
                        continue
                    text = (b"" if first else b",") + json.dumps(attribute, separators=(",", ":")).encode()
                    first = False
                    out.append(text)
                    size += len(text)
                    if size >= CHUNK:
                        yield b"".join(out)
                        out, size = [], 0
            out.append(b"]}}")
            yield b"".join(out)

        return body()


def source_object(trails_file: str, trail: str) -> dict[str, str | None] | None:
    """The source object of an imported trail (`reference`: the STIX id or MISP event UUID, `source`:
    `taxii:<name>`...), from the ids files the update writes beside the trails (docs/intel.md)."""
    needle = b"\n" + trail.encode("utf-8", "replace") + b","
    for path in sorted(glob.glob(os.path.join(os.path.dirname(trails_file), "intel", "*.ids.csv"))):
        try:
            with open(path, "rb") as handle:
                data = b"\n" + handle.read(256 << 20)
        except OSError:
            continue
        at = data.find(needle)
        if at < 0:
            continue
        end = data.find(b"\n", at + 1)
        line = data[at + 1:end if end >= 0 else len(data)].decode("utf-8", "replace")
        fields = next(csv.reader([line]), [])
        if len(fields) == 3:
            return {"reference": fields[1], "source": fields[2]}
    return None


def _dataset_lines(row: Row) -> str | None:
    if row.kind != "domain":
        return None
    return base64.b64encode(row.key.encode("utf-8")).decode("ascii") + "\n"


def _iprep_lines(row: Row) -> str | None:
    if row.kind not in ("ip", "cidr"):
        return None
    return f"{row.key},1,100\n"
