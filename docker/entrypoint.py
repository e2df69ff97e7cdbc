"""Container entrypoint: which service this container runs, and how it is started.

Where it sits: the image's ENTRYPOINT (under tini); the first argument names the service:
  server [ARGS]   server.py (the image's default)
  sensor [ARGS]   sensor.py under the capture interpreter (the one with CAP_NET_RAW/CAP_NET_ADMIN
                  file capabilities); on the first start it builds the trails (core/update/firstrun.py)
  update [ARGS]   the trail update, `python -m core.update`
  anything else   run as given (e.g. `sh`)
docker/healthcheck.py reads the same arguments (from PID 1) to check the service this container runs.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURE_PYTHON = os.path.join(os.path.dirname(sys.executable), "python-capture")
CAPTURE_CAPABILITIES = (("NET_RAW", 13), ("NET_ADMIN", 12))  # the file capabilities of CAPTURE_PYTHON


def config_args(args: list[str]) -> list[str]:
    """`-c FILE` as given among a service's arguments (the default configuration otherwise)."""
    for index, arg in enumerate(args[:-1]):
        if arg == "-c":
            return ["-c", args[index + 1]]
    return []


def command(service: str, args: list[str]) -> list[str]:
    """The process a service runs."""
    if service == "server":
        return [sys.executable, os.path.join(ROOT, "server.py"), *args]
    if service == "sensor":
        return [CAPTURE_PYTHON, os.path.join(ROOT, "sensor.py"), *args]
    if service == "update":
        return [sys.executable, "-m", "core.update", *args]
    return [service, *args]


def missing_capture_capabilities() -> list[str]:
    """The capture capabilities this container cannot hold (its bounding set lacks them)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            bounding = next(int(line.split()[1], 16) for line in handle if line.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return []  # unknown: the exec below reports a refusal
    return [name for name, bit in CAPTURE_CAPABILITIES if not bounding & (1 << bit)]


def main(argv: list[str]) -> int:
    service, args = (argv[0], argv[1:]) if argv else ("server", [])
    missing = missing_capture_capabilities() if service == "sensor" else []
    if missing:
        print(f"maltrail: the sensor needs {' and '.join(missing)}: start the container with "
              "cap_add NET_RAW and NET_ADMIN (docker run --cap-add NET_RAW --cap-add NET_ADMIN)", file=sys.stderr)
        return 1
    if service == "sensor" and not {"-T", "--test-config", "--self-test", "-r", "-i"} & set(args):
        sys.path.insert(0, ROOT)
        from core.config import ConfigError, fail, load_config
        from core.update.firstrun import FirstRunError, build_missing_trails

        conf = config_args(args)
        try:
            config = load_config(conf[1] if conf else None)
        except ConfigError as ex:
            return fail(ex)
        try:
            build_missing_trails(config, offline="--offline" in args,
                                 say=lambda line: print(f"maltrail: trails: {line}", flush=True))
        except FirstRunError as ex:
            print(f"maltrail: {ex}", file=sys.stderr)
            return 1
    argv_out = command(service, args)
    os.chdir(ROOT)
    try:
        os.execvp(argv_out[0], argv_out)
    except OSError as ex:
        hint = " (the container needs cap_add NET_RAW and NET_ADMIN)" if service == "sensor" else ""
        print(f"maltrail: cannot start {argv_out[0]}: {ex.strerror}{hint}", file=sys.stderr)
        return 126


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
