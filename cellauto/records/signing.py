"""The journal's Ed25519 signing key: where it lives, creating it, signing, checking.

The private key is a PEM (PKCS #8) file kept *outside* the journal, mode 0600. Its
path is, in order: the ``signing_key`` given to :class:`~cellauto.records.Journal`,
the ``CELLAUTO_SIGNING_KEY`` environment variable, or
``$XDG_CONFIG_HOME/cellauto/signing.key`` (``~/.config/cellauto/signing.key``).
It is created on first use; its public half is written beside it as ``<key>.pub``
(PEM), which is where ``cellauto verify`` looks for the key it trusts.

``cryptography`` is imported inside the functions that need it, so that importing
the journal (and starting ``cellauto verify``) stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cellauto.errors import SigningKeyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from cellauto.records.backend import Location

__all__ = [
    "KEY_ENV",
    "PublicKey",
    "Signer",
    "default_key_path",
    "load_public_key",
    "public_key_path",
    "signer_for_journal",
]

_log = logging.getLogger(__name__)

KEY_ENV = "CELLAUTO_SIGNING_KEY"
"""Environment variable naming the private key file."""


def default_key_path() -> Path:
    """``$CELLAUTO_SIGNING_KEY``, else the user's configuration folder."""
    named = os.environ.get(KEY_ENV)
    if named:
        return Path(named).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "cellauto" / "signing.key"


def public_key_path(key_path: Path) -> Path:
    """Where the public half of the key at ``key_path`` is written (``<key>.pub``)."""
    return key_path.with_name(key_path.name + ".pub")


class PublicKey:
    """An Ed25519 public key that checks signatures; ``hex`` is its raw 32 bytes."""

    def __init__(self, raw: bytes, source: str) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        self._key: Ed25519PublicKey = Ed25519PublicKey.from_public_bytes(raw)
        self.hex = raw.hex()
        self.source = source
        """Where the key came from, for messages (a file path, or the journal)."""

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of sha256 of the raw key: short enough to compare by eye."""
        return hashlib.sha256(bytes.fromhex(self.hex)).hexdigest()[:16]

    def verifies(self, signature_hex: object, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        if not isinstance(signature_hex, str):
            return False
        try:
            self._key.verify(bytes.fromhex(signature_hex), message)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def from_hex(cls, text: str, source: str) -> PublicKey:
        try:
            return cls(bytes.fromhex(text), source)
        except ValueError as exc:
            raise SigningKeyError(f"{source}: not an Ed25519 public key ({exc})") from exc


def load_public_key(path: Path) -> PublicKey:
    """Read a PEM public key file (a ``.pub`` written beside a signing key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningKeyError(
            f"cannot read public key {path}: {exc}; give the .pub file written beside the "
            "journal's signing key"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"public key {path} is not an Ed25519 key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey(raw, str(path))


class Signer:
    """The private key that signs a journal's ledger; load it with :meth:`load_or_create`."""

    def __init__(self, key: Ed25519PrivateKey, path: Path | None) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = key
        self.path = path
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = PublicKey(raw, str(path) if path else "the signer")

    def sign(self, message: bytes) -> str:
        """The hex Ed25519 signature of ``message``."""
        return self._key.sign(message).hex()

    @classmethod
    def generate(cls) -> Signer:
        """A fresh key kept only in memory (tests, throw-away journals)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate(), None)

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> Signer:
        """Load the key at ``path`` (default :func:`default_key_path`), creating it if absent."""
        path = default_key_path() if path is None else Path(path)
        if not path.exists():
            _create(path)
        signer = cls(_read_private(path), path)
        pub = public_key_path(path)
        if not pub.exists():
            _write_new(pub, _public_pem(signer), mode=0o644)
        return signer


def _read_private(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"cannot read the journal signing key {path}: {exc}; point {KEY_ENV} at the "
            "key that signs this journal (or remove a broken file to create a new key)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path} is not an Ed25519 private key")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _log.warning("signing key %s is readable by others (mode %o): chmod 600 it", path, mode)
    return key


def _public_pem(signer: Signer) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return signer._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _create(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SigningKeyError(
            f"cannot create the folder of the journal signing key {path}: {exc}; "
            f"set {KEY_ENV} to a writable path"
        ) from exc
    if _write_new(path, pem, mode=0o600):
        _write_new(public_key_path(path), _public_pem(Signer(key, path)), mode=0o644)
        _log.warning(  # once per key, and something its owner must act on
            "created a new journal signing key %s (public half %s): keep the key readable "
            "only by the account that runs the line, and a copy of the public half where "
            "the journal's verifiers can find it (cellauto verify --public-key)",
            path,
            public_key_path(path),
        )


def _write_new(path: Path, data: bytes, *, mode: int) -> bool:
    """Write ``data`` to ``path`` atomically unless it exists; False if another won the race."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise SigningKeyError(
            f"cannot write {path}: {exc}; set {KEY_ENV} to a writable path"
        ) from exc
    return True


def signer_for_journal(
    journal: Path | Location, key: Signer | str | os.PathLike[str] | None, stored_hex: str | None
) -> Signer:
    """The signer that may write to ``journal``, whose stored public key is ``stored_hex``.

    ``key``: a Signer, a key path, or None for :func:`default_key_path`. A journal signed
    by another key is refused, and no key is created for a journal that would refuse it.
    """
    signs_it = (
        "" if stored_hex is None else PublicKey.from_hex(stored_hex, str(journal)).fingerprint
    )
    if not isinstance(key, Signer):
        path = default_key_path() if key is None else Path(key)
        if stored_hex is not None and not path.exists():  # never make a key it would refuse
            raise SigningKeyError(
                f"journal {journal} is signed by the key with fingerprint {signs_it}, "
                f"and there is no signing key at {path}; point CELLAUTO_SIGNING_KEY at "
                "that key, or start a new journal"
            )
        key = Signer.load_or_create(path)
    if stored_hex is not None and stored_hex != key.public.hex:
        raise SigningKeyError(
            f"journal {journal} is signed by the key with fingerprint {signs_it}, not "
            f"by {key.public.source} (fingerprint {key.public.fingerprint}); write "
            "to it with the key that signs it (CELLAUTO_SIGNING_KEY), or start a new "
            "journal"
        )
    return key
