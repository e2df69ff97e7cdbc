"""Starts the real server.py on 127.0.0.1 with a temporary config for browser tests and benches,
and launches Debian's chromium through Playwright with the project's fixed flags.

Where it sits: test/bench scaffolding only (tests/test_web_*.py, bench/bench_web.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from tests.kit.server import Server as KitServer
from tests.kit.server import sha

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = os.environ.get("MALTRAIL_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.path.join(ROOT, "artifacts", "screenshots")  # screenshots of the main views (git-ignored)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "s3cret-Pass"


class Server(KitServer):
    """The suite's one server harness (tests/kit/server.py) serving the repository's html/ over
    `log_dir`, with one admin account whose password is `password`; `url` is its address. With
    `udp` it also takes sensors' events on `udp_port` (live-mode tests); `root`: another tree's
    server.py (tests/kit/server.py `tree_copy`)."""

    def __init__(self, log_dir: str, password: str = PASSWORD, extra: dict[str, str] | None = None,
                 udp: bool = False, root: str | None = None) -> None:
        lines = ["DISABLE_CHECK_SUDO true", *(f"{k} {v}" for k, v in (extra or {}).items())]
        super().__init__(tempfile.mkdtemp(prefix="mt-web-"), users=[f"admin:{sha(password)}:0:"],
                         extra="\n".join(lines), udp=udp, log_dir=log_dir, html_root=os.path.join(ROOT, "html"),
                         root=root)
        self.url = f"http://127.0.0.1:{self.port}/"

    def stop(self) -> str:
        try:
            return super().stop() if self.proc is not None else ""
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


@contextmanager
def running_server(log_dir: str, **kw: object) -> Iterator[Server]:
    server = Server(log_dir, **kw)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def launch_browser(playwright, user_data_dir: str):  # type: ignore[no-untyped-def]
    """A persistent headless chromium context with an empty profile (the required flags)."""
    return playwright.chromium.launch_persistent_context(
        user_data_dir, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1440, "height": 900}, accept_downloads=True)


def watch_page(page, server_url: str, console_errors: bool = True) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    """Collect page errors (and console errors), requests to any other host, and dismissed
    dialogs: the tests assert these lists stay empty."""
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    if console_errors:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: errors.append("foreign request " + r.url)
            if not r.url.startswith(server_url) and not r.url.startswith(("blob:", "data:")) else None)
    return errors, dialogs


def require_browser():  # type: ignore[no-untyped-def]
    """Playwright's sync API, or skip the calling test module when Playwright or chromium is missing."""
    import pytest

    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"chromium not installed at {CHROMIUM}", allow_module_level=True)
    return sync_api


@contextmanager
def browser_page(log_dir: str, *, cleanup: tuple[str, ...] = (), console_errors: bool = True,
                 **server_kw: object) -> Iterator[tuple[object, Server, list[str], list[str]]]:
    """The real server.py over `log_dir` and a fresh headless chromium page watching it:
    (page, server, errors, dialogs). On exit the browser, the server and the folders (`log_dir`, the
    profile and `cleanup`) go away."""
    sync_api = require_browser()
    server = Server(log_dir, **server_kw)  # type: ignore[arg-type]
    server.start()
    os.makedirs(SHOTS, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="mt-web-profile-")
    try:
        with sync_api.sync_playwright() as p:
            ctx = launch_browser(p, profile)
            page = ctx.new_page()
            errors, dialogs = watch_page(page, server.url, console_errors=console_errors)
            try:
                yield page, server, errors, dialogs
            finally:
                ctx.close()
    finally:
        server.stop()
        for folder in (log_dir, profile, *cleanup):
            shutil.rmtree(folder, ignore_errors=True)


def login(page, password: str = PASSWORD) -> None:  # type: ignore[no-untyped-def]
    """Open the console, log in as admin through the form, wait for the day to load."""
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#login-user", "admin")
    page.fill("#login-pass", password)
    page.click("#login-submit")
    page.wait_for_selector("#login", state="hidden")
    wait_loaded(page)


# --- page helpers shared by the browser tests --------------------------------------------------------

def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=os.path.join(SHOTS, name + ".png"))


def view_seq(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.evaluate("+document.body.dataset.viewSeq || 0"))


def load_seq(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.evaluate("+document.body.dataset.loadSeq || 0"))


def wait_loaded(page, timeout: int = 30000) -> None:  # type: ignore[no-untyped-def]
    """The day is loaded and the worker idle."""
    page.wait_for_function("() => document.body.dataset.ready === 'done' && document.body.dataset.busy === '0'",
                           timeout=timeout)


def wait_new_load(page, seq: int) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("(s) => +document.body.dataset.loadSeq > s", arg=seq, timeout=5000)
    wait_loaded(page)


def load_hash(page, fragment: str) -> None:  # type: ignore[no-untyped-def]
    seq = load_seq(page)
    page.evaluate("(h) => { location.hash = h; }", fragment)
    wait_new_load(page, seq)


def search(page, q: str) -> int:  # type: ignore[no-untyped-def]
    """Type a query, press Enter, wait for the new view and its painted rows (the grid drops its
    rows with a new view and paints the new ones when they come); the grid's row count."""
    seq = view_seq(page)
    page.fill("#q", q)
    page.press("#q", "Enter")
    page.wait_for_function(
        "([q, seq]) => window.maltrail.state.q === q && +document.body.dataset.viewSeq > seq"
        " && document.body.dataset.busy === '0'"
        " && (window.maltrail.grid.count === 0 || window.maltrail.grid.rows.size > 0)", arg=[q, seq], timeout=10000)
    return int(page.evaluate("window.maltrail.grid.count"))

