"""The label printer as a ZPL II printer on raw TCP: the simulated server, the adapter, a
line whose printer is the TCP adapter."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from anyio.abc import SocketStream

from cellauto.clock import Clock, virtual_loop_factory
from cellauto.errors import BadInputError, EquipmentError, InstrumentError
from cellauto.identity import ContainerPlan, identities
from cellauto.identity.label import label_for, to_zpl
from cellauto.instruments import CellCounter
from cellauto.instruments.label_printer import LabelPrinter
from cellauto.instruments.tcp import TcpLabelPrinter
from cellauto.instruments.tcp.zebra import (
    HostStatus,
    ZebraReplyError,
    format_hi,
    format_hs,
    parse_hi,
    parse_hs,
    unframe,
)
from cellauto.lines import EquipmentConfig, LineConfig
from cellauto.lines.tcp import connect_tcp
from cellauto.lines.wire import open_line, serve_simulated
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.material_payloads import LabelPrinted, LabelVerified
from cellauto.sim import SimLine
from cellauto.sim.faults import MisprintLabel
from cellauto.sim.label_printer import decode_label
from cellauto.sim.printer import SimZplPrinter
from cellauto.sim.printer_tcp import PrinterTcpServer, serve_printer_tcp
from cellauto.sim.scanner import SimBarcodeScanner
from cellauto.sim.world import SimWorld
from tests.cli.conftest import Cli
from tests.cli.conftest import cli as cli  # the CLI fixture, used by name

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
DIN, COI = "G123498654321", "W123426A1B2C3"
IDS = identities(
    DIN,
    COI,
    [ContainerPlan(key="final product", container_type="final product", final=True, count=2)],
)
LABEL = label_for(
    IDS["final product 1"],
    product="CAR-T cells, autologous",
    expires=datetime(2027, 12, 1, tzinfo=UTC),
    volume_ml=70.0,
    cells="1e8 CAR+ viable T cells",
    facility="Test Plant",
)
ZPL = to_zpl(LABEL)


def run(body: Callable[[SimWorld], Awaitable[T]]) -> T:
    """``body`` on a virtual clock (as a simulated line runs), on a fresh world."""

    async def main() -> T:
        world = SimWorld(Clock(datetime(2026, 1, 5, tzinfo=UTC)), seed=1)
        world.identities.update(IDS)
        return await body(world)

    return anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})


def served(
    body: Callable[[SimWorld, PrinterTcpServer, TcpLabelPrinter], Awaitable[T]],
    **options: float,
) -> T:
    async def inner(world: SimWorld) -> T:
        async with serve_printer_tcp(SimZplPrinter(world, serial="LP-0042")) as server:
            printer = await TcpLabelPrinter.connect(server.endpoint, **options)
            try:
                return await body(world, server, printer)
            finally:
                await printer.aclose()

    return run(inner)


def test_a_label_printed_over_tcp_is_what_the_simulated_scanner_decodes() -> None:
    async def body(
        world: SimWorld, server: PrinterTcpServer, printer: TcpLabelPrinter
    ) -> tuple[tuple[str, str], ...]:
        assert isinstance(printer, LabelPrinter)
        assert printer.identity.model_dump() == {
            "vendor": "Zebra",
            "model": "SimZebra ZT411",
            "serial": "LP-0042",
            "firmware": "sim-1.0",
            "adapter": "tcp",
        }
        started = world.elapsed_h()
        job = await printer.print_label(ZPL, "final product 1")
        assert (job.job, job.container, job.symbols) == (1, "final product 1", 3)
        assert world.elapsed_h() - started >= 3.0 / 3600  # the printer's process time
        assert (await printer.host_status()).idle and not server.queue
        # the raster the server rendered, read by zxing and by the line's scanner
        raster = decode_label(world.labels.label_of("final product 1").pixels)
        assert {data for _, data in raster} == {s.data for s in LABEL.symbols()}
        return (await SimBarcodeScanner(world).scan("final product 1")).symbols

    assert {data for _, data in served(body)} == {s.data for s in LABEL.symbols()}


def test_the_printers_own_faults_act_on_what_is_printed_over_tcp() -> None:
    async def body(world: SimWorld, server: PrinterTcpServer, printer: TcpLabelPrinter) -> str:
        server.printer.inject_process_fault(MisprintLabel(symbol="din", data="=G12349865432199"))
        await printer.print_label(ZPL, "final product 1")
        decoded = world.barcodes("final product 1")
        return next(d for s, d in decoded if s == "code128" and d.startswith("="))

    assert served(body) == "=G12349865432199"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"head_open": True}, "head open (close the print head); nothing was sent"),
        ({"paper_out": True}, "paper out (load labels); nothing was sent"),
        ({"paused": True}, "paused (press PAUSE"),
    ],
)
def test_a_printer_that_cannot_print_is_refused_before_anything_is_sent(
    state: dict[str, bool], message: str
) -> None:
    async def body(world: SimWorld, server: PrinterTcpServer, printer: TcpLabelPrinter) -> str:
        server.set_state(**state)
        with pytest.raises(InstrumentError) as caught:
            await printer.print_label(ZPL, "final product 1")
        assert not server.queue and not world.labels.has_label("final product 1")
        return str(caught.value)

    text = served(body)
    assert "LabelPrinter LP-0042 at tcp://127.0.0.1:" in text
    assert "cannot print the label of 'final product 1'" in text and message in text


def test_a_head_opened_during_the_print_times_out_naming_the_state() -> None:
    async def body(world: SimWorld, server: PrinterTcpServer, printer: TcpLabelPrinter) -> str:
        queue_format = server._queue_format

        def queue_and_open_the_head(zpl: str, container: str) -> None:
            queue_format(zpl, container)
            server.set_state(head_open=True)  # opened as the label arrives, before it prints

        server._queue_format = queue_and_open_the_head  # type: ignore[method-assign]
        with pytest.raises(InstrumentError) as caught:
            await printer.print_label(ZPL, "final product 1")
        assert len(server.queue) == 1  # still in the buffer, not printed
        server.set_state(head_open=False)  # closed: the printer prints it
        while server.queue:  # noqa: ASYNC110  # the simulated printer prints in process time
            await anyio.sleep(1)
        assert world.labels.has_label("final product 1")
        return str(caught.value)

    text = served(body, print_timeout_s=0.3)
    assert "still in the printer (1 format(s) in its buffer) after 0.3 s" in text
    assert "head open (close the print head)" in text and "print the label again" in text


def test_bad_labels_and_containers_are_refused_before_anything_is_sent() -> None:
    async def body(world: SimWorld, server: PrinterTcpServer, printer: TcpLabelPrinter) -> None:
        with pytest.raises(InstrumentError, match=r"label for 'final product 1' refused"):
            await printer.print_label("^XA^FO0,0^GB10,10,1^FS^XZ", "final product 1")
        with pytest.raises(BadInputError, match="the container must be one printable line"):
            await printer.print_label(ZPL, 'bag "2"')
        assert not server.queue and not world.labels.has_label("final product 1")

    served(body)


def test_host_status_and_identification_are_the_zebra_formats() -> None:
    status = HostStatus(
        paper_out=True, head_open=True, formats_in_buffer=2, labels_remaining=2, paused=False
    )
    raw = format_hs(status)
    assert raw == (
        b"\x02030,1,0,0000,002,0,0,0,000,0,0,0\x03\r\n"
        b"\x02001,0,1,0,0,2,6,0,00000002,0,000\x03\r\n"
        b"\x021234,0\x03\r\n"
    )
    frames = raw.split(b"\x03")
    texts = (unframe(frames[0], "~HS"), unframe(frames[1], "~HS"), unframe(frames[2], "~HS"))
    parsed = parse_hs(texts)
    assert parsed == status and parsed.problems() == ["head open", "paper out"]
    assert not parsed.idle
    # a real ZT411's reply (ribbon out in direct thermal mode is no problem)
    zt411 = parse_hs(
        ("030,0,0,1218,000,0,0,0,000,0,0,0", "001,0,0,1,0,2,6,0,00000000,1,000", "1234,0")
    )
    assert zt411.idle and zt411.problems() == [] and zt411.label_length_dots == 1218
    hi = parse_hi("ZT411-203dpi,V92.21.39Z,8,8176KB,")
    assert (hi.model, hi.firmware, hi.dots_per_mm, hi.memory_kb) == (
        "ZT411-203dpi",
        "V92.21.39Z",
        8,
        8176,
    )
    assert parse_hi(unframe(format_hi(hi)[:-3], "~HI")) == hi


@pytest.mark.parametrize(
    "frames",
    [
        ("030,0,0,1218,000,0,0,0,000,0,0", "001,0,0,1,0,2,6,0,00000000,1,000", "1234,0"),
        ("030,0,0,1218,000,0,0,0,000,0,0,0", "001,0,X,1,0,2,6,0,00000000,1,000", "1234,0"),
        ("030,0,0,1218,000,0,0,0,000,0,0,0", "001,0,0,1,0,2,6,0,00000000,1,000", "ok"),
    ],
)
def test_a_garbled_host_status_is_refused(frames: tuple[str, str, str]) -> None:
    with pytest.raises(ZebraReplyError, match="not the Zebra host status format"):
        parse_hs(frames)


def test_garbled_identification_and_frames_are_refused() -> None:
    for bad in ("READY", "ZT411,V1,eight,8176KB", ""):
        with pytest.raises(ZebraReplyError, match="not MODEL,FIRMWARE,DPM,MEMORYKB"):
            parse_hi(bad)
    with pytest.raises(ZebraReplyError, match=r"not an STX \.\.\. ETX frame"):
        unframe(b"030,0,0", "~HS")


async def _fake(reply_hi: bytes, reply_hs: bytes, stream: SocketStream, sgd: bool) -> None:
    async with stream:
        while True:
            try:
                data = await stream.receive()
            except anyio.EndOfStream:
                return
            if b"~HI" in data:
                await stream.send(reply_hi)
            if b"getvar" in data and sgd:
                await stream.send(b'"Z1"')
            if b"~HS" in data:
                await stream.send(reply_hs)


def _with_fake(
    reply_hi: bytes, reply_hs: bytes, body: Callable[[str], Awaitable[T]], *, sgd: bool = True
) -> T:
    async def main() -> T:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:

            async def handle(stream: SocketStream) -> None:
                await _fake(reply_hi, reply_hs, stream, sgd)

            tg.start_soon(listener.serve, handle)
            try:
                return await body(f"tcp://127.0.0.1:{port}")
            finally:
                tg.cancel_scope.cancel()

    return anyio.run(main)


def test_a_garbled_reply_from_a_device_is_refused_naming_it() -> None:
    good_hi = b"\x02ZT411,V92.21.39Z,8,8176KB,\x03\r\n"

    async def status(endpoint: str) -> str:
        printer = await TcpLabelPrinter.connect(endpoint)
        try:
            with pytest.raises(InstrumentError) as caught:
                await printer.print_label(ZPL, "final product 1")
            return str(caught.value)
        finally:
            await printer.aclose()

    text = _with_fake(good_hi, b"\x02OK\x03\r\n\x02OK\x03\r\n\x02OK\x03\r\n", status)
    assert "~HS string 1 is 'OK', not the Zebra host status format" in text
    assert "LabelPrinter Z1 at tcp://127.0.0.1:" in text

    async def connect(endpoint: str) -> str:
        with pytest.raises(InstrumentError) as caught:
            await TcpLabelPrinter.connect(endpoint)
        return str(caught.value)

    text = _with_fake(b"HELLO\x03", b"", connect)
    assert "not an STX ... ETX frame" in text and "raw port (9100)" in text


def test_a_zpl_printer_without_sgd_is_connected_with_its_serial_unknown() -> None:
    idle = format_hs(HostStatus())

    async def connect(endpoint: str) -> str:
        printer = await TcpLabelPrinter.connect(endpoint, timeout_s=0.3)
        try:
            assert (await printer.host_status()).idle  # a new connection after the timeout
            return printer.identity.serial
        finally:
            await printer.aclose()

    hi = b"\x02ZT230,V72.20.01Z,8,4096KB,\x03\r\n"
    assert _with_fake(hi, idle, connect, sgd=False) == "unknown"


def test_no_printer_listening_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        with pytest.raises(InstrumentError, match=r"cannot connect.*printer is on"):
            await TcpLabelPrinter.connect(f"tcp://127.0.0.1:{port}", timeout_s=2)

    anyio.run(main)


def printer_line(endpoint: str = "tcp://127.0.0.1:0") -> LineConfig:
    return LineConfig(
        name="t",
        equipment={
            "printer": EquipmentConfig(adapter="tcp", interface="LabelPrinter", endpoint=endpoint)
        },
    )


def test_a_simulated_line_serves_the_printer_and_connects_the_adapter() -> None:
    async def main() -> None:
        sim = SimLine(clock=Clock(), seed=1)
        sim.world.identities.update(IDS)
        needed: dict[str, type[LabelPrinter]] = {"printer": LabelPrinter}
        async with AsyncExitStack() as stack:
            endpoints = await serve_simulated(printer_line(), sim, needed, stack)
            assert endpoints["printer"].startswith("tcp://127.0.0.1:")
            line = await open_line(printer_line(), needed, stack, sim=sim, endpoints=endpoints)
            adapter = line.equipment["printer"]
            assert isinstance(adapter, TcpLabelPrinter)
            await adapter.print_label(ZPL, "final product 2")
            assert sim.world.labels.has_label("final product 2")

    anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})


def test_a_tcp_adapter_for_other_equipment_is_refused_naming_those_there_are() -> None:
    async def main() -> None:
        async with AsyncExitStack() as stack:
            with pytest.raises(EquipmentError, match="tcp adapters: BarcodeScanner, LabelPrinter"):
                await connect_tcp(
                    "counter", CellCounter, printer_line().equipment["printer"], "tcp://h:1", stack
                )

    anyio.run(main)


BAGGING_LINE = """
name = "bagging-tcp-printer"

[simulation]
serve = true
seed = 3

[equipment.printer]
adapter = "tcp"
interface = "LabelPrinter"
endpoint = "tcp://127.0.0.1:0"

[equipment.scanner]
adapter = "sim"

[equipment.processor]
adapter = "sim"

[equipment.storage]
adapter = "sim"
"""


def test_a_protocol_prints_its_label_through_the_tcp_printer_of_its_line(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    line, db = tmp_path / "line.toml", db_location
    line.write_text(BAGGING_LINE)
    bagging = ROOT / "tests" / "protocols" / "bagging.py"
    result = cli("run", bagging, "--line", line, "--db", db)
    assert result.code == 0, result.err
    assert "serving printer at tcp://127.0.0.1:" in result.out
    with Journal(db, create=False) as journal:
        run_id = next(x for x in result.lines if x.startswith("run ")).split()[1]
        records = journal.records(run_id)
    started = records[0].payload
    assert started.instruments["printer"].adapter == "tcp"  # type: ignore[attr-defined]
    printed = [r.payload for r in records if isinstance(r.payload, LabelPrinted)]
    verified = [r.payload for r in records if isinstance(r.payload, LabelVerified)]
    assert [p.printer for p in printed] == ["SimZebra ZT411 s/n ZP-0001"]
    assert [v.matches for v in verified] == [True]
    assert verified[0].scanned == printed[0].symbols
