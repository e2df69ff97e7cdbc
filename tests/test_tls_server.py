"""server.py with USE_SSL: a self-signed PEM generated here (cryptography), login over HTTPS with a
Secure cookie, one-line errors and exit status 2 for unusable PEM files, and the thread cap
answering 503 through TLS (not a bare close) while live streams hold every request thread."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.kit.server import PYTHON, ROOT, Server, free_port


def make_pem(path: str, key_too: bool = True, other_key: bool = False) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "maltrail-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    if other_key:
        key = ec.generate_private_key(ec.SECP256R1())
    data = cert.public_bytes(serialization.Encoding.PEM)
    if key_too:
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()) + data
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_login_over_https_sets_a_secure_cookie(tmp_path):
    pem = make_pem(str(tmp_path / "server.pem"))
    with Server(str(tmp_path), extra=f"USE_SSL true\nSSL_PEM {pem}\n", tls=True) as srv:
        assert "listening on https://" in srv.read_err()
        status, headers, _ = srv.request("POST", "/login", "username=admin&password=changeme%21")
        assert status == 200
        cookie = headers["set-cookie"]
        assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        sid = cookie.split("maltrail_sessid=", 1)[1].split(";", 1)[0]
        assert srv.get("/whoami", cookie=sid) == (200, b"admin")
        assert srv.get("/events", cookie=sid)[0] == 200
        # plain HTTP to the TLS port gets no HTTP answer
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = sock.recv(4096)
            except (ConnectionResetError, TimeoutError):
                answer = b""
            assert b"pong" not in answer
        assert srv.get("/ping") == (200, b"pong")
    assert "Traceback" not in srv.stderr


def _bad_pems(tmp: str) -> dict[str, str]:
    garbage = os.path.join(tmp, "garbage.pem")
    with open(garbage, "w") as handle:
        handle.write("-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n"
                     "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    directory = os.path.join(tmp, "adir.pem")
    os.makedirs(directory)
    return {"missing": os.path.join(tmp, "nope.pem"), "directory": directory, "garbage": garbage,
            "cert only": make_pem(os.path.join(tmp, "certonly.pem"), key_too=False),
            "wrong key": make_pem(os.path.join(tmp, "wrongkey.pem"), other_key=True)}


def test_unusable_pem_is_one_clear_line_and_exit_2(tmp_path):
    tmp = str(tmp_path)
    for label, pem in _bad_pems(tmp).items():
        conf = os.path.join(tmp, f"{label.replace(' ', '_')}.conf")
        with open(conf, "w") as handle:
            handle.write(f"HTTP_ADDRESS 127.0.0.1\nHTTP_PORT {free_port()}\nLOG_DIR {tmp}/logs\n"
                         f"USE_SSL true\nSSL_PEM {pem}\n")
        result = subprocess.run([PYTHON, os.path.join(ROOT, "server.py"), "-c", conf], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, (label, result.stderr)
        assert len(lines) == 1 and "SSL_PEM" in lines[0] and "openssl req" in lines[0], (label, result.stderr)
        assert "Traceback" not in result.stderr


def test_thread_cap_answers_503_through_tls(tmp_path):
    pem = make_pem(str(tmp_path / "server.pem"))
    extra = f"USE_SSL true\nSSL_PEM {pem}\nMAX_REQUEST_THREADS 2\nREQUEST_TIMEOUT 20\n"
    with Server(str(tmp_path), extra=extra, tls=True, udp=False) as srv:
        status, headers, _ = srv.request("POST", "/login", "username=admin&password=changeme%21")
        sid = headers["set-cookie"].split("maltrail_sessid=", 1)[1].split(";", 1)[0]
        holders = []
        try:
            for _ in range(2):      # a live stream holds its request thread as long as it is open
                raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                holders.append(client_context().wrap_socket(raw))
                holders[-1].sendall(f"GET /live HTTP/1.1\r\nHost: x\r\nCookie: maltrail_sessid={sid}\r\n\r\n"
                                    .encode())
                assert holders[-1].recv(100).startswith(b"HTTP/1.1 200")
            for _ in range(3):
                status, headers, _ = srv.request("GET", "/ping")
                assert status == 503 and headers.get("retry-after") == "1"
        finally:
            for sock in holders:
                sock.close()
        deadline = time.time() + 5
        while srv.get("/ping")[0] != 200:
            assert time.time() < deadline
            time.sleep(0.1)
    assert "Traceback" not in srv.stderr


@pytest.mark.parametrize("soft", [256])
def test_open_file_limit_is_raised_to_the_hard_limit(tmp_path, soft):
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= soft:
        pytest.skip("hard RLIMIT_NOFILE too low to observe a raise")
    srv = Server(str(tmp_path), udp=False,
                 preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    with srv:
        assert srv.proc is not None
        limits = open(f"/proc/{srv.proc.pid}/limits").read()
        row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert row.split()[3:5] == [str(hard), str(hard)], row
