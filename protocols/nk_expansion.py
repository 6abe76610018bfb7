"""Allogeneic-ready NK-cell expansion: cytokine-driven, no selection, no gene transfer.

A CD56-enriched NK-cell product is received, expanded for two weeks in a rocking
bag with IL-2/IL-15, washed, dosed by viable NK cells per kg, frozen and stored. A
different process from CAR-T on the same API and the same line: other materials,
other activation, other release specifications (NK purity, residual T cells).
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated

from cellauto import (
    Field,
    Material,
    MaterialInput,
    Params,
    Protocol,
    Run,
    SimDefault,
    Spec,
    per_batch,
    per_param,
)
from cellauto.identity import ContainerPlan, coi_barcode, parse_coi_barcode
from cellauto.instruments import (
    BarcodeScanner,
    Bioreactor,
    CellCounter,
    CellProcessor,
    FlowCytometer,
    ProgramInputs,
    Setpoints,
)
from cellauto.instruments.controlled_rate_freezer import (
    ControlledRateFreezer,
    FreezeProfile,
    Hold,
    Ramp,
)
from cellauto.instruments.cryo_storage import CryoStorage, StoragePosition
from cellauto.instruments.label_printer import LabelPrinter
from cellauto.protocols.compendial import dose_count, endotoxin, mycoplasma, sterility, viability
from cellauto.protocols.handoff import handoff, store_checked
from cellauto.protocols.labels import print_label
from cellauto.protocols.params import Din
from cellauto.protocols.reconcile import feed_once
from cellauto.records.material_payloads import Place

NK_DMSO_PCT = 5.0  # final DMSO in the NK product (from CryoStor CS10)


class NkParams(Params):
    coi: Annotated[str, SimDefault("N987626Q7R8S9")] = Field(
        pattern=r"^[A-Z0-9]{5}[0-9]{2}[A-Z0-9]{6}$"
    )
    din: Annotated[Din, SimDefault("N987626000017")] = Field(
        description="ISBT 128 DIN on the NK-cell product bag's label"
    )
    patient_weight_kg: Annotated[float, SimDefault(70.0)] = Field(gt=0, le=250)
    dose_nk_per_kg: float = Field(1.0e7, gt=0, le=1e9, description="viable NK cells/kg")
    culture_days: int = Field(14, ge=10, le=21)
    feed_ml: float = Field(200.0, gt=0, le=500)
    final_volume_ml: float = Field(100.0, ge=20, le=250)
    shelf_life_days: int = Field(365, ge=1, le=3650, description="frozen, from the label")


#: The containers of a batch: the product received, the culture, harvest, wash, final bag.
NK_CONTAINERS = [
    ContainerPlan(key="NK cell product", container_type="NK cell product", product_code="S9010"),
    ContainerPlan(key="culture bag", container_type="culture bag", parents=("NK cell product",)),
    ContainerPlan(key="NK harvest", container_type="harvest bag", parents=("culture bag",)),
    ContainerPlan(key="NK washed", container_type="washed product", parents=("NK harvest",)),
    ContainerPlan(
        key="NK final product",
        container_type="final product",
        product_code="S1235",
        parents=("NK washed",),
        final=True,
    ),
]
STORAGE_POSITION = StoragePosition(rack="B", box=1, slot=1)


#: The release tests of a batch (PROCESS.md specifications; viability as the NK
#: process's own release limit).
RELEASE_TESTS = [
    sterility("NK final product"),
    endotoxin("NK final product"),
    mycoplasma("NK final product"),
    viability("NK final product", min_pct=70.0),
    dose_count(
        "NK final product", cells="viable NK cells", method="automated counter x CD56+ fraction"
    ),
]


protocol = Protocol(
    "nk-expansion",
    version="1.2.0",
    params=NkParams,
    description=__doc__ or "",
    inputs=[
        MaterialInput(
            name="NK cell product",
            identity_param="coi",
            din_param="din",
            material="nk_cells",
            label=coi_barcode,
        )
    ],
    materials=[
        Material("IL-2 + IL-15", per_batch(volume_ml=2.0)),
        Material(
            "CryoStor CS10",
            per_param(
                lambda p: p.final_volume_ml * NK_DMSO_PCT / 10.0,
                unit="mL",
                basis="final volume x DMSO % / 10 %",
            ),
        ),
        Material("cryobag 250 mL", per_batch(count=1)),
    ],
    containers=NK_CONTAINERS,
    release_tests=RELEASE_TESTS,
    product="NK cells, expanded",
)


@protocol.step(unit_procedure="Receipt", resume="rerun", expected_duration_h=0.1)
async def receive(run: Run[NkParams], scanner: BarcodeScanner) -> None:
    """Scan the NK-cell product bag; its chain-of-identity id must match the order."""
    label = await scanner.scan("NK cell product")
    run.identity.expect(label, run.params.coi, decode=parse_coi_barcode)
    await run.containers.create("NK cell product")


@protocol.step(unit_procedure="Culture", resume="operator", max_hold_h=12, expected_duration_h=0.3)
async def seed_and_stimulate(run: Run[NkParams], bioreactor: Bioreactor) -> None:
    """Seed the whole product with medium and stimulate the NK cells with IL-2 and IL-15.

    Run again after a controller crash, it seeds only an empty bag and stimulates once.
    """
    resumed = run.resumed is not None
    if not resumed or (await bioreactor.read_process_values()).culture_volume_ml <= 0:
        await bioreactor.set_setpoints(
            Setpoints(
                temperature_c=37.0,
                ph=7.3,
                dissolved_oxygen_pct=40.0,
                rocking_rate_rpm=8.0,
                rocking_angle_deg=6.0,
            )
        )
        await handoff(
            run,
            "NK cell product",
            name="connect NK cell product bag",
            to=Place(kind="instrument", name="bioreactor"),
            instruction="Sterile-weld the NK-cell product bag to the bioreactor's inlet line "
            "and open the clamp.",
            timeout_h=2,
        )
        await bioreactor.seed("NK cell product", 49.0, 250.0)
    await run.materials.add(bioreactor, "IL-2 + IL-15", kind="activation", target_cells="NK")


@protocol.step(
    unit_procedure="Culture",
    resume="reconcile",
    max_duration_h=22 * 24,
    expected_duration_h=lambda p: p.culture_days * 24,
    checks={
        "viability": Spec(min=75, unit="%"),
        "glucose": Spec(min=2, unit="mmol/L", policy="continue"),
    },
)
async def expand(run: Run[NkParams], bioreactor: Bioreactor, counter: CellCounter) -> None:
    """Every two days: count; feed cytokine medium while the bag has room, then perfuse."""
    periods = run.every(hours=48, times=run.params.culture_days // 2, checkpoint="periods done")
    async for period in periods:
        count = await counter.count(await bioreactor.draw_sample(1.0))
        run.check("viability", count.viability_pct)
        values = await bioreactor.read_process_values()
        run.check("glucose", values.glucose_mmol_per_l)
        if values.culture_volume_ml + run.params.feed_ml <= 1000:
            await feed_once(run, bioreactor, run.params.feed_ml, key=f"feed {period}")
        else:  # full bag: exchange medium, one volume a day per 2e6 NK cells/mL
            rate = values.culture_volume_ml * min(count.viable_cells_per_ml / 2e6, 4.0)
            await bioreactor.set_setpoints(Setpoints(perfusion_rate_ml_per_day=round(rate, -1)))


@protocol.step(
    unit_procedure="Harvest",
    resume="operator",
    expected_duration_h=2.5,
    checks={
        "NK cells (CD56+CD3-)": Spec(min=80, unit="% of viable"),
        "residual T cells (CD3+)": Spec(max=5, unit="% of viable"),
        "viability at release": Spec(min=70, unit="%"),
        "dose": Spec(min=80, max=120, unit="% of target dose"),
    },
)
async def harvest_and_formulate(
    run: Run[NkParams],
    bioreactor: Bioreactor,
    processor: CellProcessor,
    counter: CellCounter,
    cytometer: FlowCytometer,
) -> None:
    """Harvest, wash, check NK purity and residual T cells, and fill the dose.

    Run again after a controller crash, it harvests only a bag that still holds the
    culture and re-attaches to the wash and fill programs with the inputs decided first.
    """
    p = run.params
    if run.value_or("washed harvest volume", None) is None:
        await _harvest_and_decide_wash(run, bioreactor, processor, counter)
    input_ml = run.value("washed harvest volume")
    await processor.run_program(
        "WASH_CONCENTRATE",
        ProgramInputs(
            source_container_id="NK harvest",
            output_container_id="NK washed",
            parameters={"final_volume_ml": 50.0, "input_volume_ml": input_ml},
        ),
        supervisory_task_id=f"{run.run_id}:wash",
    )
    phenotype = await cytometer.immunophenotype(
        await processor.draw_sample("NK washed", 0.5), panel="NK phenotype"
    )
    run.check("NK cells (CD56+CD3-)", phenotype.cd56_pct)
    run.check("residual T cells (CD3+)", phenotype.cd3_pct)
    target = p.dose_nk_per_kg * p.patient_weight_kg
    if run.value_or("product volume", None) is None:
        count = await counter.count(await processor.draw_sample("NK washed", 0.5))
        nk_per_ml = count.viable_cells_per_ml * phenotype.cd56_pct / 100
        run.set_value("product volume", min(target / nk_per_ml, 48.0), unit="mL")
    product_ml = run.value("product volume")
    await run.materials.use("cryobag 250 mL", into="NK final product")
    await run.materials.use("CryoStor CS10", into="NK final product")
    await processor.run_program(
        "FORMULATE_FILL",
        ProgramInputs(
            source_container_id="NK washed",
            output_container_id="NK final product",
            parameters={
                "product_volume_ml": product_ml,
                "final_volume_ml": p.final_volume_ml,
                "dmso_pct": NK_DMSO_PCT,
            },
        ),
        supervisory_task_id=f"{run.run_id}:formulate",
    )
    final = await counter.count(await processor.draw_sample("NK final product", 1.0))
    run.check("viability at release", final.viability_pct)
    dose = final.viable_cells_per_ml * phenotype.cd56_pct / 100 * (p.final_volume_ml - 1.0)
    run.set_value("dose", dose, unit="viable NK cells")
    # what the release tests normalise by: endotoxin per kg, the count as % of target
    run.set_value("final volume ml", p.final_volume_ml - 1.0, unit="mL")
    run.set_value("target dose cells", target, unit="viable NK cells")
    run.check("dose", 100 * dose / target)


@protocol.step(unit_procedure="Harvest", resume="rerun", max_hold_h=1, expected_duration_h=0.2)
async def check_label(run: Run[NkParams], printer: LabelPrinter) -> None:
    """Print the final product bag's label and verify a scan of it; two people read its
    chain-of-identity id: it must match this order before the bag is frozen (the cells
    are in DMSO: within half an hour)."""
    p = run.params
    now = run.now().astimezone(UTC).replace(second=0, microsecond=0)
    await print_label(
        run,
        printer,
        "NK final product",
        product="NK cells, for autologous use",
        expires=now + timedelta(days=p.shelf_life_days),
        volume_ml=p.final_volume_ml - 1.0,
        cells=f"{run.value('dose'):.2e} viable NK cells",
        facility="Cellauto Pilot Plant, 1 Example Way, Springfield",
    )
    await run.identity.confirm_label(
        "final product label",
        expected=run.params.coi,
        instruction="Read the chain-of-identity id printed on the NK final product bag label.",
        timeout_h=0.5,
    )


@protocol.step(
    unit_procedure="Cryopreservation",
    resume="reconcile",
    max_hold_h=1,
    expected_duration_h=2.5,
    checks={
        "final sample temperature": Spec(max=-80, unit="°C"),
        "storage temperature": Spec(max=-150, unit="°C"),
    },
)
async def freeze_and_store(
    run: Run[NkParams], freezer: ControlledRateFreezer, storage: CryoStorage
) -> None:
    """Freeze at -1 °C/min (uncompensated; NK bags are small) and store below -150 °C."""
    profile = FreezeProfile(
        name="NK -1 °C/min",
        segments=[
            Ramp(rate_c_per_min=-1.0, end_temperature_c=-50.0),
            Ramp(rate_c_per_min=-10.0, end_temperature_c=-90.0),
            Hold(duration_min=30),
        ],
    )
    state = (await freezer.status()).state if run.resumed is not None else "idle"
    if state in ("running", "complete"):  # resumed after the start: follow that freeze
        async for _reading in freezer.temperatures(interval_s=60):
            pass
        result = await freezer.result()
    else:
        await handoff(
            run,
            "NK final product",
            name="load the freezer",
            to=Place(kind="instrument", name="freezer"),
            instruction="Place the NK final product bag in the freezer chamber with the "
            "sample probe on it and close the door.",
            timeout_h=0.5,
        )
        result = await freezer.run_profile(profile, ["NK final product"])
    run.check("final sample temperature", result.final_sample_temperature_c)
    conditions = await storage.conditions()
    run.check("storage temperature", conditions.temperature_c)
    stored = {item.container_id for item in await storage.inventory()}
    if "NK final product" not in stored:  # not stored before a crash
        await handoff(
            run,
            "NK final product",
            name="transfer into LN2",
            to=Place(kind="storage", name="storage", position=STORAGE_POSITION),
            instruction="Carry the frozen bag from the freezer to the LN2 storage in a dry "
            f"shipper and place it in {STORAGE_POSITION}.",
            verify=True,
            timeout_h=0.5,
            via="dry shipper",
        )
    await store_checked(run, storage, "NK final product", STORAGE_POSITION, name="storage")


async def _harvest_and_decide_wash(
    run: Run[NkParams], bioreactor: Bioreactor, processor: CellProcessor, counter: CellCounter
) -> None:
    """Harvest (unless done before a crash) and decide the volume to wash."""
    p = run.params
    volume_ml = (await bioreactor.read_process_values()).culture_volume_ml
    if volume_ml > 0:  # not harvested yet
        run.set_value("culture volume at harvest", volume_ml, unit="mL")
        await bioreactor.harvest("NK harvest")
    harvest_ml = run.value("culture volume at harvest")
    count = await counter.count(await processor.draw_sample("NK harvest", 1.0))
    # wash what the dose and QC need (twice the dose, within the washer's 4e9 cells)
    wanted_cells = min(3 * p.dose_nk_per_kg * p.patient_weight_kg, 3.5e9)
    input_ml = min(wanted_cells / count.total_cells_per_ml, harvest_ml - 1.0)
    run.set_value("washed harvest volume", input_ml, unit="mL")
