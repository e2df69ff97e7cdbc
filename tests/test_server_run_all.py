"""tools/run_all.py starts the server beside the sensor, prints the URL and login, stops both."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.kit.server import PYTHON, ROOT, free_port, sha


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
