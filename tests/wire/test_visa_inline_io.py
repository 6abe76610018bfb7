"""The loop thread's own I/O on a pyvisa-py socket: send, spin (yielding), frame the line."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import pyvisa

from cellauto._compat import pyvisa_py as pyvisa_py_compat
from cellauto.instruments.visa import VisaConnectionError, VisaSession, _connection
from cellauto.instruments.visa.scpi_reply import parse_real
from tests.wire.scpi_support import Delayed, fake_instrument, resource

pytestmark = pytest.mark.anyio

TEMP = "MEAS:TEMP:CHAM?"


async def test_a_line_taken_from_pyvisa_py_s_buffer_leaves_the_rest_to_its_own_read() -> None:
    async with fake_instrument({TEMP: [b"-45.25\n-46.5\n"]}, "thread") as fake:
        manager = pyvisa.ResourceManager("@py")
        try:
            inst: Any = manager.open_resource(
                resource(fake.port), read_termination="\n", write_termination="\n", timeout=2000
            )
            session = pyvisa_py_compat.session_of(inst)
            inst.write_raw(f"{TEMP}\n".encode())
            buffer = pyvisa_py_compat.pending_buffer(session)
            sock = pyvisa_py_compat.socket_of(session)
            assert sock is not None
            sock.settimeout(2.0)
            while buffer.count(b"\n") < 2:  # both lines received into the buffer
                buffer += sock.recv(4096)
            assert pyvisa_py_compat.take_line(session, b"\n") == b"-45.25\n"
            assert inst.read_raw() == b"-46.5\n"  # pyvisa-py reads on from the same buffer
            assert pyvisa_py_compat.pending_bytes(session) == b""
        finally:
            manager.close()


async def test_the_spin_yields_the_cpu_between_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a busy machine the instrument's server may be waiting for this very core.
    yields: list[None] = []
    monkeypatch.setattr(_connection, "_yield_cpu", lambda: yields.append(None))
    async with fake_instrument({TEMP: [Delayed(0.05, b"-45.25\n")]}, "thread") as fake:
        session = await VisaSession.open(resource(fake.port), spin_s=0.002)
        try:
            assert await session.query(TEMP, parse_real) == -45.25
        finally:
            await session.aclose()
    assert session.replies_awaited == 1  # 50 ms is beyond the 2 ms spin: awaited on the loop
    assert len(yields) > 0


class _NarrowSocket:
    """A socket whose sends take only ``takes`` bytes (-1: none, it would block)."""

    def __init__(self, sock: socket.socket, takes: int) -> None:
        self._sock = sock
        self._takes = takes

    def send(self, data: bytes, flags: int = 0) -> int:
        if self._takes < 0:
            raise BlockingIOError
        return self._sock.send(data[: self._takes], flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def _open_narrow(
    port: int, takes: int, retries: int, monkeypatch: pytest.MonkeyPatch
) -> VisaSession:
    """A session whose first socket is narrow (reopened ones are not)."""
    real_socket_of = pyvisa_py_compat.socket_of
    wrapped: list[_NarrowSocket] = []

    def socket_of(session: Any) -> Any:
        sock = real_socket_of(session)
        if sock is None or wrapped:
            return sock
        wrapped.append(_NarrowSocket(sock, takes))
        return wrapped[0]

    session = await VisaSession.open(resource(port), timeout_s=1.0, retries=retries)
    monkeypatch.setattr(pyvisa_py_compat, "socket_of", socket_of)
    await session._thread.run(session._connection.open)  # reopened on the narrow socket
    assert wrapped
    return session


async def test_a_request_the_socket_cannot_take_now_goes_through_the_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with fake_instrument({TEMP: [b"-45.25\n"]}, "thread") as fake:
        session = await _open_narrow(fake.port, -1, 0, monkeypatch)
        try:
            assert await session.query(TEMP, parse_real) == -45.25
        finally:
            await session.aclose()
    assert (session.replies_spun, session.replies_awaited, session.replies_threaded) == (0, 0, 1)
    assert session.retried == 0
    assert fake.count(TEMP) == 1


@pytest.mark.parametrize("retries", [0, 1])
async def test_a_request_sent_only_in_part_closes_the_session(
    monkeypatch: pytest.MonkeyPatch, retries: int
) -> None:
    async with fake_instrument({TEMP: [b"-45.25\n"]}, "thread") as fake:
        session = await _open_narrow(fake.port, 3, retries, monkeypatch)
        try:
            if retries == 0:
                with pytest.raises(VisaConnectionError, match=r"the socket took 3 of 16 bytes"):
                    await session.query(TEMP, parse_real)
            else:  # an idempotent query goes again, on a new session
                assert await session.query(TEMP, parse_real) == -45.25
                assert session.retried == 1
        finally:
            await session.aclose()
    assert fake.count(TEMP) == retries  # the cut request 'MEA' never made a line
