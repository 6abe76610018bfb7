"""Password hashing (argon2id at the site policy's cost) and the new-password rules.

The argon2 string of a password lives only in the ``credentials`` table; the site chain
holds its SHA-256 :func:`commitment`. The rules follow NIST SP 800-63B: a minimum length,
no composition rules, no password that contains the user's name, is one repeated
character, or is one of the account's last ``password_history`` passwords.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import Literal

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cellauto.errors import JournalError
from cellauto.records.site_payloads import Argon2Params, SitePolicy

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "Hasher",
    "PasswordCause",
    "check_new_password",
    "commitment",
    "describe_cause",
]

MAX_PASSWORD_LENGTH = 128
MIN_NAME_WORD = 3
"""Words of a full name shorter than this are not looked for in passwords."""

PasswordCause = Literal[
    "too_short", "too_long", "contains_name", "repeated_character", "in_history"
]


class Hasher:
    """argon2id with the site policy's parameters."""

    def __init__(self, params: Argon2Params) -> None:
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=params.hash_len,
            salt_len=params.salt_len,
            type=Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, argon2_string: str, password: str) -> bool:
        """True when ``password`` is the one ``argon2_string`` was made from."""
        try:
            return self._hasher.verify(argon2_string, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError) as exc:
            raise JournalError(
                f"a stored password hash cannot be used ({type(exc).__name__}); "
                "run `cellauto verify`; an administrator can reset the password"
            ) from exc

    def needs_rehash(self, argon2_string: str) -> bool:
        """True when the hash was made with other parameters than the policy's."""
        try:
            return self._hasher.check_needs_rehash(argon2_string)
        except InvalidHashError:
            return True

    def dummy_verify(self, password: str) -> None:
        """Spend what a verify costs, for a user name that does not exist."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self.verify(self._dummy, password)


def commitment(argon2_string: str) -> str:
    """What the site chain holds of a password: the SHA-256 of its argon2 string."""
    return hashlib.sha256(argon2_string.encode("utf-8")).hexdigest()


def check_new_password(
    policy: SitePolicy,
    name: str,
    full_name: str,
    password: str,
    history: Sequence[str],
    hasher: Hasher,
) -> PasswordCause | None:
    """Why ``password`` may not be the account's new password, or None when it may.

    ``history`` holds the argon2 strings of the account's recent passwords, newest
    first; the last ``policy.password_history`` of them are compared."""
    if len(password) < policy.min_password_length:
        return "too_short"
    if len(password) > MAX_PASSWORD_LENGTH:
        return "too_long"
    folded = password.casefold()
    words = [w for w in re.split(r"[\W_]+", full_name.casefold()) if len(w) >= MIN_NAME_WORD]
    if name.casefold() in folded or any(word in folded for word in words):
        return "contains_name"
    if len(set(password)) == 1:
        return "repeated_character"
    if any(hasher.verify(old, password) for old in history[: policy.password_history]):
        return "in_history"
    return None


def describe_cause(cause: PasswordCause, policy: SitePolicy) -> str:
    """The refusal as a person reads it (never containing the password)."""
    return {
        "too_short": f"the password is shorter than {policy.min_password_length} characters",
        "too_long": f"the password is longer than {MAX_PASSWORD_LENGTH} characters",
        "contains_name": "the password contains the user name or a word of the full name",
        "repeated_character": "the password is one character repeated",
        "in_history": (
            f"the password is one of the account's last {policy.password_history} passwords"
        ),
    }[cause]
