"""Configuration: parses maltrail.conf (+ MALTRAIL_<KEY> environment overrides) into a typed object.

Where it sits: the very first stage of sensor.py and server.py. Everything downstream receives the
`Config` object explicitly; nothing reads the file or the environment again.

Syntax (compatible with the original):
- `KEY value` lines; `#` starts a comment (whole line or after whitespace).
- A bare `KEY` line starts an array; its entries are the following indented lines (USERS, ...).
- Keys starting with USE_/SET_/CHECK_/ENABLE_/SHOW_/DISABLE_ are booleans (1/0/true/false/yes/no/on/off).
- `$VAR` / `${VAR}` expand from built-in variables (SYSTEM_LOG_DIR, HOSTNAME, ROOT_DIR) then the
  environment (names start with a letter or `_`); USERS entries are taken as written (salted hashes
  hold `$`). `*_DIR` values are resolved against the project root.
- The environment variable MALTRAIL_<KEY> overrides the file (array entries separated by newlines);
  MALTRAIL_PURE_PYTHON is not a key: it switches off the compiled accelerators (core/accel).
- A key this version does not know is kept in `Config.extra` with a warning naming the nearest known
  key (`USE_HEURISTIC` -> did you mean USE_HEURISTICS?); `sensor.py -T` fails on it. The server's
  named lists BLACKLIST_<NAME> are kept there too (without a warning).
A bad value raises ConfigError naming the key and the value; the CLIs turn it into one line + exit 2.
"""

from __future__ import annotations

import dataclasses
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
# Environment variables with the MALTRAIL_ prefix that are not configuration keys: the accelerator
# switch (core/accel) and the test suite's and benchmarks' own settings.
ENV_ONLY = frozenset(("MALTRAIL_PURE_PYTHON", "MALTRAIL_CHROMIUM", "MALTRAIL_BENCH_TRAILS"))


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


def parse_ports(key: str, raw: str | None) -> frozenset[int]:
    """Comma/space separated UDP or TCP port numbers (TUNNEL_VXLAN_PORTS...); `none`: no port (an
    empty value means the key's default, as for every key)."""
    ports = set()
    text = (raw or "").strip()
    if text.lower() == "none":
        return frozenset()
    for item in text.replace(",", " ").split():
        if not item.isdigit() or not 0 < int(item) < 65536:
            raise ConfigError(key, raw, "expected port numbers (1-65535) separated by commas, or none")
        ports.add(int(item))
    return frozenset(ports)


# --- schema ----------------------------------------------------------------------------------------
# One declaration per key: its type (the annotation), how its text is read (kind), its default (as it
# would be written in the file), and its checks. Kinds: str, int, float, bool, regex (kept as text,
# compiled once to check it), size (bytes), list (array of lines), path (absolute). Every key is
# documented in maltrail.conf (tests keep the two in step, and check that every key is read by the
# code unless it is declared accepted-with-no-effect).

KINDS = ("str", "int", "float", "bool", "regex", "size", "list", "path")


@dataclass(frozen=True)
class Key:
    """How one configuration key is read and checked."""

    kind: str
    default: object = None
    bounds: tuple[float, float] | None = None  # out of range is an error (or clamped when `clamp`)
    clamp: bool = False
    choices: tuple[str, ...] = ()  # lower-cased before the check
    no_effect: str = ""  # accepted for compatibility, changes nothing: why (labelled so in maltrail.conf)
    literal: bool = False  # taken as written: no $VAR expansion (USERS: salted hashes hold `$`)


def key(kind: str, default: object = None, *, bounds: tuple[float, float] | None = None, clamp: bool = False,
        choices: tuple[str, ...] = (), no_effect: str = "", literal: bool = False) -> Any:
    """A Config field for one key (no dataclass default: `build_config` always gives every key)."""
    assert kind in KINDS, kind
    return field(metadata={"key": Key(kind, default, bounds, clamp, choices, no_effect, literal)})


PORT = (1, 65535)
ExtraValue = str | bool | list[str] | None


@dataclass(frozen=True, kw_only=True)
class Config:
    """The parsed configuration: one typed, read-only attribute per key (`config.LOG_DIR`).

    Keys that are not declared here are in `extra` (unknown keys, each with a warning, and the
    server's named lists BLACKLIST_<NAME>). Build it with `load_config`/`build_config`; a changed
    copy with `replace(KEY=value, ...)` (values already typed).
    """

    # [Server]
    HTTP_ADDRESS: str = key("str", "127.0.0.1")
    HTTP_PORT: int = key("int", 8338, bounds=PORT)
    HOME_LAT: float | None = key("float", bounds=(-90, 90))
    HOME_LON: float | None = key("float", bounds=(-180, 180))
    DISABLE_RIPE_LOOKUPS: bool = key("bool", True)
    RIPESTAT_URL: str = key("str", "https://stat.ripe.net")
    USE_SSL: bool = key("bool", False)
    SSL_PEM: str | None = key("str")
    USERS: list[str] = key("list", [], literal=True)
    ENABLE_MASK_CUSTOM: bool = key("bool", True)
    UDP_ADDRESS: str | None = key("str")
    UDP_PORT: int | None = key("int", bounds=PORT)
    UDP_KEY: str | None = key("str")
    UDP_MAX_SKEW: int = key("int", 300, bounds=(1, 86400))
    UDP_DAY_WINDOW: int = key("int", 2, bounds=(0, 36500))
    UDP_NEW_DAYS_PER_MINUTE: int = key("int", 10, bounds=(1, 100000))
    USE_SERVER_UPDATE_TRAILS: bool = key("bool", False)
    MAX_REQUEST_THREADS: int = key("int", 100, bounds=(1, 10000))
    MAX_LIVE_STREAMS: int = key("int", 30, bounds=(0, 10000))
    REQUEST_TIMEOUT: int = key("int", 60, bounds=(1, 3600))
    HEAD_TIMEOUT: int = key("int", 10, bounds=(1, 3600))
    MAX_CONNECTIONS: int = key("int", 4096, bounds=(16, 1000000))
    MAX_CONNECTIONS_PER_ADDRESS: int = key("int", 64, bounds=(1, 1000000))
    MAX_POST_SIZE: int = key("size", 10 << 20)
    HUNT_TIME_BUDGET: float = key("float", 10.0, bounds=(0.1, 600))
    EVENT_STORE: str = key("str", "files")
    CLICKHOUSE_CLUSTER: str | None = key("str")
    IP_ALIASES: list[str] = key("list", [])
    HEADER_LOGO: str | None = key("str")
    FAIL2BAN_REGEX: str | None = key("regex")
    FAIL2BAN_ALLOWLIST: str | None = key("str")
    BLACKLIST_ALLOWLIST: str | None = key("str")
    BLACKLIST: list[str] = key("list", [])
    ALERT_WEBHOOK_URL: str | None = key("str")
    ALERT_SEVERITY: str = key("str", "high", choices=("low", "medium", "high"))
    ALERT_FORMAT: str | None = key("str")
    ALERT_THROTTLE: int = key("int", 300, bounds=(0, 86400 * 7))
    # [Sensor]
    PROCESS_COUNT: int | None = key("int", bounds=(1, 1024),
                                    no_effect="workers are CAPTURE_WORKERS; the legacy throttle bucket is "
                                              "EVENT_THROTTLE_WINDOW")
    STATS_ADDRESS: str | None = key("str")
    DISABLE_CPU_AFFINITY: bool = key("bool", True)
    USE_FEED_UPDATES: bool = key("bool", False)
    DISABLED_FEEDS: str = key("str", "")
    IP_MINIMUM_FEEDS: int = key("int", 3, bounds=(1, 1000))
    DISABLED_TRAILS_INFO_REGEX: str | None = key("regex")
    UPDATE_PERIOD: int = key("int", 86400, bounds=(60, 365 * 86400))
    FEED_GRACE_PERIOD: int = key("int", 7 * 86400)
    FEED_MAX_SIZE: int = key("size", 64 << 20)
    FEED_TIMEOUT: int = key("int", 30, bounds=(1, 600))
    FEED_CONCURRENCY: int = key("int", 8, bounds=(1, 64))
    ABUSEIPDB_API_KEY: str | None = key("str")
    OTX_API_KEY: str | None = key("str")
    PHISHTANK_API_KEY: str | None = key("str")
    CUSTOM_TRAILS_URL: str | None = key("str")
    CUSTOM_TRAILS_DIR: str = key("path", "./trails/custom")
    INTEL_SOURCES: list[str] = key("list", [])  # docs/intel.md
    INTEL_WARNINGLISTS: bool = key("bool", True)
    CAPTURE_BUFFER: int = key("size", "10%")
    MONITOR_INTERFACE: str = key("str", "any")
    CAPTURE_FILTER: str | None = key("str")
    USE_FAST_PREFILTER: bool = key("bool", False, no_effect="the original's in-C pcapy-ng prefilter; "
                                                            "the bulk-TCP early exit is always on")
    FAST_FLOW_CUTOFF: int = key("int", 4, no_effect="setting of USE_FAST_PREFILTER")
    FAST_ADMIT_LEVEL: int = key("int", 0, bounds=(0, 3), no_effect="setting of USE_FAST_PREFILTER")
    FAST_ADMIT_ADAPTIVE: bool = key("bool", False, no_effect="setting of USE_FAST_PREFILTER")
    CHECK_TLS_CERTIFICATES: bool = key("bool", True)
    CAPTURE_FANOUT: str | None = key("str")
    USE_CONDENSED_STORAGE: bool = key("bool", True)
    CAPTURE_WORKERS: int = key("int", 1, bounds=(1, 64))
    CAPTURE_BUFFER_SIZE: int | None = key("size")  # None: CAPTURE_BUFFER capped at 256MB
    CAPTURE_SNAPLEN: int = key("int", 2000, bounds=(64, 262144))
    CAPTURE_TIMEOUT: int = key("int", 100, bounds=(1, 10000))
    CAPTURE_IMMEDIATE: bool = key("bool", False)
    CAPTURE_FANOUT_MODE: str = key("str", "hash", choices=("hash", "lb", "cpu", "rollover", "rnd"))
    CAPTURE_FANOUT_DEFRAG: bool = key("bool", False)
    CAPTURE_FANOUT_GROUP: int | None = key("int")
    TUNNEL_VXLAN_PORTS: str = key("str", "4789")
    TUNNEL_GENEVE_PORTS: str = key("str", "6081")
    OFFLINE_TIMESTAMPS: str = key("str", "pcap", choices=("pcap", "wallclock"))
    METRICS_INTERVAL: int = key("int", 3600, bounds=(1, 86400 * 7))
    EVENT_THROTTLE_MODE: str = key("str", "summarize", choices=("summarize", "legacy", "off"))
    EVENT_THROTTLE_WINDOW: int = key("int", 60, bounds=(1, 86400))
    EVENT_THROTTLE_BURST: int = key("int", 3, bounds=(1, 1000000))
    EVENT_THROTTLE_MAX_KEYS: int = key("int", 50000, bounds=(1, 10000000))
    DOMAIN_CACHE_ENTRIES: int = key("int", 16384, bounds=(0, 10000000))
    DISABLE_TRAIL_UPDATES: bool = key("bool", False)
    REPAIR_TRUNCATED_TRAILS: bool = key("bool", True, no_effect="feed trails are kept as the feeds write them")
    SENSOR_NAME: str = key("str", "$HOSTNAME")
    LOG_SERVER: str | None = key("str")
    SYSLOG_SERVER: str | None = key("str")
    LOGSTASH_SERVER: str | None = key("str")
    REMOTE_SEVERITY_REGEX: str | None = key("regex")
    DISABLE_LOCAL_LOG_STORAGE: bool = key("bool", False)
    UPDATE_SERVER: str | None = key("str")
    USE_HEURISTICS: bool = key("bool", False)
    SCAN_WINDOW: int = key("int", 30, bounds=(1, 3600), clamp=True)  # clamped, as the original does
    USE_CAPTURE_AFFINITY: bool = key("bool", False, no_effect="routing by originating host is always on")
    DISABLED_HEURISTICS: str = key("str", "")
    PORT_SCANNING_THRESHOLD: int = key("int", 10)
    UDP_SCANNING_THRESHOLD: int = key("int", 10)
    INFECTION_SCANNING_THRESHOLD: int = key("int", 32)
    WEB_SCANNING_THRESHOLD: int = key("int", 10)
    DNS_EXHAUSTION_THRESHOLD: int = key("int", 1000)
    NO_SUCH_NAME_PER_HOUR_THRESHOLD: int = key("int", 20)
    CHECK_MISSING_HOST: bool = key("bool", False)
    CHECK_HOST_DOMAINS: bool = key("bool", False)
    USER_WHITELIST: str | None = key("str")
    USER_IGNORELIST: str | None = key("str")
    IGNORE_EVENTS_REGEX: str | None = key("regex")
    PLUGINS: str | None = key("str")
    # [All]
    SHOW_DEBUG: bool = key("bool", False)
    LOG_DIR: str = key("path", "$SYSTEM_LOG_DIR/maltrail")
    LOG_RETENTION_DAYS: int = key("int", 0, bounds=(0, 36500))
    PROXY_ADDRESS: str | None = key("str")
    DISABLE_CHECK_SUDO: bool = key("bool", False)
    TRAILS_FILE: str = key("str", "~/.maltrail/trails.csv")
    ALLOW_EMPTY_TRAILS: bool = key("bool", False)
    TRAIL_RELOAD_MIN_RATIO: float = key("float", 0.5, bounds=(0.0, 1.0))
    TRAIL_CIDR_MIN_PREFIX: int = key("int", 16, bounds=(0, 32))

    # not keys: where the values came from
    extra: Mapping[str, ExtraValue] = field(default_factory=dict)
    source: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def blacklists(self) -> dict[str, list[str]]:
        """The server's named lists: BLACKLIST under "", BLACKLIST_<NAME> under NAME."""
        named = {name[len("BLACKLIST_"):]: value for name, value in self.extra.items()
                 if is_named_blacklist(name) and isinstance(value, list)}
        return {"": self.BLACKLIST, **named}

    @property
    def unknown_keys(self) -> list[str]:
        """Keys given that this version does not know (each has a warning; `-T` fails on them)."""
        return [name for name in self.extra if not is_named_blacklist(name)]

    def replace(self, **changes: Any) -> Config:
        """A copy with some keys changed (values given already typed). Used by tests and CLIs."""
        return dataclasses.replace(self, **changes)

    def effective(self) -> list[tuple[str, object]]:
        """Sorted (key, value) pairs for printing the effective configuration (secrets masked)."""
        secret = re.compile(r"KEY$|^USERS$|PASSWORD")
        values: dict[str, object] = {name: getattr(self, name) for name in SCHEMA}
        values.update(self.extra)
        out: list[tuple[str, object]] = []
        for name in sorted(values):
            value = values[name]
            if isinstance(value, str) and "@" in value:        # URL credentials (EVENT_STORE, ...)
                value = re.sub(r"(//[^:/@\s]*):[^@/\s]*@", r"\1:<set>@", value)
            out.append((name, "<set>" if value is not None and secret.search(name) else value))
        return out


SCHEMA: dict[str, Key] = {f.name: f.metadata["key"] for f in dataclasses.fields(Config) if "key" in f.metadata}
DEPRECATED = {"USE_MULTIPROCESSING": "ignored; use CAPTURE_WORKERS"}


def is_named_blacklist(name: str) -> bool:
    return name.startswith("BLACKLIST_") and name not in SCHEMA


def nearest_key(name: str) -> str | None:
    """The declared key closest to a misspelt one (USE_HEURISTIC -> USE_HEURISTICS), or None."""
    import difflib  # a misspelt key only: not a start-up import

    close = difflib.get_close_matches(name, list(SCHEMA), n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_key_warning(name: str) -> str:
    near = nearest_key(name)
    return f"unknown configuration key {name}: " + (f"did you mean {near}?" if near else "ignored")


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

    return re.sub(r"\$\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)", sub, raw)


RawValue = str | list[str] | None


def _convert(key: str, kind: str, raw: object, env: Mapping[str, str], expand: bool = True) -> Any:
    """The typed value of one key's text (None when empty); `expand` false: no $VAR expansion."""
    if raw is None:
        return None
    if kind == "list":
        items = raw if isinstance(raw, list) else str(raw).splitlines()
        return [_expand(key, str(item).strip(), env) if expand else str(item).strip()
                for item in items if str(item).strip()]
    text = (_expand(key, str(raw), env) if expand else str(raw)).strip()
    if kind == "bool":
        return _parse_bool(key, text)
    if not text:
        return None
    if kind == "str":
        return text
    if kind == "int":
        return _parse_int(key, text)
    if kind == "float":
        return _parse_float(key, text)
    if kind == "regex":
        return _parse_regex(key, text)
    if kind == "size":
        return parse_size(key, text)
    if kind == "path":
        text = os.path.expanduser(text)
        return text if os.path.isabs(text) else os.path.normpath(os.path.join(ROOT_DIR, text))
    raise AssertionError(f"unknown kind {kind}")


def _typed(name: str, spec: Key, raw: object, env: Mapping[str, str]) -> Any:
    """One key's value: the given text converted, the default when absent or empty, then checked."""
    value = _convert(name, spec.kind, raw, env, not spec.literal)
    if value is None and spec.default is not None:
        value = "" if spec.default == "" else _convert(name, spec.kind, spec.default, env, not spec.literal)
    if value is None:
        return None
    if spec.bounds is not None:
        low, high = spec.bounds
        if spec.clamp:
            value = type(value)(min(max(value, low), high))
        elif not low <= value <= high:
            raise ConfigError(name, value, f"must be between {low:g} and {high:g}")
    if spec.choices:
        value = str(value).lower()
        if value not in spec.choices:
            raise ConfigError(name, value, "expected one of " + ", ".join(spec.choices))
    return value


def read_lines(text: str, source: str) -> dict[str, RawValue]:
    """Raw key -> value (str) or list (arrays) from config text, in file order."""
    raw: dict[str, RawValue] = {}
    array: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = re.sub(r"(^|\s)#.*", "", line).rstrip()
        if not stripped.strip():
            continue
        if line[:1] in (" ", "\t"):
            if array is None:
                raise ConfigError(f"line {number}", stripped.strip(), f"indented line outside an array in {source}")
            array.append(stripped.strip())
            continue
        parts = stripped.split(None, 1)
        name = parts[0]
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise ConfigError(f"line {number}", stripped, f"not a KEY value line in {source}")
        if len(parts) == 1:
            raw[name] = array = []
        else:
            raw[name] = parts[1].strip()
            array = None
    return raw


def load_config(path: str | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, RawValue] | None = None) -> Config:
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
    raw = read_lines(text, path)
    for name, value in env.items():
        if name.startswith("MALTRAIL_") and len(name) > 9 and name not in ENV_ONLY:
            name = name[9:]
            spec = SCHEMA.get(name)
            is_list = spec.kind == "list" if spec is not None else name.startswith("BLACKLIST_")
            raw[name] = value.splitlines() if is_list else value
    raw.update(overrides or {})
    return build_config(raw, env, source=path)


def build_config(raw: Mapping[str, RawValue], env: Mapping[str, str] | None = None, source: str | None = None,
                 warnings: list[str] | None = None) -> Config:
    """Typed Config from raw key -> string/list values (defaults for absent keys)."""
    env = os.environ if env is None else env
    notes = list(warnings or [])
    values: dict[str, Any] = {}
    extra: dict[str, ExtraValue] = {}
    for name, value in raw.items():
        spec = SCHEMA.get(name)
        if name in DEPRECATED:
            notes.append(f"{name} is deprecated: {DEPRECATED[name]}")
        elif spec is not None:
            if spec.kind != "list" and isinstance(value, list):
                raise ConfigError(name, "(array)", "expected a single value on the key's line")
            values[name] = _typed(name, spec, value, env)
        elif is_named_blacklist(name):
            extra[name] = _convert(name, "list", value, env) or []
        else:
            notes.append(unknown_key_warning(name))
            kind = "bool" if name.startswith(BOOL_PREFIXES) else "list" if isinstance(value, list) else "str"
            extra[name] = _convert(name, kind, value, env)
    for name, spec in SCHEMA.items():
        if name not in values:
            values[name] = _typed(name, spec, None, env)
    _check_together(values)
    return Config(**values, extra=extra, source=source, warnings=notes)


def _check_together(values: dict[str, Any]) -> None:
    """Checks across keys, and the few values normalised after parsing."""
    for name in ("LOG_SERVER", "SYSLOG_SERVER", "LOGSTASH_SERVER", "STATS_ADDRESS"):
        if values[name]:
            parse_endpoints(name, values[name])
    if (values["UDP_ADDRESS"] is None) != (values["UDP_PORT"] is None):
        raise ConfigError("UDP_PORT" if values["UDP_ADDRESS"] else "UDP_ADDRESS", None,
                          "UDP_ADDRESS and UDP_PORT must be set together")
    for name in ("TUNNEL_VXLAN_PORTS", "TUNNEL_GENEVE_PORTS"):
        parse_ports(name, values[name])
    if values["USE_SSL"] and not values["SSL_PEM"]:
        raise ConfigError("SSL_PEM", None, "required when USE_SSL is true")
    values["TRAILS_FILE"] = os.path.abspath(os.path.expanduser(values["TRAILS_FILE"]))


def fail(error: ConfigError, printer: Callable[[str], None] | None = None) -> int:
    """Print the one-line explanation for a ConfigError and return the exit status (2)."""
    import sys

    (printer or (lambda s: print(s, file=sys.stderr)))(f"maltrail: {error}")
    return 2
