"""Container health check (the image's HEALTHCHECK): exit 0 healthy, 1 unhealthy.

Where it sits: run by Docker inside a running container. It checks the service this container
runs, with the configuration that service reads: the arguments PID 1 was started with
(docker/entrypoint.py: `server` or `sensor`, and `-c FILE` if given; a service or `-c FILE`
given to this script wins), then that file (maltrail.conf by default) and the MALTRAIL_<KEY>
variables, loaded by core/config.py as the service loads them.
  server: GET /ping on HTTP_ADDRESS:HTTP_PORT (https when USE_SSL) answers "pong";
  sensor: the preflight (`sensor.py -T`) passes under the sensor's own interpreter.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from entrypoint import command, config_args  # noqa: E402

SERVICES = ("server", "sensor")


def started_as() -> tuple[str, list[str]]:
    """(service, its arguments) from PID 1's command line; ("server", []) when it says nothing."""
    try:
        with open("/proc/1/cmdline", "rb") as handle:
            argv = [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return "server", []
    for index, arg in enumerate(argv):
        if arg.endswith("entrypoint.py") and index + 1 < len(argv) and argv[index + 1] in SERVICES:
            return argv[index + 1], argv[index + 2:]
    return "server", []


def server_healthy(conf: list[str]) -> bool:
    from core.config import ConfigError, load_config

    try:
        config = load_config(conf[1] if conf else None)
    except ConfigError as ex:
        print(f"configuration: {ex}")
        return False
    host = config.HTTP_ADDRESS or "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if config.USE_SSL else "http"
    context = ssl._create_unverified_context() if config.USE_SSL else None  # a self-check of the local server
    url = f"{scheme}://{host}:{config.HTTP_PORT}/ping"
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as reply:  # noqa: S310
            body = reply.read().strip()
    except OSError as ex:
        print(f"{url}: {ex}")
        return False
    if body != b"pong":
        print(f"{url}: answered {body[:40]!r}")
    return body == b"pong"


def sensor_healthy(conf: list[str]) -> bool:
    proc = subprocess.run(command("sensor", [*conf, "-T", "-q"]), timeout=60, check=False)
    return proc.returncode == 0


def main(argv: list[str]) -> int:
    """`healthcheck.py [server|sensor] [-c FILE]`: what is given here wins over PID 1's arguments."""
    started, started_args = started_as()
    service = argv[0] if argv and argv[0] in SERVICES else started
    conf = config_args(argv) or (config_args(started_args) if service == started else [])
    return 0 if (sensor_healthy(conf) if service == "sensor" else server_healthy(conf)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
