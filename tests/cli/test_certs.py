"""cellauto certs create: an OPC UA application certificate and key, never overwritten silently."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from tests.cli.conftest import Cli


def test_create_writes_a_certificate_naming_the_application(cli: Cli, tmp_path: Path) -> None:
    result = cli("certs", "create", tmp_path / "pki", "--name", "runner", "--usage", "client")
    assert result.code == 0, result.err
    der = tmp_path / "pki" / "runner.der"
    assert result.lines == [str(der), str(tmp_path / "pki" / "runner.key.pem")]
    cert = x509.load_der_x509_certificate(der.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "urn:cellauto:runner" in names.get_values_for_type(x509.UniformResourceIdentifier)
    again = cli("certs", "create", tmp_path / "pki", "--name", "runner")
    assert again.code == 2 and "exist" in again.err
    assert der.read_bytes() == cert.public_bytes(encoding=_der())


def _der():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def test_a_bad_name_is_refused(cli: Cli, tmp_path: Path) -> None:
    result = cli("certs", "create", tmp_path, "--name", "bad name")
    assert result.code == 2 and "common name" in result.err
    assert list(tmp_path.iterdir()) == []
