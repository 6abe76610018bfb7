"""The blocking half of a VISA session: pyvisa calls on one session, one at a time.

A transaction writes one program message and reads the reply lines it expects, raw,
so that :mod:`scpi_reply` can judge them (pyvisa's ``read`` would strip, decode and
warn instead of refusing). Before writing, bytes left over from an earlier exchange,
or a connection the instrument closed, are detected (pyvisa-py socket sessions) and
the session is reopened, so that a late or extra reply can never be taken for the
answer to a new question.

Two ways to run a transaction (the session chooses, see :mod:`.session`):

* :meth:`Connection.transact` blocks until the reply or the timeout; it runs in the
  session's worker thread, never on the event loop;
* on a pyvisa-py socket session, pieces that block for at most a short budget, for
  the event loop's thread: :meth:`Connection.start_inline` sends the request straight
  to the socket when nothing is pending and the socket has room (all of it at once;
  nothing sent leaves the transaction to the thread, a part sent closes the session
  as broken); :meth:`Connection.reply_state` takes in, without
  waiting, what has arrived (into pyvisa-py's own read buffer) and tells whether a
  complete reply line is there; :meth:`Connection.spin` polls it for a short budget
  without sleeping (yielding the CPU between looks); :meth:`Connection.take_reply` frames
  the line from that buffer as pyvisa-py's ``read`` would, or raises. The loop
  watches :meth:`Connection.fileno` between looks. Sessions of another backend use
  :meth:`Connection.transact` only. pyvisa-py's session table, socket and read buffer
  are reached through :mod:`cellauto._compat.pyvisa_py`.

Why the inline path does not go through pyvisa's ``write_raw`` and ``read_raw``
(measured in ``bench/bench_scpi.py``): they cost 15-25 µs of Python each way
(attribute look-ups, a ``select`` before the ``send``); a bare blocking pyvisa query
hides its read's share while the instrument works, before it sleeps, but a reply
already complete in the buffer would pay it in full, after the wait.
"""

from __future__ import annotations

import enum
import logging
import os
import select
import socket
import time
from typing import Any

import pyvisa
from pyvisa import constants
from pyvisa.errors import VisaIOError

from cellauto._compat import pyvisa_py as pyvisa_py_compat
from cellauto._compat.pyvisa_py import pending_buffer, take_line
from cellauto.instruments.visa.errors import ScpiReplyError, VisaConnectionError
from cellauto.instruments.visa.scpi_reply import MAX_REPLY_BYTES

__all__ = ["Connection", "Reply"]

log = logging.getLogger(__name__)

_TERMINATION = "\n"
_LINE_END = b"\n"
#: As much as pyvisa-py reads per ``recv`` (and as much as is looked at for stale bytes).
_PEEK_BYTES = 4096
_RECEIVE_BYTES = 4096
#: Larger requests are written from the worker thread: a socket that reports room to
#: write (POLLOUT) takes this much at once, so the loop's thread never waits on a send.
_INLINE_MAX_BYTES = 1024
#: ``select.poll`` is missing on Windows: there every exchange runs in the worker thread.
_CAN_POLL = hasattr(select, "poll")
_CAN_WRITE = getattr(select, "POLLOUT", 4)
_TO_READ = (
    getattr(select, "POLLIN", 1) | getattr(select, "POLLHUP", 16) | getattr(select, "POLLERR", 8)
)
#: Gives the CPU to another thread ready to run on it, if any (Unix; a no-op elsewhere).
_yield_cpu = getattr(os, "sched_yield", lambda: None)


class Reply(enum.Enum):
    """Where the reply to a request written by :meth:`Connection.start_inline` stands."""

    READY = "a complete reply line is there"
    WAITING = "not complete yet"
    CLOSED = "the instrument hung up (or the connection failed) before completing it"


class Connection:
    """A pyvisa resource over a given backend (``@py`` for pyvisa-py, ``...@sim``)."""

    def __init__(self, resource_name: str, *, timeout_s: float, backend: str) -> None:
        self.resource_name = resource_name
        self.timeout_s = timeout_s
        self.backend = backend
        self._manager: pyvisa.ResourceManager | None = None
        self._resource: Any = None
        #: pyvisa-py's session behind the resource, its socket and a poller on it.
        self._session: Any = None
        self._socket: socket.socket | None = None
        self._poller: select.poll | None = None

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
        self._session = pyvisa_py_compat.session_of(self._resource)
        sock = pyvisa_py_compat.socket_of(self._session)
        if _CAN_POLL and sock is not None:
            self._socket = sock
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN | select.POLLOUT)

    def transact(self, payload: bytes, replies: int) -> list[bytes]:
        """Write ``payload`` and read ``replies`` raw reply lines (blocking)."""
        if self._resource is None:
            self.open()
        stale, closed = self._leftovers() if self._may_have_leftovers() else (b"", False)
        if stale or closed:
            log.warning(
                "%s: %s before writing %r; reopening the session",
                self.resource_name,
                f"discarding stale bytes {stale[:80]!r}" if stale else "connection closed",
                payload,
            )
            self.open()
        self._write(payload)
        return self.finish(payload, replies)

    def start_inline(self, payload: bytes) -> bool:
        """Write ``payload`` from the caller's thread if that cannot block; False if not.

        Only on an open pyvisa-py socket session with nothing pending (no left-over
        bytes, no hang-up) and room to write; otherwise nothing is written and the whole
        transaction belongs in :meth:`transact` (which reopens a stale session).
        """
        poller = self._poller
        if poller is None or self._resource is None or len(payload) > _INLINE_MAX_BYTES:
            return False
        if pending_buffer(self._session) or _events(poller) != _CAN_WRITE:
            return False
        return self._send_inline(payload)

    def _send_inline(self, payload: bytes) -> bool:
        """Send all of ``payload`` without waiting (the socket has room); False if it
        would have had to wait (nothing written); a part sent closes the session."""
        try:
            sent = self._socket.send(payload, socket.MSG_DONTWAIT)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self.close_resource()
            raise VisaConnectionError(f"connection lost writing {payload!r}: {exc}") from exc
        if sent != len(payload):  # part of a message went out: the session is unusable
            self.close_resource()
            raise VisaConnectionError(
                f"VISA I/O error writing {payload!r}: the socket took {sent} of "
                f"{len(payload)} bytes"
            )
        return True

    def fileno(self) -> int:
        """The socket to watch for the reply (after :meth:`start_inline` returned True)."""
        if self._socket is None:
            raise VisaConnectionError(f"{self.resource_name}: the session is closed")
        return self._socket.fileno()

    def reply_state(self) -> Reply:
        """Whether a complete reply line can be read now, taking in what has arrived.

        Bytes waiting on the socket are received, without waiting, into pyvisa-py's
        read buffer, the very buffer its ``read`` consumes first: pyvisa then frames
        the reply from it at once, and no byte is read twice or lost.
        """
        if self._poller is None:
            raise VisaConnectionError(f"{self.resource_name}: the session is closed")
        pending = pending_buffer(self._session)
        if _LINE_END in pending:
            return Reply.READY
        events = _events(self._poller)
        if not events & _TO_READ:
            return Reply.WAITING
        if not self._receive(pending):
            return Reply.CLOSED
        if _LINE_END in pending:
            return Reply.READY
        if len(pending) > MAX_REPLY_BYTES:
            self.close_resource()
            raise ScpiReplyError(f"more than {MAX_REPLY_BYTES} bytes without a line end", b"")
        if events & (select.POLLHUP | select.POLLERR):
            return Reply.CLOSED
        return Reply.WAITING  # part of a line so far

    def _receive(self, pending: bytearray) -> bool:
        """Append what the socket holds to ``pending``; False if the connection has ended."""
        try:
            received = self._socket.recv(_RECEIVE_BYTES, socket.MSG_DONTWAIT)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:  # reset by the peer
            return False
        pending += received
        return bool(received)

    def spin(self, budget_s: float) -> Reply:
        """Poll, without sleeping, for up to ``budget_s`` until the reply is no longer awaited.

        Between looks the thread yields its CPU (``sched_yield``) to any thread ready to
        run there: when every other core is busy, that is often the instrument's server
        (on this host), which cannot answer while this thread holds the core. Without
        the yield, on a loaded machine the reply came only once the spin had given up
        (1.4-1.9x a bare pyvisa query, ``bench/bench_scpi.py``); when nothing else is
        ready to run the yield returns at once.
        """
        deadline = time.perf_counter() + budget_s
        while (state := self.reply_state()) is Reply.WAITING and time.perf_counter() < deadline:
            _yield_cpu()
        return state

    def take_reply(self, payload: bytes, state: Reply) -> bytes:
        """The reply line when ``state`` is READY (framed from pyvisa-py's buffer); else
        the error. Bytes after the line (a second line) make the reply garbled."""
        if state is not Reply.READY:
            self.close_resource()
            if state is Reply.CLOSED:
                raise VisaConnectionError(
                    "the instrument closed the connection before completing its reply to "
                    f"{payload!r}"
                )
            raise VisaConnectionError(
                f"no complete reply to {payload!r} within {self.timeout_s:g} s"
            )
        line = take_line(self._session, _LINE_END)
        extra = pending_buffer(self._session)
        if extra:
            self.close_resource()
            raise ScpiReplyError(f"more than one line (then {bytes(extra[:80])!r})", line)
        return line

    def finish(self, payload: bytes, replies: int) -> list[bytes]:
        """Read the ``replies`` lines answering ``payload`` (already written), blocking."""
        lines = self._read_lines(payload, replies)
        if self._may_have_leftovers():
            extra, _ = self._leftovers()
            if extra:
                self.close_resource()
                raise ScpiReplyError(f"more than one line (then {extra[:80]!r})", lines[-1])
        return lines

    def _read_lines(self, payload: bytes, replies: int) -> list[bytes]:
        try:
            return [self._resource.read_raw() for _ in range(replies)]
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

    def _write(self, payload: bytes) -> None:
        try:
            self._resource.write_raw(payload)
        except VisaIOError as exc:
            self.close_resource()
            raise VisaConnectionError(f"VISA I/O error writing {payload!r}: {exc}") from exc
        except OSError as exc:
            self.close_resource()
            raise VisaConnectionError(f"connection lost writing {payload!r}: {exc}") from exc

    def _may_have_leftovers(self) -> bool:
        """A cheap first look: False only when nothing at all can be waiting."""
        if self._poller is None:
            return True
        return bool(pending_buffer(self._session)) or bool(_events(self._poller) & _TO_READ)

    def _leftovers(self) -> tuple[bytes, bool]:
        """Bytes already received but not read, and whether the peer closed (pyvisa-py)."""
        stale = pyvisa_py_compat.pending_bytes(self._session)
        if self._socket is None:
            return stale, False
        peeked, ended = _peek(self._socket)
        return stale + peeked, ended

    def close_resource(self) -> None:
        resource, self._resource = self._resource, None
        self._session = self._socket = self._poller = None
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


def _events(poller: select.poll) -> int:
    """The socket's ready events now, without waiting (0 when none)."""
    ready = poller.poll(0)
    return ready[0][1] if ready else 0


def _peek(sock: socket.socket) -> tuple[bytes, bool]:
    """What the socket holds, left in place, and whether the connection has ended."""
    try:
        peeked = sock.recv(_PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return b"", False
    except OSError:  # reset by the peer
        return b"", True
    return peeked, not peeked
