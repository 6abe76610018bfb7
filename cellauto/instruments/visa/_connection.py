"""The blocking half of a VISA session: pyvisa calls, run only in the session's thread.

A transaction writes one program message and reads the reply lines it expects, raw,
so that :mod:`scpi_reply` can judge them (pyvisa's ``read`` would strip, decode and
warn instead of refusing). Before writing, bytes left over from an earlier exchange,
or a connection the instrument closed, are detected (pyvisa-py socket sessions) and
the session is reopened, so that a late or extra reply can never be taken for the
answer to a new question.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import pyvisa
from pyvisa import constants
from pyvisa.errors import VisaIOError

from cellauto.instruments.visa.errors import ScpiReplyError, VisaConnectionError

__all__ = ["Connection"]

log = logging.getLogger(__name__)

_TERMINATION = "\n"


class Connection:
    """A pyvisa resource over a given backend (``@py`` for pyvisa-py, ``...@sim``)."""

    def __init__(self, resource_name: str, *, timeout_s: float, backend: str) -> None:
        self.resource_name = resource_name
        self.timeout_s = timeout_s
        self.backend = backend
        self._manager: pyvisa.ResourceManager | None = None
        self._resource: Any = None

    def open(self) -> None:
        """Open (or reopen) the session; VisaConnectionError if the instrument is not there."""
        self.close_resource()
        try:
            if self._manager is None:
                self._manager = pyvisa.ResourceManager(self.backend)
            timeout_ms = max(1, round(self.timeout_s * 1000))
            self._resource = self._manager.open_resource(
                self.resource_name,
                read_termination=_TERMINATION,
                write_termination=_TERMINATION,
                timeout=timeout_ms,
                open_timeout=timeout_ms,
            )
        except Exception as exc:  # pyvisa-py raises a bare Exception when it cannot connect
            raise VisaConnectionError(
                f"cannot open VISA resource {self.resource_name!r} with backend "
                f"{self.backend!r}: {exc}; check that the instrument is on and the address"
            ) from exc

    def transact(self, payload: bytes, replies: int) -> list[bytes]:
        """Write ``payload`` and read ``replies`` raw reply lines."""
        if self._resource is None:
            self.open()
        stale, closed = self._leftovers()
        if stale or closed:
            log.warning(
                "%s: %s before writing %r; reopening the session",
                self.resource_name,
                f"discarding stale bytes {stale[:80]!r}" if stale else "connection closed",
                payload,
            )
            self.open()
        try:
            self._resource.write_raw(payload)
            lines = [self._resource.read_raw() for _ in range(replies)]
        except VisaIOError as exc:
            self.close_resource()
            if exc.error_code == constants.StatusCode.error_timeout:
                raise VisaConnectionError(
                    f"no complete reply to {payload!r} within {self.timeout_s:g} s"
                ) from exc
            raise VisaConnectionError(f"VISA I/O error on {payload!r}: {exc}") from exc
        except OSError as exc:
            self.close_resource()
            raise VisaConnectionError(f"connection lost on {payload!r}: {exc}") from exc
        extra, _ = self._leftovers()
        if extra:
            self.close_resource()
            raise ScpiReplyError(f"more than one line (then {extra[:80]!r})", lines[-1])
        return lines

    def _leftovers(self) -> tuple[bytes, bool]:
        """Bytes already received but not read, and whether the peer closed (pyvisa-py)."""
        session = getattr(self._resource.visalib, "sessions", {}).get(self._resource.session)
        pending = getattr(session, "_pending_buffer", None)
        stale = bytes(pending) if pending else b""
        sock = getattr(session, "interface", None)
        if not isinstance(sock, socket.socket):
            return stale, False
        try:
            peeked = sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return stale, False
        except OSError:
            return stale, True
        return stale + peeked, not peeked

    def close_resource(self) -> None:
        resource, self._resource = self._resource, None
        if resource is not None:
            try:
                resource.close()
            except Exception as exc:  # closing a broken session must not hide the cause
                log.debug("%s: error while closing: %s", self.resource_name, exc)

    def close(self) -> None:
        self.close_resource()
        manager, self._manager = self._manager, None
        if manager is not None:
            try:
                manager.close()
            except Exception as exc:
                log.debug("%s: error closing the resource manager: %s", self.resource_name, exc)
