#!/usr/bin/env python3
"""Maltrail server CLI: configuration -> UDP intake (own process) + HTTP API + alerts.

Where it sits: the server tier. Sensors send events over UDP (core/server/intake.py) into
LOG_DIR/YYYY-MM-DD.log; the HTTP API (core/server/api.py) serves those files and the html/
client; the alert tailer (core/server/alerts.py) posts important events to a webhook.
Exit codes: 0 clean stop, 1 start-up failure (port in use, log dir not writable), 2 bad config
(including a missing, unreadable or invalid SSL_PEM). At start the soft RLIMIT_NOFILE is raised
to the hard limit (every connection, live stream and day file is a descriptor).
"""

from __future__ import annotations

import argparse
import getpass
import multiprocessing
import os
import signal
import sys
import threading

from core.config import ROOT_DIR, VERSION, Config, ConfigError, fail, load_config


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_intake(config: Config) -> None:
    """Child process: the UDP receive loop until SIGTERM/SIGINT, then drain, flush, report."""
    from core.events.signing import Verifier
    from core.server.intake import Intake

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    verifier = Verifier(config.UDP_KEY, config.UDP_MAX_SKEW) if config.UDP_KEY else None
    try:
        intake = Intake(config.UDP_ADDRESS, config.UDP_PORT, config.LOG_DIR, verifier)
    except OSError as ex:
        _print(f"maltrail: cannot listen for UDP events on {config.UDP_ADDRESS}:{config.UDP_PORT}: {ex}")
        sys.exit(1)
    signed = "signed only (UDP_KEY)" if verifier else "unsigned"
    _print(f"maltrail: UDP intake on {config.UDP_ADDRESS}:{intake.port} ({signed}, receive buffer "
           f"{intake.rcvbuf >> 10} kB)")
    if intake.rcvbuf < intake.requested_rcvbuf:
        _print(f"maltrail: note: the UDP receive buffer is {intake.rcvbuf >> 10} kB, not the "
               f"{intake.requested_rcvbuf >> 10} kB asked for: net.core.rmem_max caps it; raise it with "
               f"'sysctl -w net.core.rmem_max={intake.requested_rcvbuf}' (docs/operations-server.md)")
    intake.run(stop.is_set, report=_print, report_every=float(config.METRICS_INTERVAL))
    _print("maltrail: " + intake.summary())


def raise_nofile_limit() -> str | None:
    """Soft RLIMIT_NOFILE up to the hard limit; a note when that fails (the server still runs)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as ex:
        return f"cannot raise the open-file limit from {soft} to {hard}: {ex}"
    return None


def check_log_dir(log_dir: str) -> str | None:
    try:
        os.makedirs(log_dir, exist_ok=True)
    except OSError as ex:
        return f"cannot create LOG_DIR {log_dir}: {ex.strerror}"
    if not os.access(log_dir, os.W_OK | os.X_OK):
        return f"LOG_DIR {log_dir} is not writable"
    return None


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Maltrail server: UDP event intake, logs and web API")
    parser.add_argument("-c", dest="config", help="configuration file (default: maltrail.conf)")
    parser.add_argument("--version", action="version", version=f"Maltrail server {VERSION}")
    parser.add_argument("--hash-password", action="store_true",
                        help="read a password (prompt or stdin) and print its salted USERS hash")
    parser.add_argument("--html-root", default=os.path.join(ROOT_DIR, "html"), help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hash_password:
        return hash_password_cli()

    from core.server.api import Api
    from core.server.auth import Auth, parse_users
    from core.server.authlog import AuthForwarder
    from core.server.httpd import HttpServer, make_ssl_context
    from core.server.static import StaticFiles
    from core.server.storage import Storage

    try:
        config = load_config(args.config)
        users = parse_users(config.USERS)
        for warning in config.warnings:
            _print(f"maltrail: warning: {warning}")
        problem = check_log_dir(config.LOG_DIR)
        if problem:
            _print(f"maltrail: {problem}")
            return 1
        auth = Auth(users, bool(config.ENABLE_MASK_CUSTOM), secure_cookie=bool(config.USE_SSL),
                    forward=AuthForwarder.from_config(config))
        stopping = threading.Event()
        static = StaticFiles(args.html_root, VERSION, config.HEADER_LOGO, config.IP_ALIASES,
                             auth.default_password_in_use)
        api = Api(config, auth, Storage(config.LOG_DIR), static, stopping)
    except ConfigError as ex:
        return fail(ex)

    ssl_context = None
    if config.USE_SSL:
        try:
            ssl_context = make_ssl_context(config.SSL_PEM)
        except ValueError as ex:
            _print(f"maltrail: configuration error: SSL_PEM = {config.SSL_PEM!r}: {ex}. Create one with: "
                   "openssl req -new -x509 -keyout server.pem -out server.pem -days 365 -nodes -subj /CN=maltrail")
            return 2
    note = raise_nofile_limit()
    if note:
        _print(f"maltrail: warning: {note}")
    try:
        httpd = HttpServer(config.HTTP_ADDRESS, config.HTTP_PORT, api.handle,
                           max_threads=config.MAX_REQUEST_THREADS,
                           timeout=float(config.REQUEST_TIMEOUT),
                           max_body=config.MAX_POST_SIZE, ssl_context=ssl_context,
                           server_name=f"Maltrail/{VERSION}")
    except OSError as ex:
        hint = " (another instance already running?)" if ex.errno == 98 else ""
        _print(f"maltrail: cannot listen on {config.HTTP_ADDRESS}:{config.HTTP_PORT}: {ex.strerror}{hint}")
        return 1

    intake_process = None
    if config.UDP_ADDRESS and config.UDP_PORT:
        if config.UDP_PORT <= 1024 and os.geteuid() != 0 and not config.DISABLE_CHECK_SUDO:
            _print(f"maltrail: UDP_PORT {config.UDP_PORT} needs root (or DISABLE_CHECK_SUDO)")
            return 1
        intake_process = multiprocessing.get_context("fork").Process(target=run_intake, args=(config,),
                                                                     name="maltrail-intake", daemon=False)
        intake_process.start()

    threads = []
    alert_thread = None
    if config.ALERT_WEBHOOK_URL:
        from core.server.alerts import Alerts

        alerts = Alerts(config, stopping)
        alert_thread = threading.Thread(target=alerts.run, name="alerts", daemon=True)
        threads.append(alert_thread)
    threads.append(threading.Thread(target=_reaper, args=(auth, stopping), name="reaper", daemon=True))
    if config.USE_SERVER_UPDATE_TRAILS:
        threads.append(threading.Thread(target=_updater, args=(config, stopping), name="updater", daemon=True))
    for thread in threads:
        thread.start()

    def stop(*_: object) -> None:
        stopping.set()
        httpd.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheme = "https" if ssl_context else "http"
    host = config.HTTP_ADDRESS if ":" not in config.HTTP_ADDRESS else f"[{config.HTTP_ADDRESS}]"
    _print(f"maltrail: server {VERSION} listening on {scheme}://{host}:{httpd.port}/")
    if auth.default_password_in_use:
        _print("maltrail: WARNING: the default password (admin / changeme!) is in use: change it in USERS "
               "(python3 server.py --hash-password)")
    if not auth.enabled:
        _print("maltrail: WARNING: USERS is empty: the web interface needs no login")
    try:
        httpd.serve_forever()
    finally:
        stopping.set()
        if alert_thread is not None:
            alert_thread.join(10)
        if intake_process is not None:
            if intake_process.is_alive():
                os.kill(intake_process.pid or 0, signal.SIGTERM)
            intake_process.join(30)
    if intake_process is not None and intake_process.exitcode not in (0, None):
        return 1
    return 0


def _reaper(auth: object, stopping: threading.Event) -> None:
    while not stopping.wait(60):
        reap = getattr(auth, "reap", None)
        if reap is not None:
            reap()


def _updater(config: Config, stopping: threading.Event) -> None:
    """USE_SERVER_UPDATE_TRAILS: refresh trails (and the geo table) so /trails and /check serve them."""
    from core import update

    while not stopping.is_set():
        try:
            update.update(config, scheduled=True)
        except Exception as ex:  # noqa: BLE001 - isolation point: one update run
            _print(f"maltrail: trail update failed: {ex}")
        stopping.wait(float(config.UPDATE_PERIOD))


if __name__ == "__main__":
    sys.exit(main())
