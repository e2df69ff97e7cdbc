"""Configuration: parses maltrail.conf (+ MALTRAIL_<KEY> environment overrides) into a typed object.

Where it sits: the very first stage of sensor.py and server.py. Everything downstream receives the
`Config` object explicitly; nothing reads the file or the environment again.

Syntax (compatible with the original):
- `KEY value` lines; `#` starts a comment (whole line or after whitespace).
- A bare `KEY` line starts an array; its entries are the following indented lines (USERS, ...).
- Keys starting with USE_/SET_/CHECK_/ENABLE_/SHOW_/DISABLE_ are booleans (1/0/true/false/yes/no/on/off).
- `$VAR` / `${VAR}` expand from built-in variables (SYSTEM_LOG_DIR, HOSTNAME, ROOT_DIR) then the
  environment. `*_DIR` values are resolved against the project root.
- The environment variable MALTRAIL_<KEY> overrides the file (array entries separated by newlines);
  MALTRAIL_PURE_PYTHON is not a key: it switches off the compiled accelerators (core/accel).
A bad value raises ConfigError naming the key and the value; the CLIs turn it into one line + exit 2.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG_FILE = os.path.join(ROOT_DIR, "maltrail.conf")
VERSION = "0.1.0"

BOOL_PREFIXES = ("USE_", "SET_", "CHECK_", "ENABLE_", "SHOW_", "DISABLE_")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
ENV_ONLY = frozenset(("MALTRAIL_PURE_PYTHON",))  # environment switches that are not configuration keys (core/accel)


class ConfigError(Exception):
    """A configuration value that cannot be used. str() is the one line shown to the operator."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key, self.value, self.reason = key, value, reason
        super().__init__(f"configuration error: {key} = {value!r}: {reason}")


# --- value parsers ---------------------------------------------------------------------------------

def _parse_bool(key: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(key, raw, "expected a boolean (true/false, 1/0)")


def _parse_int(key: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(key, raw, "expected a whole number") from None


def _parse_float(key: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigError(key, raw, "expected a number") from None


def _parse_regex(key: str, raw: str) -> str:
    try:
        re.compile(raw)
    except re.error as ex:
        raise ConfigError(key, raw, f"invalid regular expression ({ex})") from None
    return raw


def parse_size(key: str, raw: str, total_memory: int | None = None) -> int:
    """Bytes from `N`, `NkB/MB/GB` or `N%` of physical memory (CAPTURE_BUFFER syntax)."""
    text = raw.strip().upper().replace(" ", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(%|B|K|KB|M|MB|G|GB)?", text)
    if not m:
        raise ConfigError(key, raw, "expected a size such as 64MB, 512kB, 1GB or 10%")
    number, unit = float(m.group(1)), m.group(2) or "B"
    if unit == "%":
        if not 0 < number <= 100:
            raise ConfigError(key, raw, "percentage must be between 0 and 100")
        if total_memory is None:
            total_memory = _physical_memory()
        return int(total_memory * number / 100)
    scale = {"B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "G": 1 << 30, "GB": 1 << 30}
    return int(number * scale[unit])


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 30


def parse_endpoint(key: str, raw: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port)."""
    text = raw.strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.%\w]+)\]:(\d{1,5})", text) or re.fullmatch(r"([^\s:\[\]]+):(\d{1,5})", text)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ConfigError(key, raw, "expected host:port (IPv6 as [addr]:port)")
    return m.group(1), int(m.group(2))


def parse_endpoints(key: str, raw: str) -> list[tuple[str, int]]:
    """Comma/semicolon separated list of endpoints (SYSLOG_SERVER, LOGSTASH_SERVER, LOG_SERVER)."""
    return [parse_endpoint(key, item) for item in re.split(r"[,;\s]+", raw.strip()) if item]


def split_list(raw: str) -> list[str]:
    """Comma/semicolon separated list with whitespace trimmed (DISABLED_FEEDS, DISABLED_HEURISTICS...)."""
    return [item.strip() for item in re.split(r"[,;]", raw) if item.strip()]


# --- schema ----------------------------------------------------------------------------------------
# key -> (kind, default). Kinds: str, int, float, bool, regex, size, list (array of lines), path.
# Every key here is documented in maltrail.conf (a test keeps the two in step).

SCHEMA: dict[str, tuple[str, Any]] = {
    # [Server]
    "HTTP_ADDRESS": ("str", "127.0.0.1"),
    "HTTP_PORT": ("int", 8338),
    "HOME_LAT": ("float", None),
    "HOME_LON": ("float", None),
    "DISABLE_RIPE_LOOKUPS": ("bool", True),
    "USE_SSL": ("bool", False),
    "SSL_PEM": ("str", None),
    "USERS": ("list", []),
    "ENABLE_MASK_CUSTOM": ("bool", True),
    "UDP_ADDRESS": ("str", None),
    "UDP_PORT": ("int", None),
    "UDP_KEY": ("str", None),
    "UDP_MAX_SKEW": ("int", 300),
    "USE_SERVER_UPDATE_TRAILS": ("bool", False),
    "MAX_REQUEST_THREADS": ("int", 100),
    "MAX_LIVE_STREAMS": ("int", 30),
    "REQUEST_TIMEOUT": ("int", 60),
    "MAX_POST_SIZE": ("size", 10 << 20),
    "HUNT_TIME_BUDGET": ("float", 10.0),
    "IP_ALIASES": ("list", []),
    "HEADER_LOGO": ("str", None),
    "FAIL2BAN_REGEX": ("regex", None),
    "FAIL2BAN_ALLOWLIST": ("str", None),
    "BLACKLIST_ALLOWLIST": ("str", None),
    "BLACKLIST": ("list", []),
    "ALERT_WEBHOOK_URL": ("str", None),
    "ALERT_SEVERITY": ("str", "high"),
    "ALERT_FORMAT": ("str", None),
    "ALERT_THROTTLE": ("int", 300),
    # [Sensor]
    "PROCESS_COUNT": ("int", None),
    "STATS_ADDRESS": ("str", None),
    "DISABLE_CPU_AFFINITY": ("bool", True),
    "USE_FEED_UPDATES": ("bool", False),
    "DISABLED_FEEDS": ("str", ""),
    "IP_MINIMUM_FEEDS": ("int", 3),
    "DISABLED_TRAILS_INFO_REGEX": ("regex", None),
    "UPDATE_PERIOD": ("int", 86400),
    "FEED_GRACE_PERIOD": ("int", 7 * 86400),
    "FEED_MAX_SIZE": ("size", 64 << 20),
    "FEED_TIMEOUT": ("int", 30),
    "FEED_CONCURRENCY": ("int", 8),
    "ABUSEIPDB_API_KEY": ("str", None),
    "OTX_API_KEY": ("str", None),
    "PHISHTANK_API_KEY": ("str", None),
    "CUSTOM_TRAILS_URL": ("str", None),
    "CUSTOM_TRAILS_DIR": ("path", "./trails/custom"),
    "INTEL_SOURCES": ("list", []), "INTEL_WARNINGLISTS": ("bool", True),  # docs/intel.md
    "CAPTURE_BUFFER": ("size", "10%"),
    "MONITOR_INTERFACE": ("str", "any"),
    "CAPTURE_FILTER": ("str", None),
    "USE_FAST_PREFILTER": ("bool", False),
    "FAST_FLOW_CUTOFF": ("int", 4),
    "FAST_ADMIT_LEVEL": ("int", 0),
    "FAST_ADMIT_ADAPTIVE": ("bool", False),
    "CHECK_TLS_CERTIFICATES": ("bool", True),
    "CAPTURE_FANOUT": ("str", None),
    "USE_CONDENSED_STORAGE": ("bool", False),
    "CAPTURE_WORKERS": ("int", 1),
    "CAPTURE_BUFFER_SIZE": ("size", None),  # None: CAPTURE_BUFFER capped at 256MB
    "CAPTURE_SNAPLEN": ("int", 2000),
    "CAPTURE_TIMEOUT": ("int", 100),
    "CAPTURE_IMMEDIATE": ("bool", False),
    "CAPTURE_FANOUT_MODE": ("str", "hash"),
    "CAPTURE_FANOUT_DEFRAG": ("bool", False),
    "CAPTURE_FANOUT_GROUP": ("int", None),
    "OFFLINE_TIMESTAMPS": ("str", "pcap"),
    "METRICS_INTERVAL": ("int", 3600),
    "EVENT_THROTTLE_MODE": ("str", "summarize"),
    "EVENT_THROTTLE_WINDOW": ("int", 60),
    "EVENT_THROTTLE_BURST": ("int", 3),
    "EVENT_THROTTLE_MAX_KEYS": ("int", 50000),
    "DOMAIN_CACHE_ENTRIES": ("int", 16384),
    "DISABLE_TRAIL_UPDATES": ("bool", False),
    "REPAIR_TRUNCATED_TRAILS": ("bool", True),
    "SENSOR_NAME": ("str", "$HOSTNAME"),
    "LOG_SERVER": ("str", None),
    "SYSLOG_SERVER": ("str", None),
    "LOGSTASH_SERVER": ("str", None),
    "REMOTE_SEVERITY_REGEX": ("regex", None),
    "DISABLE_LOCAL_LOG_STORAGE": ("bool", False),
    "UPDATE_SERVER": ("str", None),
    "USE_HEURISTICS": ("bool", False),
    "SCAN_WINDOW": ("int", 30),
    "USE_CAPTURE_AFFINITY": ("bool", False),
    "DISABLED_HEURISTICS": ("str", ""),
    "PORT_SCANNING_THRESHOLD": ("int", 10),
    "UDP_SCANNING_THRESHOLD": ("int", 10),
    "INFECTION_SCANNING_THRESHOLD": ("int", 32),
    "WEB_SCANNING_THRESHOLD": ("int", 10),
    "DNS_EXHAUSTION_THRESHOLD": ("int", 1000),
    "NO_SUCH_NAME_PER_HOUR_THRESHOLD": ("int", 20),
    "CHECK_MISSING_HOST": ("bool", False),
    "CHECK_HOST_DOMAINS": ("bool", False),
    "USER_WHITELIST": ("str", None),
    "USER_IGNORELIST": ("str", None),
    "IGNORE_EVENTS_REGEX": ("regex", None),
    "PLUGINS": ("str", None),
    # [All]
    "SHOW_DEBUG": ("bool", False),
    "LOG_DIR": ("path", "$SYSTEM_LOG_DIR/maltrail"),
    "PROXY_ADDRESS": ("str", None),
    "DISABLE_CHECK_SUDO": ("bool", False),
    "TRAILS_FILE": ("str", "~/.maltrail/trails.csv"),
    "ALLOW_EMPTY_TRAILS": ("bool", False),
    "TRAIL_RELOAD_MIN_RATIO": ("float", 0.5),
    "TRAIL_CIDR_MIN_PREFIX": ("int", 16),
}

# Numeric ranges enforced after parsing: key -> (min, max). Out of range is an error, not a clamp,
# except SCAN_WINDOW which the original clamps (kept for compatibility).
RANGES: dict[str, tuple[float, float]] = {
    "HTTP_PORT": (1, 65535), "UDP_PORT": (1, 65535), "MAX_REQUEST_THREADS": (1, 10000),
    "MAX_LIVE_STREAMS": (0, 10000), "REQUEST_TIMEOUT": (1, 3600), "IP_MINIMUM_FEEDS": (1, 1000),
    "UPDATE_PERIOD": (60, 365 * 86400), "CAPTURE_WORKERS": (1, 64), "CAPTURE_SNAPLEN": (64, 262144),
    "CAPTURE_TIMEOUT": (1, 10000), "EVENT_THROTTLE_WINDOW": (1, 86400), "EVENT_THROTTLE_BURST": (1, 1000000),
    "EVENT_THROTTLE_MAX_KEYS": (1, 10000000), "DOMAIN_CACHE_ENTRIES": (0, 10000000),
    "TRAIL_RELOAD_MIN_RATIO": (0.0, 1.0), "FAST_ADMIT_LEVEL": (0, 3), "PROCESS_COUNT": (1, 1024),
    "HUNT_TIME_BUDGET": (0.1, 600), "ALERT_THROTTLE": (0, 86400 * 7), "FEED_CONCURRENCY": (1, 64),
    "FEED_TIMEOUT": (1, 600), "UDP_MAX_SKEW": (1, 86400), "METRICS_INTERVAL": (1, 86400 * 7),
    "HOME_LAT": (-90, 90), "HOME_LON": (-180, 180), "TRAIL_CIDR_MIN_PREFIX": (0, 32),
}
CLAMPED = {"SCAN_WINDOW": (1, 3600)}
CHOICES: dict[str, tuple[str, ...]] = {
    "EVENT_THROTTLE_MODE": ("summarize", "legacy", "off"),
    "OFFLINE_TIMESTAMPS": ("pcap", "wallclock"),
    "ALERT_SEVERITY": ("low", "medium", "high"),
    "CAPTURE_FANOUT_MODE": ("hash", "lb", "cpu", "rollover", "rnd"),
}
DEPRECATED = {"USE_MULTIPROCESSING": "ignored; use CAPTURE_WORKERS"}


@dataclass
class Config:
    """Parsed configuration. Values are typed per SCHEMA; missing optional keys are None.

    Access keys as attributes (`config.LOG_DIR`) or with `config.get("KEY")`. Extra array keys of
    the form BLACKLIST_<NAME> are kept in `blacklists` (the plain BLACKLIST under "").
    """

    values: dict[str, Any]
    source: str | None = None
    blacklists: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        if name.isupper():
            return None
        raise AttributeError(name)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key)
        return default if value is None else value

    def replace(self, **changes: Any) -> Config:
        """A copy with some keys changed (values given already typed). Used by tests and CLIs."""
        values = dict(self.values)
        values.update(changes)
        return Config(values=values, source=self.source, blacklists=dict(self.blacklists),
                      warnings=list(self.warnings))

    def effective(self) -> list[tuple[str, Any]]:
        """Sorted (key, value) pairs for printing the effective configuration (secrets masked)."""
        secret = re.compile(r"KEY$|^USERS$|PASSWORD")
        out = []
        for key in sorted(self.values):
            value = self.values[key]
            if value is not None and secret.search(key):
                value = "<set>"
            out.append((key, value))
        return out


def _expand(key: str, raw: str, env: Mapping[str, str]) -> str:
    builtins = {
        "SYSTEM_LOG_DIR": "/var/log",
        "HOSTNAME": env.get("HOSTNAME") or socket.gethostname(),
        "ROOT_DIR": ROOT_DIR,
    }

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name in builtins:
            return builtins[name]
        if name in env:
            return env[name]
        raise ConfigError(key, raw, f"unknown variable ${name}")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, raw)


def _convert(key: str, kind: str, raw: Any, env: Mapping[str, str]) -> Any:
    if raw is None:
        return None
    if kind == "list":
        items = raw if isinstance(raw, list) else [line for line in str(raw).splitlines()]
        return [_expand(key, item.strip(), env) for item in items if item.strip()]
    text = _expand(key, str(raw), env).strip()
    if kind == "str":
        return text or None
    if kind == "bool":
        return _parse_bool(key, text)
    if kind == "int":
        return _parse_int(key, text) if text else None
    if kind == "float":
        return _parse_float(key, text) if text else None
    if kind == "regex":
        return _parse_regex(key, text) if text else None
    if kind == "size":
        return parse_size(key, text) if text else None
    if kind == "path":
        if not text:
            return None
        text = os.path.expanduser(text)
        return text if os.path.isabs(text) else os.path.normpath(os.path.join(ROOT_DIR, text))
    raise AssertionError(f"unknown kind {kind}")


def read_lines(text: str, source: str) -> tuple[dict[str, Any], list[str]]:
    """Raw key -> value (str) or list (arrays) from config text, in file order."""
    raw: dict[str, Any] = {}
    warnings: list[str] = []
    array_key: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = re.sub(r"(^|\s)#.*", "", line).rstrip()
        if not stripped.strip():
            continue
        if line[:1] in (" ", "\t"):
            if array_key is None:
                raise ConfigError(f"line {number}", stripped.strip(), f"indented line outside an array in {source}")
            raw[array_key].append(stripped.strip())
            continue
        parts = stripped.split(None, 1)
        key = parts[0]
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
            raise ConfigError(f"line {number}", stripped, f"not a KEY value line in {source}")
        if len(parts) == 1:
            raw[key] = []
            array_key = key
        else:
            raw[key] = parts[1].strip()
            array_key = None
    return raw, warnings


def load_config(path: str | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Read a config file (None = the shipped maltrail.conf) and apply MALTRAIL_<KEY> overrides.

    `overrides` (raw strings, as if they came from the file) win over the environment; tests use them.
    """
    env = os.environ if env is None else env
    path = path or DEFAULT_CONFIG_FILE
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as ex:
        raise ConfigError("config file", path, ex.strerror or str(ex)) from None
    except UnicodeDecodeError:
        raise ConfigError("config file", path, "not valid UTF-8") from None
    raw, warnings = read_lines(text, path)
    for name, value in env.items():
        if name.startswith("MALTRAIL_") and len(name) > 9 and name not in ENV_ONLY:
            key = name[9:]
            kind = SCHEMA.get(key, ("str", None))[0]
            raw[key] = value.splitlines() if kind == "list" or key.startswith("BLACKLIST") else value
    for key, value in (overrides or {}).items():
        raw[key] = value
    return build_config(raw, env, source=path, warnings=warnings)


def build_config(raw: Mapping[str, Any], env: Mapping[str, str] | None = None, source: str | None = None,
                 warnings: list[str] | None = None) -> Config:
    """Typed Config from raw key -> string/list values (defaults for absent keys)."""
    env = os.environ if env is None else env
    warnings = list(warnings or [])
    values: dict[str, Any] = {}
    blacklists: dict[str, list[str]] = {}
    for key, value in raw.items():
        if key in DEPRECATED:
            warnings.append(f"{key} is deprecated: {DEPRECATED[key]}")
            continue
        if key == "BLACKLIST" or (key.startswith("BLACKLIST_") and key != "BLACKLIST_ALLOWLIST"):
            name = "" if key == "BLACKLIST" else key[len("BLACKLIST_"):]
            blacklists[name] = _convert(key, "list", value, env) or []
            continue
        if key in SCHEMA:
            kind = SCHEMA[key][0]
        elif key.startswith(BOOL_PREFIXES):
            kind = "bool"
        else:
            kind = "list" if isinstance(value, list) else "str"
            warnings.append(f"unknown configuration key {key} (kept as given)")
        if kind != "list" and isinstance(value, list):
            raise ConfigError(key, "(array)", "expected a single value on the key's line")
        values[key] = _convert(key, kind, value, env)
    for key, (kind, default) in SCHEMA.items():
        if key not in values:
            values[key] = _convert(key, kind, default, env)
    _validate(values)
    return Config(values=values, source=source, blacklists=blacklists, warnings=warnings)


def _validate(values: dict[str, Any]) -> None:
    for key, (low, high) in RANGES.items():
        value = values.get(key)
        if value is not None and not low <= value <= high:
            raise ConfigError(key, value, f"must be between {low:g} and {high:g}")
    for key, (low, high) in CLAMPED.items():
        value = values.get(key)
        if value is not None:
            values[key] = int(min(max(value, low), high))
    for key, choices in CHOICES.items():
        value = values.get(key)
        if value is not None:
            values[key] = value = str(value).lower()
            if value not in choices:
                raise ConfigError(key, value, "expected one of " + ", ".join(choices))
    for key in ("LOG_SERVER", "SYSLOG_SERVER", "LOGSTASH_SERVER", "STATS_ADDRESS"):
        if values.get(key):
            parse_endpoints(key, values[key])
    if (values.get("UDP_ADDRESS") is None) != (values.get("UDP_PORT") is None):
        raise ConfigError("UDP_PORT" if values.get("UDP_ADDRESS") else "UDP_ADDRESS", None,
                          "UDP_ADDRESS and UDP_PORT must be set together")
    if values.get("USE_SSL") and not values.get("SSL_PEM"):
        raise ConfigError("SSL_PEM", None, "required when USE_SSL is true")
    if values.get("TRAILS_FILE"):
        values["TRAILS_FILE"] = os.path.abspath(os.path.expanduser(values["TRAILS_FILE"]))


def fail(error: ConfigError, printer: Callable[[str], None] | None = None) -> int:
    """Print the one-line explanation for a ConfigError and return the exit status (2)."""
    import sys

    (printer or (lambda s: print(s, file=sys.stderr)))(f"maltrail: {error}")
    return 2
