"""The simulated line's label printer: what it prints the scanner and the operators read
back from the raster; its faults, and the scanner's wrong bag in view."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import anyio
import pytest

from cellauto.clock import Clock, virtual_loop_factory
from cellauto.errors import InstrumentError
from cellauto.identity import ContainerPlan, identities
from cellauto.identity.label import label_for, to_zpl
from cellauto.sim.faults import MisprintLabel, SmudgedLabel, WrongBagInView
from cellauto.sim.material import Container
from cellauto.sim.printer import SimZplPrinter
from cellauto.sim.scanner import SimBarcodeScanner
from cellauto.sim.world import SimWorld

T = TypeVar("T")
DIN, COI = "G123498654321", "W123426A1B2C3"
IDS = identities(
    DIN,
    COI,
    [
        ContainerPlan(key="apheresis bag", container_type="apheresis bag"),
        ContainerPlan(key="final product", container_type="final product", final=True, count=2),
    ],
)
LABEL = label_for(
    IDS["final product 1"],
    product="CAR-T cells, autologous",
    expires=datetime(2027, 12, 1, tzinfo=UTC),
    volume_ml=70.0,
    cells="1e8 CAR+ viable T cells",
    facility="Test Plant",
)


def run(body: Callable[[SimWorld], Awaitable[T]]) -> T:
    async def main() -> T:
        world = SimWorld(Clock(datetime(2026, 1, 5, tzinfo=UTC)), seed=1)
        world.identities.update(IDS)
        return await body(world)

    return anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})


def test_the_scanner_reads_every_symbol_the_printer_printed() -> None:
    async def body(world: SimWorld) -> tuple[tuple[str, str], ...]:
        job = await SimZplPrinter(world).print_label(to_zpl(LABEL), "final product 1")
        assert (job.job, job.container, job.symbols) == (1, "final product 1", 3)
        return (await SimBarcodeScanner(world).scan("final product 1")).symbols

    assert {data for _, data in run(body)} == {s.data for s in LABEL.symbols()}


def test_an_unlabelled_bag_shows_its_in_process_label_and_an_arrived_bag_its_own() -> None:
    async def body(world: SimWorld) -> tuple[str, str]:
        world.add_container(Container("apheresis bag", barcodes=("=G12349865432177", "<S9000100")))
        return world.scan_label("apheresis bag"), world.scan_label("final product 2")

    arrived, in_process = run(body)
    assert arrived == "=G12349865432177<S9000100"
    assert in_process == IDS["final product 2"].din_data() + IDS["final product 2"].product_data()


def test_a_misprint_prints_other_data_once() -> None:
    async def body(world: SimWorld) -> list[str]:
        printer = SimZplPrinter(world)
        printer.inject(MisprintLabel(symbol="din", data="=G12349865432102"))
        read = []
        for _ in range(2):
            await printer.print_label(to_zpl(LABEL), "final product 1")
            read.append(world.scan_label("final product 1"))
        return read

    first, second = run(body)
    assert first.startswith("=G12349865432102") and second.startswith("=G12349865432101")


def test_a_smudged_symbol_does_not_decode() -> None:
    async def body(world: SimWorld) -> set[str]:
        printer = SimZplPrinter(world)
        printer.inject(SmudgedLabel(symbol="product"))
        await printer.print_label(to_zpl(LABEL), "final product 1")
        return {data for _, data in world.barcodes("final product 1")}

    assert run(body) == {LABEL.symbols()[0].data, LABEL.symbols()[2].data}


def test_wrong_bag_in_view_from_its_hour() -> None:
    async def body(world: SimWorld) -> tuple[str, str]:
        scanner = SimBarcodeScanner(world)
        scanner.inject(WrongBagInView(container="final product 1", shows="final product 2", at_h=1))
        before = world.scan_label("final product 1")
        await anyio.sleep(3600)
        return before, world.scan_label("final product 1")

    before, after = run(body)
    assert before.startswith(IDS["final product 1"].din_data())
    assert after.startswith(IDS["final product 2"].din_data())


def test_a_label_fault_is_refused_by_an_instrument_that_cannot_suffer_it() -> None:
    async def body(world: SimWorld) -> None:
        with pytest.raises(InstrumentError, match="cannot suffer misprint_label"):
            SimBarcodeScanner(world).inject(MisprintLabel(data="x"))
        with pytest.raises(InstrumentError, match="cannot suffer wrong_bag_in_view"):
            SimZplPrinter(world).inject(WrongBagInView(container="a", shows="b"))

    run(body)
