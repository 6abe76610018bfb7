"""pyvisa-py's internals that the VISA adapters use (pyvisa-py is pinned: see TESTED).

A pyvisa-py TCP/IP socket session (``TCPIPSocketSession``) reads from its socket
(``interface``) into a private read buffer (``_pending_buffer``), which its ``read``
consumes first. The SCPI session (:mod:`cellauto.instruments.visa._connection`) takes
bytes into that very buffer without waiting, frames a complete reply line from it as
pyvisa-py's ``read`` would (:func:`take_line`), and looks at it for left-over bytes
before writing. The session objects
themselves are found through the library's ``sessions`` table.
"""

from __future__ import annotations

import socket
from typing import Any

from cellauto._compat._check import check_dependency, internal

__all__ = [
    "TESTED",
    "check",
    "pending_buffer",
    "pending_bytes",
    "session_of",
    "socket_of",
    "take_line",
]

#: pyvisa-py versions these internals were tested with.
TESTED = ("0.8.1",)

INTERNALS = (
    internal("pyvisa_py.highlevel.PyVisaLibrary", "sessions", instance=True),
    internal("pyvisa_py.tcpip.TCPIPSocketSession", "interface", instance=True),
    internal("pyvisa_py.tcpip.TCPIPSocketSession", "_pending_buffer", instance=True),
)


def check(installed: str | None = None) -> str:
    """Refuse an untested pyvisa-py, or one lacking an internal used here."""
    return check_dependency("pyvisa-py", TESTED, INTERNALS, module="pyvisa_py", installed=installed)


check()


def session_of(resource: Any) -> Any:
    """The backend's session object behind a pyvisa resource (None if none is found)."""
    return getattr(resource.visalib, "sessions", {}).get(resource.session)


def socket_of(session: Any) -> socket.socket | None:
    """The socket of a pyvisa-py socket session that reads through its own buffer, else None."""
    sock = getattr(session, "interface", None)
    buffer = getattr(session, "_pending_buffer", None)
    if isinstance(sock, socket.socket) and isinstance(buffer, bytearray):
        return sock
    return None


def pending_buffer(session: Any) -> bytearray:
    """The read buffer of a socket session (:func:`socket_of` is not None): received,
    not yet read. pyvisa-py replaces it as it reads, so ask again each time."""
    buffer: bytearray = session._pending_buffer
    return buffer


def pending_bytes(session: Any) -> bytes:
    """What any session has received but not read yet (b"" when it keeps no buffer)."""
    pending = getattr(session, "_pending_buffer", None)
    return bytes(pending) if pending else b""


def take_line(session: Any, end: bytes) -> bytes:
    """The first line of a socket session's read buffer, ``end`` included, removed from it.

    What pyvisa-py's ``read`` returns (with the termination character enabled) when the
    buffer already holds ``end``, without its attribute look-ups and ``select``; the
    caller has seen ``end`` in :func:`pending_buffer`. Bytes after the line stay there.
    """
    buffer: bytearray = session._pending_buffer
    stop = buffer.index(end) + len(end)
    line = bytes(buffer[:stop])
    del buffer[:stop]
    return line
