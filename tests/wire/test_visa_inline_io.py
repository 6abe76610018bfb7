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


class _TakesThreeBytes:
    """A socket whose first send takes only 3 bytes (a full send buffer, say)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: bytes, flags: int = 0) -> int:
        return self._sock.send(data[:3], flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@pytest.mark.parametrize("retries", [0, 1])
async def test_a_request_sent_only_in_part_closes_the_session(
    monkeypatch: pytest.MonkeyPatch, retries: int
) -> None:
    real_socket_of = pyvisa_py_compat.socket_of
    wrapped: list[_TakesThreeBytes] = []

    def socket_of(session: Any) -> Any:
        sock = real_socket_of(session)
        if sock is None or wrapped:
            return sock
        wrapped.append(_TakesThreeBytes(sock))
        return wrapped[0]

    async with fake_instrument({TEMP: [b"-45.25\n"]}, "thread") as fake:
        session = await VisaSession.open(resource(fake.port), timeout_s=1.0, retries=retries)
        monkeypatch.setattr(pyvisa_py_compat, "socket_of", socket_of)
        await session._thread.run(session._connection.open)  # reopened on the narrow socket
        try:
            if retries == 0:
                with pytest.raises(VisaConnectionError, match=r"the socket took 3 of 16 bytes"):
                    await session.query(TEMP, parse_real)
            else:  # an idempotent query goes again, on a new session
                assert await session.query(TEMP, parse_real) == -45.25
                assert session.retried == 1
        finally:
            await session.aclose()
    assert wrapped
    assert fake.count(TEMP) == retries  # the cut request 'MEA' never made a line
