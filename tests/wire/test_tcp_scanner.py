"""The barcode scanner as a TCP line device: the simulated server, the adapter, a line."""

from __future__ import annotations

import socket
import time
from contextlib import AsyncExitStack

import anyio
import pytest
from anyio.abc import SocketStream

from cellauto.clock import Clock, awaiting_outside, serving_outside
from cellauto.errors import BadInputError, InstrumentError
from cellauto.instruments import BarcodeScanner
from cellauto.instruments.tcp import (
    TcpBarcodeScanner,
    TcpConnection,
    TcpConnectionError,
    TcpTimeoutError,
    parse_tcp_endpoint,
)
from cellauto.lines import EquipmentConfig, LineConfig
from cellauto.lines.wire import open_line, serve_simulated
from cellauto.sim import SimLine
from cellauto.sim.material import Container
from cellauto.sim.scanner import SimBarcodeScanner
from cellauto.sim.scanner_tcp import serve_scanner_tcp

pytestmark = pytest.mark.anyio

LABEL = "=W12342600000060&/CHW123426A1B2C3W"


def scanner() -> SimBarcodeScanner:
    sim = SimLine(clock=Clock(), seed=3)
    sim.world.add_container(Container(container_id="apheresis bag", volume_ml=250, label=LABEL))
    sim.world.add_container(Container(container_id="unlabelled tube", volume_ml=5))
    made = sim.line_for({"scanner": BarcodeScanner}).equipment["scanner"]
    assert isinstance(made, SimBarcodeScanner)
    return made


def netcat(port: int, payload: bytes, replies: int) -> list[bytes]:
    """What a line engineer does with ``nc 127.0.0.1 PORT``: send, read CR-ended lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while data.count(b"\r") < replies:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return [line + b"\r" for line in data.split(b"\r")[:-1]]


async def test_a_raw_socket_triggers_reads_like_netcat() -> None:
    async with serve_scanner_tcp(scanner()) as server:
        with awaiting_outside():
            replies = await anyio.to_thread.run_sync(
                netcat,
                server.port,
                b"IDN\rLON\rPRESENT apheresis bag\rLON\rLON\r\nPRESENT bag 9\rPRESENT\rLON\rXYZ\r",
                9,
            )
        with awaiting_outside():  # another connection, the same scanner and its view
            again = await anyio.to_thread.run_sync(netcat, server.port, b"LON\r", 1)
    assert again == [b"ERROR\r"]
    assert replies[0] == b"cellauto-sim,SimScan 2D,BS-0001,sim-1.0\r"
    assert replies[1] == b"ERROR\r"  # nothing in view: no read
    assert replies[2] == b"OK\r"
    assert replies[3] == replies[4] == LABEL.encode() + b"\r"  # CR LF is taken too
    assert replies[5].startswith(b"NG no container 'bag 9' on the line; containers: aph")
    assert replies[6:8] == [b"OK\r", b"ERROR\r"]  # PRESENT alone: nothing in view
    assert replies[8].startswith(b"NG unknown command 'XYZ'; commands: LON, LOFF")


async def test_a_read_takes_the_scanners_process_time_and_a_blank_label_is_no_read() -> None:
    async with serve_scanner_tcp(scanner()) as server:
        start = anyio.current_time()
        with awaiting_outside():
            replies = await anyio.to_thread.run_sync(
                netcat, server.port, b"PRESENT unlabelled tube\rLON\r", 2
            )
        assert replies == [b"OK\r", b"ERROR\r"]
        assert anyio.current_time() - start >= 2.0  # SimBarcodeScanner: 2 s a read


class HangingScanner(SimBarcodeScanner):
    """A scanner that keeps trying to read (as one set to read until a label appears)."""

    async def scan(self, label: str):  # type: ignore[no-untyped-def]
        await anyio.Event().wait()


async def test_loff_stops_a_read_in_progress_which_answers_error() -> None:
    made = scanner()
    hanging = HangingScanner(made.world, "SB-0009")
    async with serve_scanner_tcp(hanging) as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        async with stream:
            await stream.send(b"PRESENT apheresis bag\rLON\rIDN\r")
            assert await stream.receive() == b"OK\r"
            await stream.send(b"LOFF\r")
            replies = b""
            while replies.count(b"\r") < 2:
                replies += await stream.receive()
            assert replies == b"ERROR\rcellauto-sim,SimScan 2D,SB-0009,sim-1.0\r"


async def test_the_adapter_reads_what_the_in_process_scanner_reads() -> None:
    in_process = scanner()
    async with serve_scanner_tcp(scanner()) as server:
        adapter = await TcpBarcodeScanner.connect(server.endpoint)
        try:
            assert isinstance(adapter, BarcodeScanner)
            over_tcp = await adapter.scan("apheresis bag")
            assert over_tcp == await in_process.scan("apheresis bag")
            assert adapter.identity.model_dump() == {
                **in_process.identity.model_dump(),
                "adapter": "tcp",
            }
            with pytest.raises(InstrumentError) as caught:
                await adapter.scan("bag 9")
            message = str(caught.value)
            assert server.endpoint in message and "no container 'bag 9'" in message
            with pytest.raises(InstrumentError, match=r"no read of 'unlabelled tube'.*check"):
                await adapter.scan("unlabelled tube")
            with pytest.raises(InstrumentError, match="one line"):
                await adapter.scan("two\rlines")
        finally:
            await adapter.aclose()


async def test_the_adapter_reconnects_once_when_the_connection_dropped() -> None:
    made = scanner()
    async with serve_scanner_tcp(made) as first:
        port = first.port
        adapter = await TcpBarcodeScanner.connect(first.endpoint)
        assert (await adapter.scan("apheresis bag")).data == LABEL
    try:
        async with serve_scanner_tcp(made, port=port):  # the scanner rebooted
            assert (await adapter.scan("apheresis bag")).data == LABEL
            assert adapter.connection.connects == 2
        with pytest.raises(TcpConnectionError) as caught:  # and now it is off
            await adapter.scan("apheresis bag")
        message = str(caught.value)
        assert f"cannot connect to tcp://127.0.0.1:{port}" in message
        assert "check that the device is on" in message
    finally:
        await adapter.aclose()


async def silent(stream: SocketStream) -> None:
    """A device that takes requests and never answers (not working on them either)."""
    async with stream:
        while await stream.receive():
            pass


async def test_a_timeout_is_real_seconds_and_closes_the_connection() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, silent)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        connection = TcpConnection(f"tcp://127.0.0.1:{port}", timeout_s=0.3)
        began = time.monotonic()
        with pytest.raises(TcpTimeoutError, match=r"no reply to 'LON' from tcp://127.*0.3 s"):
            await connection.request("LON")
        assert time.monotonic() - began >= 0.3
        assert not connection.is_open  # a late reply can never answer the next request
        group.cancel_scope.cancel()


async def test_an_answer_after_an_hour_of_process_time_is_no_timeout() -> None:
    """A device on this virtual loop working for an hour of process time answers in
    real milliseconds: a timeout in loop time (0.3 s) would have fired; real time not."""

    async def slow(stream: SocketStream) -> None:
        async with stream:
            await stream.receive()
            with serving_outside():
                await anyio.sleep(3600)
            await stream.send(b"done\r")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, slow)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        connection = TcpConnection(f"tcp://127.0.0.1:{port}", timeout_s=0.3)
        start = anyio.current_time()
        assert await connection.request("LON") == "done"
        assert anyio.current_time() - start >= 3600
        await connection.aclose()
        group.cancel_scope.cancel()


def test_endpoints_are_tcp_host_port() -> None:
    assert parse_tcp_endpoint("tcp://127.0.0.1:9004") == ("127.0.0.1", 9004)
    assert parse_tcp_endpoint("tcp://scanner-3.line.local:23/") == ("scanner-3.line.local", 23)
    for bad in ("127.0.0.1:9004", "tcp://h", "tcp://h:99999", "TCPIP0::h::1::SOCKET"):
        with pytest.raises(BadInputError, match="not tcp://HOST:PORT"):
            parse_tcp_endpoint(bad)


def tcp_line(endpoint: str = "tcp://127.0.0.1:0") -> LineConfig:
    return LineConfig(
        name="t",
        equipment={"scanner": EquipmentConfig(adapter="tcp", endpoint=endpoint)},
    )


async def test_a_simulated_line_serves_the_scanner_and_connects_the_adapter() -> None:
    sim = SimLine(clock=Clock(), seed=1)
    sim.world.add_container(Container(container_id="apheresis bag", label=LABEL))
    needed: dict[str, type[BarcodeScanner]] = {"scanner": BarcodeScanner}
    async with AsyncExitStack() as stack:
        endpoints = await serve_simulated(tcp_line(), sim, needed, stack)
        assert endpoints["scanner"].startswith("tcp://127.0.0.1:")
        line = await open_line(tcp_line(), needed, stack, sim=sim, endpoints=endpoints)
        adapter = line.equipment["scanner"]
        assert isinstance(adapter, TcpBarcodeScanner)
        assert (await adapter.scan("apheresis bag")).data == LABEL


async def test_a_tcp_endpoint_off_loopback_is_refused_for_a_simulated_line() -> None:
    sim = SimLine(clock=Clock(), seed=1)
    async with AsyncExitStack() as stack:
        with pytest.raises(BadInputError, match=r"must be tcp://127.0.0.1:PORT"):
            await serve_simulated(
                tcp_line("tcp://10.0.0.5:9004"), sim, {"scanner": BarcodeScanner}, stack
            )
