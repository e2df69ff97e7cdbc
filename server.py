#!/usr/bin/env python3
"""Maltrail server CLI: arguments -> Config -> ServerApp (core/server/app.py) until SIGTERM/SIGINT.

Where it sits: the server tier's entry point. The app runs the UDP intake (sensors' events into
LOG_DIR/YYYY-MM-DD.log), the HTTP API serving those files and the html/ client, and the alert
webhook; this file only parses arguments (`--hash-password` prints a USERS hash and exits) and
maps outcomes to exit codes: 0 clean stop, 1 start-up failure (port in use, log dir not
writable) or a failed intake process, 2 bad config (including a missing, unreadable or invalid
SSL_PEM).
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys

from core.ops.deps import require

require("server")  # standard library only; re-runs under .venv when it exists (core/ops/deps.py)

from core.config import ROOT_DIR, VERSION, ConfigError, fail, load_config  # noqa: E402


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def hash_password_cli() -> int:
    from core.server.auth import hash_password

    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            _print("maltrail: passwords differ")
            return 1
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if not first:
        _print("maltrail: empty password")
        return 1
    print(hash_password(first))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Maltrail server: UDP event intake, logs and web API")
    parser.add_argument("-c", dest="config", help="configuration file (default: maltrail.conf)")
    parser.add_argument("--version", action="version", version=f"Maltrail server {VERSION}")
    parser.add_argument("--hash-password", action="store_true",
                        help="read a password (prompt or stdin) and print its salted USERS hash")
    parser.add_argument("--html-root", default=os.path.join(ROOT_DIR, "html"), help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.hash_password:
        return hash_password_cli()
    from core.server.app import HTTP_NICE, ServerApp, StartError

    try:
        config = load_config(args.config)
        for warning in config.warnings:
            _print(f"maltrail: warning: {warning}")
        app = ServerApp(config, args.html_root, http_nice=HTTP_NICE)
    except ConfigError as ex:
        return fail(ex)
    try:
        app.start()
    except StartError as ex:
        _print(f"maltrail: {ex}")
        return ex.status
    signal.signal(signal.SIGTERM, lambda *_: app.request_stop())
    signal.signal(signal.SIGINT, lambda *_: app.request_stop())
    try:
        app.serve_forever()
    finally:
        status = app.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
