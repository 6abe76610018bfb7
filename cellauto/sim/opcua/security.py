"""Server security: certificates, a trust list, username/password, no anonymous.

:func:`create_certificates` makes a self-signed (CA-less) application certificate and
its key with asyncua's ``cert_gen``: ``<name>.der`` and ``<name>.key.pem`` (the key
readable by its owner only). :func:`trust` copies a certificate into a trust-list
folder. A server given a :class:`ServerSecurity` offers only Basic256Sha256
SignAndEncrypt (policy None is not offered), accepts only client certificates in its
trust list (``BadCertificateUntrusted`` otherwise; checked at CreateSession) and only
username/password identities it knows (``BadUserAccessDenied``); anonymous sessions
are refused (``BadIdentityTokenRejected``).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import shutil
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from asyncua import Server, ua
from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cellauto.instruments.opcua.security import application_uri_of

__all__ = ["CertificateFiles", "ServerSecurity", "apply_security", "create_certificates", "trust"]

log = logging.getLogger(__name__)

_USAGES = {
    "server": [ExtendedKeyUsageOID.SERVER_AUTH],
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


class CertificateFiles(BaseModel):
    """A certificate (DER), its private key (PEM) and the application URI it names."""

    model_config = ConfigDict(frozen=True)

    certificate: Path
    private_key: Path
    application_uri: str


def create_certificates(
    directory: Path,
    common_name: str,
    *,
    application_uri: str | None = None,
    hostnames: Sequence[str] = ("localhost",),
    usage: Literal["server", "client", "both"] = "both",
    days: int = 365,
    organization: str = "cellauto",
    overwrite: bool = False,
) -> CertificateFiles:
    """Write ``<common_name>.der`` and ``<common_name>.key.pem`` into ``directory``.

    The application URI defaults to ``urn:cellauto:<common_name>``; the certificate
    names it and ``hostnames`` (plus this host's name) as SubjectAltNames. Existing
    files are kept unless ``overwrite``: an error names them instead.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", common_name):
        raise ValueError(f"common name {common_name!r}: use letters, digits, '.', '_', '-'")
    if days < 1:
        raise ValueError(f"days {days} is below the limit 1")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{common_name}.der"
    key_path = directory / f"{common_name}.key.pem"
    existing = [str(p) for p in (cert_path, key_path) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist; pass overwrite=True to replace them")
    uri = application_uri or f"urn:cellauto:{common_name}"
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    for host in dict.fromkeys([*hostnames, socket.gethostname()]):
        names.append(x509.DNSName(host))
    key = generate_private_key()
    cert = generate_self_signed_app_certificate(
        key, common_name, {"organizationName": organization}, names, _USAGES[usage], days=days
    )
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(b"")
    os.chmod(key_path, 0o600)
    key_path.write_bytes(dump_private_key_as_pem(key))
    log.info("created certificate %s (%s) and key %s", cert_path, uri, key_path)
    return CertificateFiles(certificate=cert_path, private_key=key_path, application_uri=uri)


def trust(trust_dir: Path, certificate: Path) -> Path:
    """Copy ``certificate`` into the trust-list folder ``trust_dir``; returns the copy."""
    trust_dir = Path(trust_dir)
    trust_dir.mkdir(parents=True, exist_ok=True)
    target = trust_dir / Path(certificate).name
    shutil.copyfile(certificate, target)
    return target


class ServerSecurity(BaseModel):
    """Certificate, key, trust list and users of a secured simulated server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    certificate: Path
    private_key: Path
    trust_dir: Path = Field(description="folder of trusted client certificates (*.der, *.pem)")
    users: dict[str, SecretStr] = Field(min_length=1, description="user name -> password")


class _PasswordUsers(UserManager):
    def __init__(self, users: Mapping[str, SecretStr]) -> None:
        self._users = {name: pw.get_secret_value().encode() for name, pw in users.items()}

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        expected = self._users.get(username or "")
        given = (password or "").encode()
        if expected is None or not hmac.compare_digest(expected, given):
            log.warning("refused user %r: unknown user or wrong password", username)
            return None
        return User(role=UserRole.User, name=username)


async def apply_security(server: Server, security: ServerSecurity | None) -> str | None:
    """Configure ``server``; returns the application URI its certificate names, if any.

    ``None``: no security and anonymous sessions (simulators on loopback only).
    """
    if security is None:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        return None
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    server.set_identity_tokens([ua.UserNameIdentityToken])
    server.iserver.user_manager = _PasswordUsers(security.users)
    await server.load_certificate(str(security.certificate))
    await server.load_private_key(str(security.private_key))
    store = TrustStore([Path(security.trust_dir)], [])
    await store.load()
    options = (
        CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
    )
    server.set_certificate_validator(CertificateValidator(options, store))
    return application_uri_of(security.certificate)
