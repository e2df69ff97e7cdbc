"""Optional C accelerators for the sensor's per-packet hot path (and its first start, and the server's intake).

Where it sits: beside the pure-Python code it speeds up. Every accelerator has a pure-Python twin
that stays the specification: the compiled function must return exactly what the twin returns for
every input (tests compare both on fuzzed input), so detection never depends on whether the
modules were built. `tools/build_accel.py` (run by setup.sh and the Dockerfile) compiles each
`core/accel/_NAME.c` into the module `core.accel._NAME`.

    _decode   batch pre-dispatch: Ethernet/IPv4/IPv6 fast-path decoding and the bulk-TCP skip
    _http     HTTP/1.x request-head parser (core.protocols.http.parse_request)
    _dns      DNS message parser (core.protocols.dns.parse)
    _url      bloom prefilters of request paths and domain suffixes (TrailStore.path_markers_maybe, domain_suffixes)
    _literals any-literal-occurs gates of the heuristics (core.trails.literals.gate)
    _line     the event-line grammar the server's UDP intake checks (core.events.event.check_line)
    _recv     the intake's batched receive, one recvmmsg per chunk (core.server.intake.receive_py)
    _build    the trail index build's placement loop (core.trails.build, first start)

`load(name)` returns the compiled module, or None when it is not built or when the environment
sets MALTRAIL_PURE_PYTHON=1 (used by tests to exercise the pure-Python paths end to end).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

MODULES = ("_decode", "_http", "_dns", "_url", "_literals", "_line", "_build", "_recv")


def load(name: str) -> ModuleType | None:
    """The compiled accelerator `name` (e.g. "_http"), or None (not built, or disabled)."""
    if os.environ.get("MALTRAIL_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    try:
        return importlib.import_module(f"core.accel.{name}")
    except ImportError:
        return None


def status() -> dict[str, bool]:
    """Which accelerators are in use, for `sensor.py -T` and the start-up line."""
    return {name.lstrip("_"): load(name) is not None for name in MODULES}


def fallback_note() -> str | None:
    """None when every accelerator is in use, else one line naming the pure-Python paths and the
    way out (the sensor's start-up warning and the preflight's `[warn]` line)."""
    missing = [name for name, built in status().items() if not built]
    if not missing:
        return None
    return (f"pure-Python paths for {', '.join(missing)} (about half the packet rate): build them with "
            "`python3 tools/build_accel.py`, or unset MALTRAIL_PURE_PYTHON")
