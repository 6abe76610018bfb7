"""Sessions (§11.200): one process's continuous, attended use by one person.

A :class:`Session` lives in memory only (no token ever reaches the disk). Its person
signs with the password alone while it is open; anyone else, and its person after
``session_idle_min`` without use (or after ``lock``), signs with name and password.
Every other command is a session of exactly one signing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["Session"]


class Session:
    """One person's attended session in this process."""

    def __init__(
        self,
        account: str,
        *,
        opened_wall_ns: int,
        idle_min: float,
        monotonic: Callable[[], float] = time.monotonic,
        session_id: str | None = None,
    ) -> None:
        self.id = session_id or secrets.token_hex(8)
        self.account = account
        self.opened_wall_ns = opened_wall_ns
        self.idle_s = idle_min * 60.0
        self._monotonic = monotonic
        self.last_use_monotonic = monotonic()
        self.closed: Literal["exit", "idle", "lock"] | None = None

    def idle(self) -> bool:
        """True when the session went unused longer than the policy allows."""
        return self._monotonic() - self.last_use_monotonic > self.idle_s

    def touch(self) -> None:
        """The person used the session (input at the console)."""
        if self.closed is None and self.idle():
            self.closed = "idle"
        if self.closed is None:
            self.last_use_monotonic = self._monotonic()

    def close(self, cause: Literal["exit", "idle", "lock"]) -> None:
        if self.closed is None:
            self.closed = cause

    def sign_components(self, name: str) -> Literal["user_id+password", "password"]:
        """What ``name`` must give to sign in this session now."""
        if self.closed is None and self.idle():
            self.closed = "idle"
        if name == self.account and self.closed is None:
            return "password"
        return "user_id+password"
