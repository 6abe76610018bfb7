"""A small protocol with declared containers: receive a bag, fill a product bag from it,
label it, carry it into LN2 and take it out again (for the container, hand-off, label and
storage tests; a CAR-T batch takes longer)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from cellauto import Field, MaterialInput, Params, Protocol, Run, SimDefault
from cellauto.identity import ContainerPlan, coi_barcode
from cellauto.instruments import BarcodeScanner
from cellauto.instruments.cell_processor import CellProcessor, ProgramInputs
from cellauto.instruments.cryo_storage import CryoStorage, StoragePosition
from cellauto.instruments.label_printer import LabelPrinter
from cellauto.protocols.handoff import handoff, retrieve_checked, store_checked
from cellauto.protocols.labels import print_label
from cellauto.protocols.params import Din
from cellauto.records.material_payloads import Place

DIN = "G123498654321"
COI = "W123426A1B2C3"
POSITION = StoragePosition(rack="A", box=2, slot=3)


class BagParams(Params):
    din: Annotated[Din, SimDefault(DIN)] = Field(description="DIN on the bag")
    coi: Annotated[str, SimDefault(COI)] = Field(description="chain of identity")
    bags: int = Field(1, ge=1, le=4)
    label_scanner: bool = Field(False, description="verify labels with the line's scanner")
    retrieve: bool = Field(False, description="take the bag out of LN2 at the end")
    receipt_scanner: bool = Field(False, description="the line's scanner reads the bag")


def plans(p: BagParams) -> list[ContainerPlan]:
    return [
        ContainerPlan(key="apheresis bag", container_type="apheresis bag"),
        ContainerPlan(
            key="final product",
            container_type="final product",
            parents=("apheresis bag",),
            final=True,
            count=p.bags,
        ),
    ]


def bags(p: BagParams) -> list[str]:
    if p.bags == 1:
        return ["final product"]
    return [f"final product {n}" for n in range(1, p.bags + 1)]


protocol = Protocol(
    "bagging",
    version="1",
    params=BagParams,
    inputs=[
        MaterialInput(
            name="apheresis bag",
            identity_param="coi",
            din_param="din",
            material="apheresis",
            label=coi_barcode,
        )
    ],
    containers=plans,
)


@protocol.step
async def receive(run: Run[BagParams], scanner: BarcodeScanner) -> None:
    await run.containers.create("apheresis bag")
    await handoff(
        run,
        "apheresis bag",
        to=Place(kind="bench", name="cleanroom bench"),
        instruction="Put the bag on the bench.",
        scanner=scanner if run.params.receipt_scanner else None,
    )


@protocol.step
async def fill(run: Run[BagParams], processor: CellProcessor) -> None:
    """The processor fills the bags: their transfers are recorded at the instrument."""
    await processor.run_program(
        "FORMULATE_FILL",
        ProgramInputs(
            source_container_id="apheresis bag",
            output_container_id="final product",
            parameters={
                "product_volume_ml": 20.0,
                "final_volume_ml": 100.0,
                "dmso_pct": 7.5,
                "bag_count": run.params.bags,
            },
        ),
        supervisory_task_id=f"{run.run_id}:fill",
    )
    for bag in bags(run.params):
        await run.containers.create(bag)  # created with its transfer: not again


@protocol.step
async def label(run: Run[BagParams], printer: LabelPrinter, scanner: BarcodeScanner) -> None:
    for bag in bags(run.params):
        await print_label(
            run,
            printer,
            bag,
            product="CAR-T cells, autologous",
            expires=run.now() + timedelta(days=365),
            volume_ml=70.0,
            cells="1.0e8 CAR+ viable T cells",
            facility="Test Plant",
            scanner=scanner if run.params.label_scanner else None,
        )


@protocol.step
async def store(run: Run[BagParams], storage: CryoStorage) -> None:
    bag = bags(run.params)[0]
    await handoff(
        run,
        bag,
        name="transfer into LN2",
        to=Place(kind="storage", name="storage", position=POSITION),
        instruction="Place the bag in LN2.",
        verify=True,
    )
    await store_checked(run, storage, bag, POSITION, name="storage")
    if run.params.retrieve:
        await retrieve_checked(
            run, storage, bag, to=Place(kind="bench", name="thaw bench"), name="storage"
        )
