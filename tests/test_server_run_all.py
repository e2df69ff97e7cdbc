"""tools/run_all.py starts the server beside the sensor, prints the URL and login, stops both."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.test_server_support import PYTHON, ROOT, free_port, sha


def test_run_all_with_an_offline_replay(tmp_path):
    pcap = os.path.join(ROOT, "tests", "data", "conformance", "dns_queries.pcap")
    trails = os.path.join(ROOT, "tests", "data", "conformance", "trails.csv")
    shutil.copy(trails, tmp_path / "trails.csv")
    port = free_port()
    conf = tmp_path / "run.conf"
    conf.write_text(f"HTTP_ADDRESS 127.0.0.1\nHTTP_PORT {port}\nLOG_DIR {tmp_path / 'logs'}\n"
                    f"TRAILS_FILE {tmp_path / 'trails.csv'}\nUSERS\n    admin:{sha('changeme!')}:0:\n")
    result = subprocess.run([PYTHON, os.path.join(ROOT, "tools", "run_all.py"), "-c", str(conf),
                             "--offline", "-r", pcap], capture_output=True, text=True, timeout=120, cwd=ROOT)
    out = result.stdout + result.stderr
    assert f"http://127.0.0.1:{port}/" in out
    assert "admin / changeme!" in out and "default password" in out
    assert "listening on" in out
    # both processes are gone: the port is free again
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_first_start_builds_missing_trails_from_the_bundled_lists(tmp_path):
    """core/update/firstrun.py (run_all and the container's sensor): no trails file -> one is built."""
    from core.config import load_config
    from core.update.firstrun import build_missing_trails

    trails = tmp_path / "state" / "trails.csv"
    conf = tmp_path / "maltrail.conf"
    conf.write_text(f"TRAILS_FILE {trails}\n")
    config = load_config(str(conf))
    said: list[str] = []
    build_missing_trails(config, ["-c", str(conf)], True, said.append)
    assert said == ["maltrail: building the trails from the bundled lists only (offline)"]
    rows = trails.read_text().splitlines()
    assert len(rows) > 1000 and any(row.startswith("iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com,") for row in rows)
    said.clear()
    build_missing_trails(config, ["-c", str(conf)], False, said.append)  # present: nothing to do
    assert said == []
