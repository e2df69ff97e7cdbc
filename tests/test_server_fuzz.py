"""schemathesis fuzzes the API described in docs/openapi.yaml against a real server.py:
no 5xx and no traceback anywhere (bodies never carry one; the server log must not either)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.kit.server import ROOT, Server, event_line

SCHEMATHESIS = os.path.join(ROOT, ".venv", "bin", "schemathesis")


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(tmp_path):
    if not os.path.exists(SCHEMATHESIS) and not shutil.which("schemathesis"):
        pytest.skip("schemathesis is not installed (requirements-dev.txt)")
    tmp = str(tmp_path)
    srv = Server(tmp, extra="FAIL2BAN_REGEX attacker\nFAIL2BAN_ALLOWLIST 127.0.0.1\nBLACKLIST\n    trail ~ .\n"
                            "BLACKLIST_WEB\n    type ~ URL\n")
    with open(os.path.join(tmp, "trails.csv"), "w") as handle:
        handle.write("evil.com,malware,(custom)\n1.2.3.4,attacker,example\n")
    srv.write_events([event_line(time.time()), event_line(time.time(), kind="URL", trail="evil.com/x")])
    with srv:
        cookie = srv.login()
        assert cookie
        result = subprocess.run(
            [SCHEMATHESIS if os.path.exists(SCHEMATHESIS) else "schemathesis", "run",
             os.path.join(ROOT, "docs", "openapi.yaml"), "--url", f"http://127.0.0.1:{srv.port}",
             "-c", "not_a_server_error", "-n", "50", "--request-timeout", "5",
             "--exclude-path", "/logout", "--exclude-path", "/live", "--seed", "1",
             "-H", f"Cookie: maltrail_sessid={cookie}"],
            capture_output=True, text=True, timeout=300, cwd=tmp)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert srv.get("/ping") == (200, b"pong")
    assert "Traceback" not in srv.stderr
