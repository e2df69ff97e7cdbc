"""The server as one object: `ServerApp(config, html_root)` with start / serve_forever / stop.

Where it sits: the composition root of the server tier. server.py (the CLI) builds a Config and
runs one ServerApp; tests run it in process on 127.0.0.1. Building it wires the parts that need
only the configuration (USERS and sessions, the static files, the API with its route table) and
raises ConfigError for a bad value. `start()` takes the operating-system resources in this
order: LOG_DIR (created, must be writable), the TLS context (USE_SSL), the soft RLIMIT_NOFILE
raised to the hard limit (MAX_CONNECTIONS lowered to fit it), the HTTP listening socket, the UDP intake socket, then the intake
process (forked, so the receive loop never competes with the HTTP threads for the interpreter;
it raises its own priority where allowed, INTAKE_NICE), then lowers its own priority by `http_nice`
(server.py passes HTTP_NICE: a lost event is worse than a slower page) and starts the threads:
alert tailer (ALERT_WEBHOOK_URL), session reaper, trail updater (USE_SERVER_UPDATE_TRAILS).
USE_CONDENSED_STORAGE gives the intake the observables writer (obswriter.py); EVENT_STORE naming
ClickHouse adds its client, its routes (threats.py) and its journal and writer process to the
intake (chwriter.py). A failure raises StartError (its one-line reason and the exit status:
2 for an unusable SSL_PEM, else 1) after releasing what was taken. Once listening it reports the
address and its warnings: the default password, no USERS, and logins crossing the network in clear
(HTTP_ADDRESS not loopback while USE_SSL is off). `serve_forever()` runs the
HTTP event loop in the calling thread until `request_stop()` (safe in a signal handler) or `stop()`;
`stop()` ends everything: requests in progress get HTTP_GRACE seconds before their connections
are cut; it joins the threads, the HTTP workers and the intake process (which drains its socket
and flushes first), reports the HTTP and login counters and returns the exit status: 1 when the intake process failed, else 0.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from core.config import VERSION, Config
from core.events.dayfile import prune_day_files
from core.events.observables import meta_path
from core.events.severity import severity_pattern
from core.events.signing import Verifier
from core.server.alerts import Alerts
from core.server.api import Api
from core.server.auth import Auth, parse_users
from core.server.authlog import AuthForwarder
from core.server.httpd import HttpServer, make_ssl_context
from core.server.intake import Intake, LineStore
from core.server.obswriter import ObservablesFeed
from core.server.static import StaticFiles
from core.server.storage import Storage

if TYPE_CHECKING:
    from core.server.clickhouse import ClickHouse, EventStore

Report = Callable[[str], None]
JOIN_TIMEOUT = 10.0          # per thread
HTTP_GRACE = 2.0             # for requests in progress at stop, before their connections are cut
INTAKE_JOIN_TIMEOUT = 30.0   # the intake drains and flushes before it exits
HTTP_NICE = 10               # server.py: the HTTP side's niceness step once the intake is forked
INTAKE_NICE = -5             # the intake process's step, where allowed (root or CAP_SYS_NICE)
SENDERS_STATE = "udp_senders.state"   # signed senders' high-water marks, in LOG_DIR
RESERVED_DESCRIPTORS = 64    # besides connections and the request threads' files
SSL_PEM_HINT = ("Create one with: openssl req -new -x509 -keyout server.pem -out server.pem -days 365 -nodes "
                "-subj /CN=maltrail")


class StartError(Exception):
    """The server cannot start: a one-line reason and the process exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def stderr_report(message: str) -> None:
    print(f"maltrail: {message}", file=sys.stderr, flush=True)


def check_log_dir(log_dir: str) -> str | None:
    """None when LOG_DIR exists (created if needed) and is writable, else the reason."""
    try:
        os.makedirs(log_dir, exist_ok=True)
    except OSError as ex:
        return f"cannot create LOG_DIR {log_dir}: {ex.strerror}"
    if not os.access(log_dir, os.W_OK | os.X_OK):
        return f"LOG_DIR {log_dir} is not writable"
    return None


def is_loopback(address: str) -> bool:
    """HTTP_ADDRESS reaches only this machine: a loopback address or `localhost`."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def clear_text_warning(http_address: str, tls: bool) -> str | None:
    """The start-up warning when logins and sessions cross the network without TLS, else None."""
    if tls or is_loopback(http_address):
        return None
    return (f"WARNING: HTTP_ADDRESS {http_address or '(all)'} is reachable from the network and USE_SSL is "
            "off: passwords (password form, HTTP Basic on the /intel exports), login exchanges and session "
            "cookies cross the network in clear, "
            "so anyone on the path can read them and take over a session. Turn TLS on: USE_SSL true and "
            f"SSL_PEM /path/server.pem. {SSL_PEM_HINT} (docs/operations-server.md#tls)")


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


def connection_cap(wanted: int, max_threads: int) -> tuple[int, str | None]:
    """MAX_CONNECTIONS within the open-file limit (the soft one, after the raise): room is kept
    for the files the request threads open and the server's own descriptors. A note when lowered."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted, None
    room = max(16, soft - RESERVED_DESCRIPTORS - max_threads)
    if wanted <= room:
        return wanted, None
    return room, (f"MAX_CONNECTIONS lowered from {wanted} to {room} to fit the open-file limit ({soft}); "
                  "raise the hard limit (docs/operations-server.md)")


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def run_intake(intake: Intake, report: Report, report_every: float) -> None:
    """The intake process: the receive loop until SIGTERM/SIGINT, then drain, flush, report. The
    process is forked with those signals blocked (`_start_intake`): one sent before the handlers
    are set waits for them instead of killing the process with datagrams still queued."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    intake.run(stop.is_set, report=report, report_every=report_every)
    report(intake.summary())


class ServerApp:
    """The UDP intake, the HTTP API and the background threads of one server."""

    def __init__(self, config: Config, html_root: str, report: Report = stderr_report, http_nice: int = 0) -> None:
        self.config = config
        self.report = report
        self.http_nice = http_nice      # server.py passes HTTP_NICE; tests in process keep their priority
        self.stopping = threading.Event()
        self.auth = Auth(parse_users(config.USERS), bool(config.ENABLE_MASK_CUSTOM),
                         secure_cookie=bool(config.USE_SSL), forward=AuthForwarder.from_config(config))
        from core.server.ripe import ripe_enabled  # (imported with the API's routes anyway)

        self.static = StaticFiles(html_root, VERSION, config.HEADER_LOGO, config.IP_ALIASES,
                                  self.auth.default_password_in_use, severity_pattern(config.REMOTE_SEVERITY_REGEX),
                                  ripe_enabled(config))
        self.storage = Storage(config.LOG_DIR)
        self.api = Api(config, self.auth, self.storage, self.static, self.stopping)
        self.event_store: EventStore | None = None      # EVENT_STORE other than `files`
        self.clickhouse: ClickHouse | None = None
        if config.EVENT_STORE.strip().lower() != "files":
            self._use_event_store()
        self.httpd: HttpServer | None = None
        self.udp_port: int | None = None
        self.intake_process: BaseProcess | None = None
        self.threads: list[threading.Thread] = []
        self.serving = threading.Lock()      # held while serve_forever runs

    def _use_event_store(self) -> None:
        """EVENT_STORE names ClickHouse: its client, and its routes added to the API's table."""
        from core.server.clickhouse import ClickHouse, parse_event_store
        from core.server.threats import Threats

        self.event_store = parse_event_store(self.config.EVENT_STORE, self.config.CLICKHOUSE_CLUSTER)
        if self.event_store.clickhouse is not None:
            self.clickhouse = ClickHouse(self.event_store.clickhouse)
            threats = Threats(self.config, self.clickhouse, self.event_store.files)
            self.api.routes.update(threats.routes())
            if not self.event_store.files:
                self.api.lists.day_lines = threats.day_lines  # /fail2ban and /blacklist read ClickHouse

    @property
    def port(self) -> int:
        """The bound HTTP port (after start; HTTP_PORT unless that was 0)."""
        assert self.httpd is not None, "start() first"
        return self.httpd.port

    # -- start -----------------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        problem = check_log_dir(config.LOG_DIR)
        if problem:
            raise StartError(problem)
        ssl_context = self._ssl_context()
        note = raise_nofile_limit()
        if note:
            self.report(f"warning: {note}")
        max_threads = config.MAX_REQUEST_THREADS
        max_connections, note = connection_cap(config.MAX_CONNECTIONS, max_threads)
        if note:
            self.report(f"warning: {note}")
        try:
            self.httpd = HttpServer(config.HTTP_ADDRESS, config.HTTP_PORT, self.api.handle,
                                    max_threads=max_threads, timeout=float(config.REQUEST_TIMEOUT),
                                    head_timeout=float(config.HEAD_TIMEOUT),
                                    max_body=config.MAX_POST_SIZE, max_connections=max_connections,
                                    max_per_address=config.MAX_CONNECTIONS_PER_ADDRESS,
                                    ssl_context=ssl_context, server_name=f"Maltrail/{VERSION}")
        except OSError as ex:
            hint = " (another instance already running?)" if ex.errno == 98 else ""
            raise StartError(f"cannot listen on {config.HTTP_ADDRESS}:{config.HTTP_PORT}: "
                             f"{ex.strerror}{hint}") from None
        try:
            self._start_intake()
        except BaseException:
            self.httpd.shutdown()
            raise
        self._lower_priority()
        self._start_threads()
        scheme = "https" if ssl_context else "http"
        host = config.HTTP_ADDRESS if ":" not in config.HTTP_ADDRESS else f"[{config.HTTP_ADDRESS}]"
        self.report(f"server {VERSION} listening on {scheme}://{host}:{self.httpd.port}/")
        if self.auth.default_password_in_use:
            self.report("WARNING: the default password (admin / changeme!) is in use: change it in USERS "
                        "(python3 server.py --hash-password)")
        if not self.auth.enabled:
            self.report("WARNING: USERS is empty: the web interface needs no login")
        clear = clear_text_warning(config.HTTP_ADDRESS, ssl_context is not None)
        if clear:
            self.report(clear)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.USE_SSL:
            return None
        pem = self.config.SSL_PEM or ""
        try:
            return make_ssl_context(pem)
        except ValueError as ex:
            raise StartError(f"configuration error: SSL_PEM = {pem!r}: {ex}. {SSL_PEM_HINT}", 2) from None

    def _start_intake(self) -> None:
        """Bind the UDP socket here (a failure is a start failure), then fork the receive loop."""
        config = self.config
        if not (config.UDP_ADDRESS and config.UDP_PORT is not None):
            return
        if 0 < config.UDP_PORT <= 1024 and os.geteuid() != 0 and not config.DISABLE_CHECK_SUDO:
            raise StartError(f"UDP_PORT {config.UDP_PORT} needs root (or DISABLE_CHECK_SUDO)")
        verifier = None
        if config.UDP_KEY:
            verifier = Verifier(config.UDP_KEY, config.UDP_MAX_SKEW,
                                state_path=os.path.join(config.LOG_DIR, SENDERS_STATE))
        stores: list[LineStore] = []
        if self.clickhouse is not None:
            from core.server.chwriter import StoreFeed, spool_dir

            stores.append(StoreFeed(self.clickhouse.target, spool_dir(config.LOG_DIR)))
        if config.USE_CONDENSED_STORAGE:
            stores.append(ObservablesFeed(meta_path(config.LOG_DIR)))
        day_files = self.event_store is None or self.event_store.files
        try:
            intake = Intake(config.UDP_ADDRESS, config.UDP_PORT, config.LOG_DIR, verifier,
                            day_window=config.UDP_DAY_WINDOW,
                            new_days_per_minute=config.UDP_NEW_DAYS_PER_MINUTE, stores=stores,
                            day_files=day_files)
        except OSError as ex:
            raise StartError(f"cannot listen for UDP events on {config.UDP_ADDRESS}:{config.UDP_PORT}: "
                             f"{ex.strerror or ex}") from None
        self.udp_port = intake.port
        if self.clickhouse is not None:
            target = self.clickhouse.target
            self.report(f"events to ClickHouse {target.url} database {target.database}"
                        f"{'' if day_files else ' only (no day files)'}; journal {spool_dir(config.LOG_DIR)}")
        signed = "signed only (UDP_KEY)" if verifier else "unsigned"
        self.report(f"UDP intake on {config.UDP_ADDRESS}:{intake.port} ({signed}, receive buffer "
                    f"{intake.rcvbuf >> 10} kB)")
        if intake.rcvbuf < intake.requested_rcvbuf:
            self.report(f"note: the UDP receive buffer is {intake.rcvbuf >> 10} kB, not the "
                        f"{intake.requested_rcvbuf >> 10} kB asked for: net.core.rmem_max caps it; raise it "
                        f"with 'sysctl -w net.core.rmem_max={intake.requested_rcvbuf}' "
                        "(docs/operations-server.md)")
        assert self.httpd is not None
        listening = self.httpd.sock
        process = multiprocessing.get_context("fork").Process(
            target=self._intake_child, args=(intake, listening, float(config.METRICS_INTERVAL)),
            name="maltrail-intake", daemon=False)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)   # the child inherits the mask
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            intake.close()               # the child has its own copy of the socket
        self.intake_process = process

    def _intake_child(self, intake: Intake, listening: socket.socket, report_every: float) -> None:
        listening.close()           # the child never accepts HTTP connections
        try:
            os.nice(INTAKE_NICE)    # ahead of the machine's other work, where the process may
        except OSError:
            pass                    # not allowed: the intake stays at the server's niceness
        run_intake(intake, self.report, report_every)

    def _lower_priority(self) -> None:
        """After the intake is forked (it keeps its priority), before any other thread starts
        (threads inherit their creator's niceness on Linux): the HTTP side and the background
        threads yield the CPU to the receive loop, since a lost event is worse than a slower page."""
        if self.http_nice and self.intake_process is not None:
            try:
                os.nice(self.http_nice)
            except OSError as ex:
                self.report(f"warning: cannot lower the HTTP side's priority: {ex}")

    def _start_threads(self) -> None:
        config = self.config
        if config.ALERT_WEBHOOK_URL:
            alerts = Alerts(config, self.stopping)
            self.threads.append(threading.Thread(target=alerts.run, name="alerts", daemon=True))
        self.threads.append(threading.Thread(target=self._reaper, name="reaper", daemon=True))
        if config.USE_SERVER_UPDATE_TRAILS:
            self.threads.append(threading.Thread(target=self._updater, name="updater", daemon=True))
        for thread in self.threads:
            thread.start()

    # -- run and stop ----------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept and serve connections in the calling thread until a stop is requested."""
        assert self.httpd is not None, "start() first"
        with self.serving:
            self.httpd.serve_forever()

    def request_stop(self) -> None:
        """Ask everything to stop (returns at once; safe in a signal handler)."""
        self.stopping.set()
        if self.httpd is not None:
            self.httpd.shutdown()

    def stop(self) -> int:
        """Stop, wait for the threads, the HTTP workers and the intake process; the exit status.
        Not from a signal handler while serve_forever runs in the same thread (request_stop is)."""
        self.request_stop()
        if self.serving.acquire(timeout=JOIN_TIMEOUT):   # serve_forever has returned
            self.serving.release()
        if self.httpd is not None:
            self.httpd.join(HTTP_GRACE)
            self.report(self.httpd.summary())
        self.report(self.auth.summary())
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)
        process = self.intake_process
        if process is None:
            return 0
        if process.is_alive() and process.pid:
            os.kill(process.pid, signal.SIGTERM)
        process.join(INTAKE_JOIN_TIMEOUT)
        return 0 if process.exitcode in (0, None) else 1

    # -- background threads ----------------------------------------------------------------------

    def _reaper(self) -> None:
        """Every minute: expired sessions; every hour (and at start): LOG_RETENTION_DAYS."""
        minutes = 0
        while True:
            if minutes % 60 == 0:
                for path in prune_day_files(self.config.LOG_DIR, self.config.LOG_RETENTION_DAYS):
                    self.report(f"LOG_RETENTION_DAYS {self.config.LOG_RETENTION_DAYS}: removed {path}")
                self._prune_event_store()
            if self.stopping.wait(60):
                return
            minutes += 1
            self.auth.reap()

    def _prune_event_store(self) -> None:
        """LOG_RETENTION_DAYS in ClickHouse: whole day partitions (isolated: ClickHouse may be down)."""
        if self.clickhouse is None:
            return
        from core.server.clickhouse import StoreError

        try:
            for day in self.clickhouse.prune(self.config.LOG_RETENTION_DAYS):
                self.report(f"LOG_RETENTION_DAYS {self.config.LOG_RETENTION_DAYS}: dropped {day} from ClickHouse")
        except StoreError as ex:
            self.report(f"LOG_RETENTION_DAYS: ClickHouse not pruned this time: {ex}")

    def _updater(self) -> None:
        """USE_SERVER_UPDATE_TRAILS: refresh trails (and the geo table) so /trails and /check serve them."""
        from core.ops.deps import install_message, missing_for

        needed = missing_for("update")
        if needed:  # the server itself runs on the standard library; its trail refresh does not
            self.report("no trail updates in this run: " + install_message("USE_SERVER_UPDATE_TRAILS", needed))
            return
        from core.update.orchestrate import update

        while not self.stopping.is_set():
            try:
                update(self.config, scheduled=True)
            except Exception as ex:  # noqa: BLE001 - isolation point: one update run
                self.report(f"trail update failed: {ex}")
            self.stopping.wait(float(self.config.UPDATE_PERIOD))
