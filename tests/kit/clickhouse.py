"""A real ClickHouse server for tests and benches: Debian's clickhouse-server started on 127.0.0.1
with its own configuration, data folder and free ports (never the system service), stopped (or
killed, for fault tests) and restarted on the same data.

Where it sits: test/bench scaffolding only (tests/test_clickhouse*.py, bench/bench_clickhouse.py).
`require_clickhouse()` skips the calling module with the reason when the binary is missing
(`apt-get install clickhouse-server clickhouse-client`, setup.sh test installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from tests.kit.ports import free_port

BINARY = os.environ.get("MALTRAIL_CLICKHOUSE", "/usr/sbin/clickhouse-server")

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{folder}/server.log</log><errorlog>{folder}/server.err.log</errorlog>
    <size>10M</size><count>1</count></logger>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{folder}/data/</path>
  <tmp_path>{folder}/tmp/</tmp_path>
  <user_files_path>{folder}/user_files/</user_files_path>
  <format_schema_path>{folder}/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <remote_servers>{clusters}</remote_servers>
</yandex>
"""
USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile>
      <quota>default</quota></default>
    <maltrail><password>{password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile>
      <quota>default</quota></maltrail>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""
PASSWORD = "ch-secret"


def require_clickhouse() -> None:
    import pytest

    if not os.access(BINARY, os.X_OK):
        pytest.skip(f"ClickHouse is not installed ({BINARY} missing: apt-get install clickhouse-server)",
                    allow_module_level=True)


class ClickHouseServer:
    """One clickhouse-server process on loopback; `url(database)` is an EVENT_STORE value."""

    def __init__(self, clusters: str = "") -> None:
        self.folder = tempfile.mkdtemp(prefix="mt-clickhouse-")
        self.http_port = free_port()
        self.tcp_port = free_port()
        for sub in ("data", "tmp", "user_files", "format_schemas"):
            os.makedirs(os.path.join(self.folder, sub))
        self.write_config(clusters)
        with open(os.path.join(self.folder, "users.xml"), "w") as handle:
            handle.write(USERS.format(password=PASSWORD))
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, clusters: str = "") -> None:
        """config.xml for the ports now set; `clusters`: the <remote_servers> entries."""
        with open(os.path.join(self.folder, "config.xml"), "w") as handle:
            handle.write(CONFIG.format(folder=self.folder, http_port=self.http_port, tcp_port=self.tcp_port,
                                       clusters=clusters))

    def url(self, database: str = "maltrail") -> str:
        return f"http://maltrail:{PASSWORD}@127.0.0.1:{self.http_port}/{database}"

    def start(self, timeout: float = 60.0) -> ClickHouseServer:
        out = open(os.path.join(self.folder, "stdout.txt"), "ab")
        self.proc = subprocess.Popen([BINARY, f"--config-file={self.folder}/config.xml"], cwd=self.folder,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("clickhouse-server exited: " + self.log())
            try:
                if self.query("SELECT 1").strip() == b"1":
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("clickhouse-server did not answer: " + self.log())

    def query(self, sql: str, timeout: float = 30.0) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/", data=sql.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())

    def log(self) -> str:
        text = ""
        for name in ("stdout.txt", "server.err.log"):
            try:
                with open(os.path.join(self.folder, name), errors="replace") as handle:
                    text += handle.read()[-3000:]
            except OSError:
                pass
        return text

    def kill(self) -> None:
        """SIGKILL: ClickHouse gone at once (fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
