"""Feed fetching and parsing helpers shared by every module in trails/feeds/.

Where it sits: the first stage of the trail update (feeds/static/custom -> update -> trails.csv).
`core/update/` builds the base `FeedContext` and `core/update/feedrun.py` derives one per feed and calls
the module's `fetch(ctx)`; the module calls `ctx.retrieve(url, check)` (or `ctx.lines(...)` for very
large bodies) and one of the parsers below, and returns `{trail: (info, reference)}`.

Retrieval: requests with (connect, read) timeouts, an overall deadline, retries with exponential
backoff on connection errors/timeouts/5xx/429, gzip/deflate, `PROXY_ADDRESS`, a `Maltrail/<version>`
User-Agent and a size cap. Anything that is not a usable feed body -- an HTTP error, an empty body,
an HTML page where the feed is not HTML, a body without the module's `__check__` text -- raises
`FeedError`, which the update reports per feed (it never returns an error page as data).

Parsers take text and return a dict; malformed lines are skipped, never raised.
"""

from __future__ import annotations

import csv
import ipaddress
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import requests

from core.config import VERSION
from core.ops.retry import Retryable, with_retries

Trails = dict[str, tuple[str, str]]

IPV4_RE = re.compile(r"(?<![\d.])(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(?![\d.])")
_IPV4_FULL = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_CIDR_RE = re.compile(r"(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})/(\d{1,2})")
_DOMAIN_RE = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}")
_HTML_START = re.compile(rb"\A\s*(?:<!doctype\s+html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)
_SCHEME_RE = re.compile(r"\A[a-z][a-z0-9+.-]*://", re.I)
MAX_CIDR_EXPAND = 1024
RETRY_STATUS = {429, 500, 502, 503, 504}


class FeedError(Exception):
    """A feed could not deliver a usable body. str() is the one-line reason in the health report."""


class FeedSkipped(FeedError):
    """The feed cannot run in this configuration (e.g. its API key is not set): not a failure."""


@dataclass
class FeedContext:
    """Everything a feed module may use: HTTP session, limits, API keys. One per feed and run.

    `base_url` (tests and the benchmark) rewrites every request to `<base_url>/<feed>/<quoted url>`
    so a local server can answer for all feeds; the real module code runs unchanged.
    """

    feed: str = ""
    timeout: float = 30.0
    max_size: int = 64 << 20
    retries: int = 3
    backoff: float = 1.0
    proxy: str | None = None
    api_keys: Mapping[str, str | None] = field(default_factory=dict)
    base_url: str | None = None
    user_agent: str = f"Maltrail/{VERSION}"
    session: requests.Session | None = None
    bytes_read: int = 0

    def for_feed(self, name: str, max_size: int | None = None) -> FeedContext:
        """A copy for one feed, with its own session (sessions are not shared across threads)."""
        return replace(self, feed=name, max_size=max_size or self.max_size, session=None, bytes_read=0)

    def api_key(self, name: str) -> str | None:
        """The configured API key (e.g. "OTX_API_KEY"), or None when unset."""
        value = self.api_keys.get(name)
        return value or None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    # --- HTTP ----------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        if self.session is None:
            session = requests.Session()
            session.trust_env = False  # proxies come from PROXY_ADDRESS only
            session.headers["User-Agent"] = self.user_agent
            session.headers["Accept-Encoding"] = "gzip, deflate"
            if self.proxy:
                session.proxies = {"http": self.proxy, "https": self.proxy}
            self.session = session
        return self.session

    def target(self, url: str) -> str:
        if not self.base_url:
            return url
        return f"{self.base_url.rstrip('/')}/{self.feed or '_'}/{quote(url, safe='')}"

    def _open(self, url: str, headers: Mapping[str, str] | None, params: Mapping[str, Any] | None,
              html_ok: bool, json_body: Any = None) -> requests.Response:
        target = self.target(url)

        def attempt() -> requests.Response:
            try:
                response = self._session().request(
                    "GET" if json_body is None else "POST", target, headers=dict(headers or {}),
                    params=params, json=json_body, stream=True, timeout=(min(10.0, self.timeout), self.timeout))
            except (requests.ConnectionError, requests.Timeout) as ex:
                raise Retryable(FeedError(f"connection failed: {type(ex).__name__}")) from None
            except requests.RequestException as ex:
                raise FeedError(f"request failed: {ex}") from None
            if response.status_code in RETRY_STATUS:
                response.close()
                raise Retryable(FeedError(f"HTTP {response.status_code}"))
            if response.status_code != 200:
                response.close()
                raise FeedError(f"HTTP {response.status_code}")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > self.max_size and not response.headers.get("Content-Encoding"):
                response.close()
                raise FeedError(f"body of {int(length)} bytes exceeds the cap of {self.max_size}")
            # Many servers label plain lists as text/html, so HTML is recognised on the body (_chunks).
            return response

        try:
            return with_retries(attempt, self.retries, self.backoff, time.sleep)
        except Retryable as ex:
            raise ex.cause from None

    def _chunks(self, response: requests.Response, html_ok: bool) -> Iterator[bytes]:
        deadline = time.monotonic() + self.timeout * 10
        first = True
        try:
            for chunk in response.iter_content(1 << 20):
                if not chunk:
                    continue
                if first:
                    first = False
                    if not html_ok and _HTML_START.match(chunk[:512]):
                        raise FeedError("HTML page instead of feed data")
                self.bytes_read += len(chunk)
                if self.bytes_read > self.max_size:
                    raise FeedError(f"body exceeds the cap of {self.max_size} bytes")
                if time.monotonic() > deadline:
                    raise FeedError(f"download exceeded {self.timeout * 10:g} s")
                yield chunk
        except (requests.ConnectionError, requests.Timeout) as ex:
            raise FeedError(f"download interrupted: {type(ex).__name__}") from None
        except requests.RequestException as ex:
            raise FeedError(f"download failed: {ex}") from None
        finally:
            response.close()

    def retrieve(self, url: str, check: str | None = None, *, headers: Mapping[str, str] | None = None,
                 params: Mapping[str, Any] | None = None, html_ok: bool = False) -> str:
        """The whole body as text (UTF-8, bad bytes replaced). Raises FeedError on any failure."""
        text, _headers = self.retrieve_with_headers(url, check, headers=headers, params=params, html_ok=html_ok)
        return text

    def retrieve_with_headers(self, url: str, check: str | None = None, *, headers: Mapping[str, str] | None = None,
                              params: Mapping[str, Any] | None = None, html_ok: bool = False,
                              json_body: Any = None) -> tuple[str, Mapping[str, str]]:
        """`retrieve` plus the response headers (TAXII paging); a `json_body` is POSTed (MISP restSearch)."""
        response = self._open(url, headers, params, html_ok, json_body)
        body = b"".join(self._chunks(response, html_ok))
        text = body.decode("utf-8", errors="replace")
        if not text.strip():
            raise FeedError("empty response")
        if check and check not in text:
            raise FeedError(f"sanity check {check!r} not found in the response")
        return text, response.headers

    def lines(self, url: str, check: str | None = None, *, html_ok: bool = False) -> Iterator[str]:
        """Stream the body line by line (for the large compilation); same errors as `retrieve`.

        `check` must appear in the first megabyte.
        """
        response = self._open(url, None, None, html_ok)
        pending = b""
        first = True
        seen = False
        for chunk in self._chunks(response, html_ok):
            if first:
                first = False
                if check and check.encode() not in chunk:
                    response.close()
                    raise FeedError(f"sanity check {check!r} not found in the response")
            data = pending + chunk if pending else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 1:]
            text = data[:cut].decode("utf-8", errors="replace")
            if "\r" in text:
                text = text.replace("\r", "")
            seen = True
            yield from text.split("\n")
        if pending:
            seen = True
            yield pending.decode("utf-8", errors="replace").rstrip("\r")
        if not seen:
            raise FeedError("empty response")


# --- parsers -----------------------------------------------------------------------------------

def content_lines(text: str | Iterable[str], comments: str = "#;") -> Iterator[str]:
    """Non-empty lines with leading/trailing space removed, comment lines skipped."""
    for raw in text.splitlines() if isinstance(text, str) else text:
        line = raw.strip()
        if line and line[0] not in comments:
            yield line


def is_ipv4(text: str) -> bool:
    if not _IPV4_FULL.fullmatch(text):
        return False
    return all(int(part) <= 255 for part in text.split("."))


def expand_cidr(text: str, limit: int = MAX_CIDR_EXPAND) -> list[str]:
    """IPv4 addresses of `a.b.c.d/n` (or the address itself); [] when invalid or larger than limit."""
    if "/" not in text:
        return [text] if is_ipv4(text) else []
    match = _CIDR_RE.fullmatch(text)
    if not match:
        return []
    try:
        network = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        return []
    if network.num_addresses > limit:
        return []
    if network.num_addresses == 1:
        return [str(network.network_address)]
    return [str(host) for host in network]


def ips_in_lines(text: str, info: str, reference: str, expand: bool = False) -> Trails:
    """The leading IPv4 (or CIDR when `expand`) of each content line: ip-per-line, ipset, netset,
    `ip # comment`, `ip<TAB>count`, `ip;...` formats."""
    trails: Trails = {}
    pair = (info, reference)
    for line in content_lines(text):
        token = re.split(r"[\s,;|#]", line, maxsplit=1)[0]
        if expand and "/" in token:
            for ip in expand_cidr(token):
                trails[ip] = pair
        elif is_ipv4(token):
            trails[token] = pair
    return trails


def all_ipv4(text: str, info: str, reference: str) -> Trails:
    """Every valid IPv4 address found anywhere in the text (rule files, HTML)."""
    pair = (info, reference)
    return {ip: pair for ip in IPV4_RE.findall(text) if is_ipv4(ip)}


def strip_scheme(url: str) -> str:
    """`http://host/path` -> `host/path`; a host-only URL becomes `host/` (the original's form)."""
    url = _SCHEME_RE.sub("", url.strip())
    url = url.split("#", 1)[0]
    if "/" not in url:
        url += "/"
    return url


def urls_in_lines(text: str | Iterable[str], info: str, reference: str) -> Trails:
    """One URL per line -> `host/path` trails (scheme stripped)."""
    pair = (info, reference)
    trails: Trails = {}
    for line in content_lines(text):
        token = line.split()[0]
        if "." in token:
            trails[strip_scheme(token)] = pair
    return trails


def domain_of(text: str) -> str | None:
    """A plausible domain name from a token (`*.x.com`, `||x.com^`, trailing dot); None otherwise."""
    token = text.strip().lower().strip("|^").rstrip(".")
    if token.startswith("*."):
        token = token[2:]
    if "/" in token or ":" in token or is_ipv4(token):
        return None
    return token if _DOMAIN_RE.fullmatch(token) else None


def domains_in_lines(text: str, info: str, reference: str) -> Trails:
    """Domain-per-line, hosts-file (`0.0.0.0 name`) and adblock (`||name^`) lists."""
    pair = (info, reference)
    trails: Trails = {}
    for line in content_lines(text, comments="#;!["):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        token = parts[1] if len(parts) > 1 and parts[0] in ("0.0.0.0", "127.0.0.1", "::", "::1") else parts[0]
        domain = domain_of(token)
        if domain and domain not in ("localhost", "localhost.localdomain"):
            trails[domain] = pair
    return trails


def csv_rows(text: str | Iterable[str], delimiter: str = ",", comments: str = "#") -> Iterator[list[str]]:
    """CSV rows (quoted fields, `#` comment lines skipped) with fields stripped."""
    lines = (line for line in content_lines(text, comments))
    for row in csv.reader(lines, delimiter=delimiter, skipinitialspace=True):
        yield [value.strip() for value in row]


def add_url_and_host(trails: Trails, url: str, info: str, reference: str) -> None:
    """URL trail plus, for a bare-IP host, the IP as `potential malware site` (cybercrime style)."""
    trail = strip_scheme(url)
    trails[trail] = (info, reference)
    host = trail.split("/", 1)[0].split(":", 1)[0]
    if is_ipv4(host):
        trails.setdefault(host, ("potential malware site", reference))


_C2_FRAMEWORK = re.compile(r"Possible (.+?) C2", re.I)


def c2intel_rows(text: str, default_info: str, reference: str) -> Iterator[tuple[str, tuple[str, str]]]:
    """C2IntelFeeds CSV (`indicator,Possible <Framework> C2 ...`) -> (indicator, (info, reference)),
    the info named after the framework when the description gives one."""
    for row in csv_rows(text):
        if len(row) < 2:
            continue
        match = _C2_FRAMEWORK.search(row[1])
        yield row[0], (malware_info(match.group(1), default_info) if match else default_info, reference)


def malware_info(family: str | None, default: str = "malware") -> str:
    """`<family> (malware)` from a free-text family name; `default` when the family is unknown."""
    name = re.sub(r"[^a-z0-9 ._-]", "", (family or "").lower()).strip()
    if not name or name in ("unknown", "none", "n/a", "-", "malware"):
        return default
    return f"{name} (malware)"
