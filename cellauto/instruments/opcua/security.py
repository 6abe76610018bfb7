"""Client security options: Basic256Sha256 SignAndEncrypt, a certificate, a user.

``security="Basic256Sha256"`` needs the client's certificate (DER or PEM) and private
key (PEM); the server's certificate pins the server (without it the client asks the
server for its endpoints first, one extra connection, and trusts what it gets). The
client's application URI is read from its certificate (the server checks that they
match). ``security="none"`` is for simulators on the loopback interface only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["ClientSecurity", "application_uri_of"]


def application_uri_of(certificate: Path) -> str:
    """The application URI (SubjectAltName URI) of a DER or PEM certificate."""
    data = Path(certificate).read_bytes()
    cert = (
        x509.load_pem_x509_certificate(data)
        if data.lstrip().startswith(b"-----")
        else x509.load_der_x509_certificate(data)
    )
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier) if names else []
    if not uris:
        raise ValueError(f"certificate {certificate} has no application URI (SubjectAltName URI)")
    return uris[0]


class ClientSecurity(BaseModel):
    """How an adapter authenticates to an OPC UA server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    security: Literal["none", "Basic256Sha256"] = Field(
        "none", description="'Basic256Sha256' (SignAndEncrypt) or 'none' (loopback simulators)"
    )
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None
    user: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _complete(self) -> ClientSecurity:
        if self.security != "none" and (self.certificate is None or self.private_key is None):
            raise ValueError(f"security {self.security!r} needs certificate= and private_key=")
        for name in ("certificate", "private_key", "server_certificate"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} {path} is not a file")
        if (self.user is None) != (self.password is None):
            raise ValueError("give both user= and password=, or neither (anonymous)")
        return self
