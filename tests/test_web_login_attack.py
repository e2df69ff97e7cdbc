"""The console's login while strangers keep the account locked, in the real browser against the real
server.py: wrong passwords from ever new loopback addresses hold the admin account and the global
failure budget at their longest lock; a browser that never logged in (no cookie) on an address that
never logged in types the right password once and is in after a proof of work (html/js/work.js,
core/server/auth.py "Proof of work"). Before it, that user was refused for as long as the attack
went on."""

from __future__ import annotations

import tempfile
import time
import urllib.parse

from tests.kit.logins import addresses, failing_neighbour
from tests.web import gen_day
from tests.web.harness import PASSWORD, browser_page, wait_loaded


def wrong(n: int) -> str:
    return urllib.parse.urlencode({"username": "admin", "password": f"wrong-{n}"})


def test_a_new_browser_logs_in_while_strangers_keep_the_account_locked():
    log_dir = tempfile.mkdtemp(prefix="mt-web-login-attack-")
    today = time.strftime("%Y-%m-%d")
    gen_day.write_day(log_dir, today, gen_day.day_lines(today, 200, seed=11))
    strangers = addresses(50_000, first=6 << 16)
    # console_errors off: the browser logs each expected 429 as a failed resource; page errors still count
    with browser_page(log_dir, password=PASSWORD, console_errors=False) as (page, server, errors, _dialogs):
        with failing_neighbour(server, wrong, lambda n: strangers[n % len(strangers)], threads=2) as attacker:
            page.goto(server.url)
            page.wait_for_selector("#login:not([hidden])")
            page.fill("#login-user", "admin")
            page.fill("#login-pass", PASSWORD)
            page.click("#login-submit")
            page.wait_for_selector("#login", state="hidden", timeout=180_000)   # a proof at this machine's speed
            wait_loaded(page)
            refused = attacker.count(429)
    summary = [line for line in server.stderr.splitlines() if "login:" in line]   # the exit lines
    assert refused > 0, "the strangers never had the account locked"
    assert not errors, errors
    assert summary and "login_work=1" in summary[-1], summary    # in through one proof of work
