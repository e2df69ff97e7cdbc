"""INTEL_SOURCES lines -> `IntelSource`s, and what every intel kind shares (JSON bodies, state files).

Where it sits: maltrail.conf `INTEL_SOURCES` (an array key, one source a line:
`KIND URL [name=value ...]`) -> **source** -> the runner (core/update/intel/run.py), which hands
each source to its kind's module (stix.py, taxii.py, misp_feed.py, misp.py). A line that does not
parse is one failed source in the update's report, never an exception.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.update.feeds import FeedContext, FeedError

KINDS = ("taxii", "misp-feed", "misp", "stix")
REFERENCE_PREFIX = {"taxii": "taxii", "misp-feed": "misp", "misp": "misp", "stix": "stix"}
_SAFE = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class IntelSource:
    """One INTEL_SOURCES line: kind, URL (or file path for `stix`) and its `name=value` options."""

    kind: str
    url: str
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: str | None = None) -> str | None:
        for name, value in self.options:
            if name == key:
                return value
        return default

    @property
    def name(self) -> str:
        """`name=` or the URL's host (a file's base name): lower case, safe for a file name."""
        given = self.option("name")
        if not given:
            parts = urlsplit(self.url)
            given = parts.hostname or os.path.basename(self.url.rstrip("/")) or self.kind
        return _SAFE.sub("-", given.lower()).strip("-")[:64] or self.kind

    @property
    def reference(self) -> str:
        """The trail's reference column: `misp:<name>`, `taxii:<name>`, `stix:<name>`."""
        return f"{REFERENCE_PREFIX[self.kind]}:{self.name}"

    @property
    def cache_name(self) -> str:
        """The key of this source's last good copy and state files."""
        return f"intel-{self.kind}-{self.name}"


def parse_source(line: str) -> IntelSource:
    """`KIND URL [name=value ...]` -> IntelSource; ValueError says what is wrong."""
    parts = line.split()
    if len(parts) < 2:
        raise ValueError("expected KIND URL [name=value ...]")
    kind = parts[0].lower()
    if kind not in KINDS:
        raise ValueError(f"unknown kind {parts[0]!r} (one of {', '.join(KINDS)})")
    options: list[tuple[str, str]] = []
    for part in parts[2:]:
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ValueError(f"option {part!r} is not name=value")
        options.append((key.lower(), value))
    return IntelSource(kind, parts[1], tuple(options))


def secret(value: str | None, env: dict[str, str] | None = None) -> str | None:
    """An option that may be `env:VAR` (read from the environment) instead of the secret itself."""
    if value and value.startswith("env:"):
        return (env if env is not None else os.environ).get(value[4:]) or None
    return value


def basic_auth(source: IntelSource) -> dict[str, str]:
    """The `Authorization: Basic` header of a source's `user=` / `password=` options (none without
    `user=`): TAXII servers, and MISP feeds served behind HTTP Basic such as another Maltrail
    server's /intel/misp."""
    user, password = source.option("user"), secret(source.option("password"))
    if not user:
        return {}
    token = base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def load_json(text: str, what: str) -> Any:
    """Parse a JSON body; malformed or absurdly nested bodies are a FeedError naming `what`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise FeedError(f"{what}: JSON nested too deeply") from None
    except ValueError as ex:
        raise FeedError(f"{what}: not JSON ({ex.__class__.__name__})") from None


def read_body(ctx: FeedContext, location: str, what: str, headers: dict[str, str] | None = None) -> str:
    """A URL through the update's fetcher (with `headers`), or a local file (no scheme, `file://`)
    under the same cap."""
    if "://" in location and not location.startswith("file://"):
        return ctx.retrieve(location, headers=headers or None)
    path = location[len("file://"):] if location.startswith("file://") else location
    try:
        size = os.path.getsize(path)
        if size > ctx.max_size:
            raise FeedError(f"{what}: {size} bytes exceed the cap of {ctx.max_size}")
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as ex:
        raise FeedError(f"{what}: {ex.strerror or ex}") from None


class StateFiles:
    """Per-source state kept between updates (TAXII objects, MISP feed events): one JSON file each,
    replaced atomically, and only after a fetch that succeeded."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.state.json")

    def load(self, name: str) -> dict[str, Any]:
        try:
            with open(self.path(name), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, name: str, data: dict[str, Any]) -> None:
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(data, separators=(",", ":")))  # the C encoder; json.dump is not
            os.replace(tmp, self.path(name))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
