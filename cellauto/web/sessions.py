"""The web app's sessions: in this server's memory only, journaled when opened and closed.

A session is the site's :class:`~cellauto.site.sessions.Session` of one person (its id is
journaled in ``session_opened`` and in every signature made in it) plus what the web needs:
the secret token the browser holds in its cookie (only its SHA-256 is kept here), the
synchronizer token every form carries (CSRF), and the browser's address. No token ever
reaches the disk, so a copy of the journal opens nobody's session; a restart of the
server signs everyone out.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass

from cellauto.site.sessions import Session

__all__ = ["SessionTable", "WebSession"]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class WebSession:
    """One signed-in browser."""

    session: Session
    full_name: str
    roles: tuple[str, ...]
    csrf: str
    remote_address: str | None
    signed_once: bool = False
    """A signature stood in this session: its person now signs with the password alone
    (until then with user name and password, Part 11 §11.200(a)(1)(i))."""
    flash: str | None = None
    """A one-shot message for the next page (what the last act did)."""
    closing: bool = False
    """Its end is being journaled now (so it is journaled once)."""

    @property
    def account(self) -> str:
        return self.session.account


class SessionTable:
    """Open web sessions by the SHA-256 of their token (thread-safe)."""

    def __init__(self) -> None:
        self._by_digest: dict[bytes, WebSession] = {}
        self._lock = threading.Lock()

    def create(self, web: WebSession) -> str:
        """Keep ``web``; return the new token for its cookie (a new one every sign-in)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._by_digest[_digest(token)] = web
        return token

    def get(self, token: str | None) -> WebSession | None:
        """The open session of ``token`` (None: unknown, or closed)."""
        if not token:
            return None
        with self._lock:
            return self._by_digest.get(_digest(token))

    def drop(self, token: str) -> WebSession | None:
        """Forget the session of ``token`` (the caller journals its close)."""
        with self._lock:
            return self._by_digest.pop(_digest(token), None)

    def open_sessions(self) -> list[WebSession]:
        """Every open session (for closing them at shutdown, or idle ones)."""
        with self._lock:
            return list(self._by_digest.values())

    def drop_session(self, web: WebSession) -> bool:
        """Forget ``web`` wherever it is kept; False when it was gone already."""
        with self._lock:
            for digest, held in list(self._by_digest.items()):
                if held is web:
                    del self._by_digest[digest]
                    return True
        return False

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_digest)
