"""Python packages outside the standard library: which ones each entry point needs, and what to say.

Where it sits: the first thing sensor.py (also for `-T`), server.py and `python3 -m core.update` do,
before any import that needs such a package; this module itself uses the standard library only.

The rule, in one place:
- Required runtime packages (REQUIRED, also in requirements.txt): pcapy-ng, dpkt, requests. The
  sensor needs all three, the trail update needs requests, the server none (it starts with the
  standard library alone; only its optional trail refresh, USE_SERVER_UPDATE_TRAILS, uses requests).
- Optional packages (OPTIONAL, marked optional in requirements.txt): cryptography. Without it the
  sensor skips QUIC Initial SNI (one start-up warning, one `-T` line) and detects everything else.
- `require(role)`: when the running interpreter lacks a required package and the project's .venv
  exists, the process re-executes itself under .venv/bin/python with the same command line (one
  informational line on stderr; `os.execv` keeps the process id, so signals and the exit status are
  the new program's). An environment marker stops a second re-execution. When neither interpreter
  has what the role needs: one message naming the packages and the two ways to get them, exit 2.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import NamedTuple, NoReturn

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # core/ops/ -> the root
VENV_DIR = os.path.join(ROOT_DIR, ".venv")
VENV_PYTHON = os.path.join(VENV_DIR, "bin", "python")
REEXEC_MARKER = "_MALTRAIL_REEXEC"  # set for the re-executed process; not a MALTRAIL_<KEY> override


class Package(NamedTuple):
    module: str  # import name
    name: str  # distribution name (pip, requirements.txt)
    use: str  # what it is for, in words


REQUIRED = (
    Package("pcapy", "pcapy-ng", "packet capture and capture-file replay"),
    Package("dpkt", "dpkt", "the self-test's crafted packets"),
    Package("requests", "requests", "trail feed downloads"),
)
OPTIONAL = (
    Package("cryptography", "cryptography", "QUIC Initial SNI (the server name in QUIC v1/v2 client Initials)"),
)
NEEDS = {
    "sensor": ("pcapy", "dpkt", "requests"),
    "update": ("requests",),
    "server": (),
}


def installed(module: str) -> bool:
    """Whether `module` can be imported by this interpreter (found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(packages: tuple[Package, ...]) -> list[Package]:
    return [package for package in packages if not installed(package.module)]


def missing_for(role: str) -> list[Package]:
    """The required packages `role` (sensor, update, server) needs and this interpreter lacks."""
    return [package for package in missing(REQUIRED) if package.module in NEEDS[role]]


def in_project_venv() -> bool:
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV_DIR)


def require(role: str) -> None:
    """Return when this interpreter can run `role` (sensor, update, server); else re-execute under
    the project's .venv or exit 2 with the install instructions (never a traceback)."""
    absent = missing(REQUIRED)
    if not absent:
        os.environ.pop(REEXEC_MARKER, None)  # children (workers, updates) start clean
        return
    if os.path.exists(VENV_PYTHON) and not in_project_venv() and not os.environ.get(REEXEC_MARKER):
        try:
            reexec(absent)
        except OSError as ex:  # not executable: say so, then as if there were no .venv
            os.environ.pop(REEXEC_MARKER, None)
            print(f"[!] cannot run {VENV_PYTHON}: {ex.strerror or ex}", file=sys.stderr, flush=True)
    needed = missing_for(role)
    if needed:
        refuse(role, needed)


def reexec(absent: list[Package]) -> NoReturn:
    """Replace this process by the same command line under .venv/bin/python (one line on stderr)."""
    names = ", ".join(package.name for package in absent)
    print(f"[i] {sys.executable} has no {names}: running under {VENV_PYTHON} instead", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.environ[REEXEC_MARKER] = sys.executable
    arguments = sys.orig_argv[1:] if sys.orig_argv else sys.argv
    os.execv(VENV_PYTHON, [VENV_PYTHON, *arguments])


def refuse(role: str, needed: list[Package]) -> NoReturn:
    print(install_message(role, needed), file=sys.stderr, flush=True)
    sys.exit(2)


def install_message(role: str, needed: list[Package]) -> str:
    """The one message for missing required packages: which, and the two ways to get them."""
    names = ", ".join(package.name for package in needed)
    tried = sys.executable
    if os.environ.get(REEXEC_MARKER):
        tried = f"{os.environ[REEXEC_MARKER]} nor {VENV_PYTHON}"
    elif not os.path.exists(VENV_PYTHON):
        tried += f" (and there is no {VENV_DIR})"
    return (
        f"{role}: missing Python packages: {names} (not installed for {tried}).\n"
        f"Get them one of two ways, from {ROOT_DIR}:\n"
        "  sudo ./setup.sh run\n"
        "      (Debian packages, .venv with requirements.txt, then starts the server and the sensor)\n"
        "  python3 -m venv .venv && .venv/bin/pip install -r requirements.txt\n"
        "      (needs the Debian packages python3-venv, python3-dev, gcc and libpcap-dev)\n"
        "then run the same command again: it uses .venv by itself.\n"
        "(Debian and Ubuntu refuse `sudo pip3 install` into the system Python under PEP 668, "
        "\"externally-managed-environment\": hence the virtual environment.)"
    )


def optional_note() -> str | None:
    """What is lost without the optional packages and how to get it back, or None when all are there."""
    absent = missing(OPTIONAL)
    if not absent:
        return None
    names = " ".join(package.name for package in absent)
    uses = "; ".join(package.use for package in absent)
    pip = f"{VENV_DIR}/bin/pip" if in_project_venv() else f"{sys.executable} -m pip"
    return (f"{', '.join(package.name for package in absent)} not installed: skipped: {uses}; every other "
            f"detection works. Get it back with: {pip} install {names}")
