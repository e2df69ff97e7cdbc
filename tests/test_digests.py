"""core/digests.py: CPython's own hash modules give what hashlib and hmac give, and a sensor that
neither signs its datagrams nor decrypts QUIC never loads OpenSSL (about 3.5 MiB resident)."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import subprocess

from core.digests import hmac_sha256, md5, sha1, sha256
from tests.kit.pcapgen import write_pcap
from tests.kit.server import PYTHON, ROOT


def test_digests_equal_hashlibs():
    rnd = random.Random(5)
    for size in (0, 1, 55, 56, 63, 64, 65, 127, 128, 1000):
        data = rnd.randbytes(size)
        assert md5(data, usedforsecurity=False).hexdigest() == hashlib.md5(data).hexdigest()
        assert sha1(data, usedforsecurity=False).hexdigest() == hashlib.sha1(data).hexdigest()
        assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()


def test_hmac_sha256_equals_hmac_for_every_key_length():
    rnd = random.Random(6)
    for key_size in (0, 1, 20, 32, 63, 64, 65, 100, 131):
        key = rnd.randbytes(key_size)
        for msg_size in (0, 1, 64, 200):
            msg = rnd.randbytes(msg_size)
            assert hmac_sha256(key, msg) == hmac.digest(key, msg, "sha256")
    # RFC 4231 test case 2
    assert hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == \
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_a_sensor_replaying_a_capture_loads_no_openssl(tmp_path):
    pcap = str(tmp_path / "empty.pcap")
    write_pcap(pcap, [])
    trails = tmp_path / "trails.csv"
    trails.write_text("66.66.66.66,malware (test),(static)\n")
    env = dict(os.environ, MALTRAIL_TRAILS_FILE=str(trails), MALTRAIL_LOG_DIR=str(tmp_path / "logs"),
               MALTRAIL_DISABLE_TRAIL_UPDATES="true", MALTRAIL_USE_HEURISTICS="true")
    result = subprocess.run([PYTHON, "-X", "importtime", os.path.join(ROOT, "sensor.py"), "--offline", "-r", pcap],
                            capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "core.protocols.quic" in loaded and "core.events.signing" in loaded     # the modules that hash
    assert not {"_hashlib", "_ssl", "hmac"} & loaded, sorted({"_hashlib", "_ssl", "hmac"} & loaded)
