"""What a web app serves and how: the journal, TLS, the poll interval, trusted proxies."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from cellauto.records.backend import Location

__all__ = ["LOOPBACK", "WebConfig", "is_loopback"]

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    return host in LOOPBACK or host.startswith("127.")


class WebConfig(BaseModel):
    """``db``: the journal (a file path or a ``postgresql://`` URL, as a Location);
    ``secure``: served over HTTPS (cookies ``Secure`` with the ``__Host-`` prefix, HSTS);
    ``poll_s``: how often the journal is looked at for new records; ``max_session_h``: the
    longest a session lasts, used or not; ``behind_proxy``: the reverse proxies whose
    forwarded client address is trusted (none: the socket's peer is the journaled
    address)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    db: Annotated[Location, BeforeValidator(Location.parse)]
    secure: bool = False
    poll_s: float = Field(0.1, gt=0, le=5)
    behind_proxy: tuple[str, ...] = ()
    max_session_h: float = Field(12.0, gt=0, le=24)
    """A web session is closed after this many hours even if used (a shift)."""
