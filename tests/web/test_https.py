"""``cellauto serve --cert --key``: HTTPS with the site's certificate; the session cookie
is then ``__Host-`` prefixed and ``Secure``, and every response carries HSTS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.site.conftest import own_password
from tests.web.harness import REPO


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_https_serves_with_secure_host_cookies_and_hsts(journal: Path, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    args = ["serve", "--db", str(journal), "--port", "0", "--cert", str(cert), "--key", str(key)]
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        assert line.startswith("serving https://127.0.0.1:"), line
        url = line.split(" ", 1)[1]
        with httpx.Client(
            base_url=url, verify=ssl.create_default_context(cafile=str(cert))
        ) as client:
            page = client.get("/login")
            assert page.status_code == 200 and "not using HTTPS" not in page.text
            assert page.headers["strict-transport-security"] == "max-age=31536000"
            token = page.text.split('name="csrf_login" value="', 1)[1].split('"', 1)[0]
            form = {"csrf_login": token, "name": "ann", "password": own_password("ann")}
            signed = client.post("/login", data=form, headers={"origin": url})
            assert signed.status_code == 303
            cookie = signed.headers["set-cookie"]
            assert cookie.startswith("__Host-cellauto-session-")
            assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
            assert "Domain" not in cookie
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_a_key_others_may_read_is_refused(journal: Path, tmp_path: Path, capsys: object) -> None:
    from cellauto.cli import main

    cert, key = _self_signed(tmp_path)
    key.chmod(0o644)
    args = ["serve", "--db", str(journal), "--port", "0", "--cert", str(cert), "--key", str(key)]
    assert main(args) == 2
    assert f"{key} may be read by other accounts" in capsys.readouterr().err  # type: ignore[attr-defined]
