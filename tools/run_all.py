#!/usr/bin/env python3
"""Run the whole product: server.py in the background, the sensor in the foreground.

Where it sits: the `./setup.sh run` entry point. When no trails file exists yet it builds one
first (the full update with feeds; if that publishes nothing, offline from the bundled static
and custom trails), starts server.py with the same
configuration, prints the web URL and login (and a warning while the default password is in use),
then runs sensor.py in the foreground. Ctrl-C (or SIGTERM) stops both; the exit status is the
sensor's (or the server's, if it failed to start).

    .venv/bin/python tools/run_all.py [-c maltrail.conf] [sensor arguments...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.config import ConfigError, fail, load_config  # noqa: E402
from core.update.firstrun import build_missing_trails  # noqa: E402

DEFAULT_HASH = hashlib.sha256(b"changeme!").hexdigest()


def _stop(proc: subprocess.Popen[bytes] | None) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="start server.py and sensor.py together")
    parser.add_argument("-c", dest="config", default=None, help="configuration file (default: maltrail.conf)")
    args, sensor_args = parser.parse_known_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as ex:
        return fail(ex)
    conf_args = ["-c", args.config] if args.config else []
    python = sys.executable

    build_missing_trails(config, conf_args, "--offline" in sensor_args, lambda line: print(line, flush=True))

    server = subprocess.Popen([python, os.path.join(ROOT, "server.py"), *conf_args], cwd=ROOT)
    time.sleep(1.0)
    if server.poll() is not None:
        print("maltrail: the server did not start (see above)", file=sys.stderr)
        return server.returncode or 1

    host = config.HTTP_ADDRESS or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if config.USE_SSL else "http"
    users = config.get("USERS", [])
    print(f"\n  Maltrail web interface: {scheme}://{host}:{config.HTTP_PORT}/", flush=True)
    if not users:
        print("  Login: none needed (USERS is empty)")
    else:
        names = [entry.split(":", 1)[0] for entry in users]
        default = [entry.split(":", 1)[0] for entry in users if entry.split(":")[1:2] == [DEFAULT_HASH]]
        if default:
            print(f"  Login: {default[0]} / changeme!")
            print("  WARNING: the default password is in use; set your own in USERS "
                  "(python3 server.py --hash-password)")
        else:
            print(f"  Login: {', '.join(names)} (passwords as configured in USERS)")
    print("  Ctrl-C stops the sensor and the server.\n", flush=True)

    sensor = None
    status = 0
    try:
        sensor = subprocess.Popen([python, os.path.join(ROOT, "sensor.py"), *conf_args, *sensor_args], cwd=ROOT)
        signal.signal(signal.SIGTERM, _interrupt)
        status = sensor.wait()
    except KeyboardInterrupt:
        status = 0
    finally:
        _stop(sensor)
        _stop(server)
    return status


if __name__ == "__main__":
    sys.exit(main())
