"""Allogeneic NK-cell expansion: cytokine-driven, no selection, no gene transfer.

A CD56-enriched NK-cell product from a healthy donor is received, expanded for two
weeks in a rocking bag with IL-2/IL-15, washed, dosed by viable NK cells per kg of the
recipient, filled in two 50 mL bags, frozen with two retained QC vials and stored; a
retained vial is thawed and counted. A different process from CAR-T on the same API
and the same line: other materials, other activation, other release specifications
(NK purity, residual T cells).
"""

from __future__ import annotations

from datetime import UTC, timedelta
from functools import partial
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
    standard_freeze_profile,
)
from cellauto.instruments.cryo_storage import CryoStorage, StoragePosition
from cellauto.instruments.label_printer import LabelPrinter
from cellauto.instruments.liquid_handler import LiquidHandler
from cellauto.instruments.materials import Sample
from cellauto.instruments.thawer import Thawer
from cellauto.protocols.compendial import dose_count, endotoxin, mycoplasma, sterility, viability
from cellauto.protocols.counting import count_retained_vial, counted, tube_sample
from cellauto.protocols.handoff import handoff, store_checked
from cellauto.protocols.labels import print_label
from cellauto.protocols.measures import (
    count_flags,
    recovery,
    wash_plan,
)
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
    final_volume_ml: float = Field(100.0, ge=20, le=250, description="all bags together")
    bags: int = Field(2, ge=1, le=4, description="final product bags the dose is filled in")
    shelf_life_days: int = Field(365, ge=1, le=3650, description="frozen, from the label")


def final_bags(p: NkParams) -> list[str]:
    """The final product bags' container keys (as the processor names its outputs)."""
    if p.bags == 1:
        return ["NK final product"]
    return [f"NK final product {n}" for n in range(1, p.bags + 1)]


def nk_containers(p: NkParams) -> list[ContainerPlan]:
    """The containers of a batch: the product received, the culture, harvest, wash, the
    final bags."""
    return [
        ContainerPlan(
            key="NK cell product", container_type="NK cell product", product_code="S9010"
        ),
        ContainerPlan(
            key="culture bag", container_type="culture bag", parents=("NK cell product",)
        ),
        ContainerPlan(key="NK harvest", container_type="harvest bag", parents=("culture bag",)),
        ContainerPlan(key="NK washed", container_type="washed product", parents=("NK harvest",)),
        ContainerPlan(
            key="NK final product",
            container_type="final product",
            product_code="S1235",
            parents=("NK washed",),
            final=True,
            count=p.bags,
        ),
        ContainerPlan(key="QC sample", container_type="QC sample", parents=(final_bags(p)[0],)),
        ContainerPlan(
            key="count",
            container_type="QC sample",
            product_code="S9020",
            parents=("QC sample",),
            count=2,
        ),
        ContainerPlan(
            key="QC retain", container_type="retained sample", parents=("QC sample",), count=2
        ),
    ]


QC_VOLUME_ML = 1.5  # the liquid handler draws it from the first bag for release testing
COUNT_TUBES = ["count 1", "count 2"]
COUNT_TUBE_UL = 200.0
RETAINS = ["QC retain 1", "QC retain 2"]  # frozen with the bags; 1 thawed here, 2 for QC
RETAIN_UL = 500.0
STORAGE_RACK = "B"  # the batch's bags go in rack B, box 1, slots 1..n
#: Washer capacity (PROCESS.md) and the margin on what the dose and QC need.
WASH_CAPACITY_CELLS = 4e9
WASH_MARGIN = 3.0


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
    version="1.3.0",
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
        Material(
            "cryobag 250 mL",
            per_param(lambda p: p.bags, unit="each", basis="one per final product bag"),
        ),
    ],
    containers=nk_containers,
    release_tests=RELEASE_TESTS,
    product="NK cells, allogeneic, expanded",
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
        count = await counted(
            run, f"period {period} count", lambda: bioreactor.draw_sample(1.0), counter
        )
        run.check("viability", count.viability_pct, flags=count_flags(count))
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
        "minimum harvest": Spec(min=20, unit="% of target dose", policy="abort"),
        "wash within capacity": Spec(max=0, unit="limit flags", policy="continue"),
        "wash recovery": Spec(min=70, unit="%", policy="continue"),
        # release specifications continue: the product is frozen and QA disposes of it
        "NK cells (CD56+CD3-)": Spec(min=80, unit="% of viable", policy="continue"),
        "residual T cells (CD3+)": Spec(max=5, unit="% of viable", policy="continue"),
    },
)
async def harvest_and_formulate(
    run: Run[NkParams],
    bioreactor: Bioreactor,
    processor: CellProcessor,
    counter: CellCounter,
    cytometer: FlowCytometer,
) -> None:
    """Harvest, wash what the dose needs (the rest to waste), check NK purity and residual
    T cells, and fill the dose in the final bags.

    Run again after a controller crash, it harvests only a bag that still holds the
    culture and re-attaches to the wash and fill programs with the inputs decided first.
    """
    p = run.params
    if run.value_or("washed harvest volume", None) is None:
        await _harvest_and_decide_wash(run, bioreactor, processor, counter)
    input_ml = run.value("washed harvest volume")
    washed = await processor.run_program(
        "WASH_CONCENTRATE",
        ProgramInputs(
            source_container_id="NK harvest",
            output_container_id="NK washed",
            parameters={"final_volume_ml": 50.0, "input_volume_ml": input_ml},
        ),
        supervisory_task_id=f"{run.run_id}:wash",
    )
    run.check(
        "wash within capacity",
        float(len(washed.limit_flags)),
        flags=[flag.message for flag in washed.limit_flags],
    )
    not_washed = run.value("harvest cells not washed")
    await run.containers.dispose(
        "NK harvest", reason=f"unwashed rest of the harvest ({not_washed:.3g} viable cells)"
    )
    phenotype = await cytometer.immunophenotype(
        await processor.draw_sample("NK washed", 0.5), panel="NK phenotype"
    )
    run.check("NK cells (CD56+CD3-)", phenotype.cd56_pct)
    run.set_value("NK share at release", phenotype.cd56_pct, unit="% of viable")
    run.check("residual T cells (CD3+)", phenotype.cd3_pct)
    target = p.dose_nk_per_kg * p.patient_weight_kg
    if run.value_or("product volume", None) is None:
        count = await counted(
            run,
            "dose count",
            lambda: processor.draw_sample("NK washed", 0.5),
            counter,
            expected_per_ml=run.value("harvest total cells per mL") * input_ml / 50.0,
        )
        before = run.value("harvest viable cells per mL") * input_ml
        measured = recovery(max(before, 1.0), count.viable_cells_per_ml * washed.output_volume_ml)
        run.check("wash recovery", measured.pct, flags=[*measured.flags, *count_flags(count)])
        nk_per_ml = count.viable_cells_per_ml * phenotype.cd56_pct / 100
        product_ml = min(target / nk_per_ml, 48.0)
        run.set_value(
            "expected release cells per mL",
            count.total_cells_per_ml * product_ml / p.final_volume_ml,
            unit="cells/mL",
        )
        run.set_value("product volume", product_ml, unit="mL")
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
                "bag_count": p.bags,
            },
        ),
        supervisory_task_id=f"{run.run_id}:formulate",
    )


async def _tube(run: Run[NkParams], tube: str, volume_ul: float) -> Sample:
    return tube_sample(run, tube, volume_ul / 1000)


@protocol.step(
    unit_procedure="Harvest",
    resume="operator",
    max_hold_h=1,
    expected_duration_h=0.4,
    checks={
        # release specifications continue: the product is frozen and QA disposes of it
        "viability at release": Spec(min=70, unit="%", policy="continue"),
        "dose": Spec(min=80, max=120, unit="% of target dose", policy="continue"),
    },
)
async def prepare_release_samples(
    run: Run[NkParams], liquid_handler: LiquidHandler, counter: CellCounter
) -> None:
    """Aliquot the QC sample on the liquid handler: two counting tubes and two retain
    cryovials (frozen with the bags); count the tubes and compute the dose from their mean."""
    p = run.params
    qc_bag = final_bags(p)[0]
    if not run.checkpoint_or("release samples aliquoted", False):
        await liquid_handler.transfer(qc_bag, "QC sample", QC_VOLUME_ML * 1000)
        await liquid_handler.aliquot("QC sample", COUNT_TUBES, COUNT_TUBE_UL)
        await liquid_handler.aliquot("QC sample", RETAINS, RETAIN_UL)
        run.set_checkpoint("release samples aliquoted", True)
    by = "liquid_handler"
    await run.containers.transfer(qc_bag, "QC sample", volume_ml=QC_VOLUME_ML, by=by)
    for key, volume_ul in [(t, COUNT_TUBE_UL) for t in COUNT_TUBES] + [
        (v, RETAIN_UL) for v in RETAINS
    ]:
        await run.containers.transfer("QC sample", key, volume_ml=volume_ul / 1000, by=by)
    expected = run.value("expected release cells per mL")
    counts = [
        await counted(
            run,
            f"release count {n}",
            partial(_tube, run, tube, COUNT_TUBE_UL),
            counter,
            expected_per_ml=expected,
        )
        for n, tube in enumerate(COUNT_TUBES, start=1)
    ]
    viable_per_ml = sum(c.viable_cells_per_ml for c in counts) / len(counts)
    viability = sum(c.viability_pct for c in counts) / len(counts)
    run.set_value("release viable cells per mL", viable_per_ml, unit="cells/mL")
    run.set_value(
        "retained vial pre-freeze viable cells", viable_per_ml * RETAIN_UL / 1000, unit="cells"
    )
    run.check("viability at release", viability, flags=count_flags(*counts))
    nk_pct = run.value("NK share at release")
    infused_ml = p.final_volume_ml - QC_VOLUME_ML
    dose = viable_per_ml * nk_pct / 100 * infused_ml
    run.set_value("dose", dose, unit="viable NK cells")
    # what the release tests normalise by: endotoxin per kg, the count as % of target
    run.set_value("final volume ml", infused_ml, unit="mL")
    target = p.dose_nk_per_kg * p.patient_weight_kg
    run.set_value("target dose cells", target, unit="viable NK cells")
    run.check("dose", 100 * dose / target, flags=count_flags(*counts))


@protocol.step(unit_procedure="Harvest", resume="rerun", max_hold_h=1, expected_duration_h=0.2)
async def check_label(run: Run[NkParams], printer: LabelPrinter) -> None:
    """Print each final product bag's label and verify a scan of it; two people read its
    chain-of-identity id: it must match this order before the bags are frozen (the cells
    are in DMSO: within half an hour). The product is allogeneic (a healthy donor's NK
    cells for this recipient): the label says so."""
    p = run.params
    bags = final_bags(p)
    now = run.now().astimezone(UTC).replace(second=0, microsecond=0)
    for bag in bags:
        await print_label(
            run,
            printer,
            bag,
            product="NK cells, allogeneic",
            expires=now + timedelta(days=p.shelf_life_days),
            volume_ml=round((p.final_volume_ml - QC_VOLUME_ML) / len(bags), 1),
            cells=f"{run.value('dose') / len(bags):.2e} viable NK cells",
            facility="Cellauto Pilot Plant, 1 Example Way, Springfield",
        )
    await run.identity.confirm_label(
        "final product label",
        expected=run.params.coi,
        instruction="Read the chain-of-identity id printed on the NK final product bag label.",
        timeout_h=0.5,
    )


def freeze_profile(p: NkParams) -> FreezeProfile:
    """-1 °C/min with heat-of-fusion compensation for each bag's fill, then to -90 °C."""
    return standard_freeze_profile(
        heat_of_fusion_compensation=True, final_hold_min=30, fill_ml=p.final_volume_ml / p.bags
    )


@protocol.step(
    unit_procedure="Cryopreservation",
    resume="reconcile",
    max_hold_h=1,
    expected_duration_h=2.5,
    checks={
        "cooling rate through phase change": Spec(
            min=-2.0, max=-0.5, unit="°C/min", policy="continue"
        ),
        "final sample temperature": Spec(max=-80, unit="°C"),
        "storage temperature": Spec(max=-150, unit="°C"),
    },
)
async def freeze_and_store(
    run: Run[NkParams], freezer: ControlledRateFreezer, storage: CryoStorage
) -> None:
    """Freeze the bags at -1 °C/min with heat-of-fusion compensation and store them below
    -150 °C."""
    bags = final_bags(run.params)
    state = (await freezer.status()).state if run.resumed is not None else "idle"
    if state in ("running", "complete"):  # resumed after the start: follow that freeze
        async for _reading in freezer.temperatures(interval_s=60):
            pass
        result = await freezer.result()
    else:
        for bag in bags:
            await handoff(
                run,
                bag,
                name="load the freezer",
                key=bag if len(bags) > 1 else None,
                to=Place(kind="instrument", name="freezer"),
                instruction=f"Place the {bag} bag in the freezer chamber with the sample "
                "probe on the first bag and close the door.",
                timeout_h=0.5,
            )
        result = await freezer.run_profile(freeze_profile(run.params), [*bags, *RETAINS])
    if result.cooling_rate_through_phase_change_c_per_min is not None:
        run.check(
            "cooling rate through phase change",
            result.cooling_rate_through_phase_change_c_per_min,
        )
    run.check("final sample temperature", result.final_sample_temperature_c)
    conditions = await storage.conditions()
    run.check("storage temperature", conditions.temperature_c)
    for slot, bag in enumerate(bags, start=1):
        position = StoragePosition(rack=STORAGE_RACK, box=1, slot=slot)
        stored = {item.container_id for item in await storage.inventory()}
        if bag not in stored:  # not stored before a crash
            await handoff(
                run,
                bag,
                name="transfer into LN2",
                key=bag if len(bags) > 1 else None,
                to=Place(kind="storage", name="storage", position=position),
                instruction="Carry the frozen bag from the freezer to the LN2 storage in a "
                f"dry shipper and place it in {position}.",
                verify=True,
                timeout_h=0.5,
                via="dry shipper",
            )
        await store_checked(run, storage, bag, position, name="storage")


async def _harvest_and_decide_wash(
    run: Run[NkParams], bioreactor: Bioreactor, processor: CellProcessor, counter: CellCounter
) -> None:
    """Harvest (unless done before a crash), count, check there is enough for a product
    (below 20 % of the dose: a manufacturing failure, aborted) and decide the volume to
    wash: what the dose and QC need (x WASH_MARGIN), within the washer's capacity."""
    p = run.params
    volume_ml = (await bioreactor.read_process_values()).culture_volume_ml
    if volume_ml > 0:  # not harvested yet
        run.set_value("culture volume at harvest", volume_ml, unit="mL")
        await bioreactor.harvest("NK harvest")
    count = await counted(
        run, "harvest count", lambda: processor.draw_sample("NK harvest", 1.0), counter
    )
    drawn_ml = 1.0 if count.dilution == 1.0 else 2.0  # a recount drew a second sample
    harvest_ml = run.value("culture volume at harvest") - drawn_ml
    viable_per_ml = count.viable_cells_per_ml
    run.set_value("harvest viable cells per mL", viable_per_ml, unit="cells/mL")
    run.set_value("harvest total cells per mL", count.total_cells_per_ml, unit="cells/mL")
    target = p.dose_nk_per_kg * p.patient_weight_kg
    run.check(
        "minimum harvest", 100.0 * viable_per_ml * harvest_ml / target, flags=count_flags(count)
    )
    plan = wash_plan(count.total_cells_per_ml, harvest_ml, capacity_cells=WASH_CAPACITY_CELLS)
    input_ml = min(harvest_ml, plan.input_volume_ml, WASH_MARGIN * target / viable_per_ml)
    run.set_value("harvest cells not washed", viable_per_ml * (harvest_ml - input_ml), unit="cells")
    run.set_value("washed harvest volume", input_ml, unit="mL")


@protocol.step(
    unit_procedure="QC",
    resume="operator",
    expected_duration_h=0.3,
    checks={
        "post-thaw viability": Spec(min=60, unit="%", policy="continue"),
        "post-thaw viable recovery": Spec(min=50, unit="%", policy="continue"),
    },
)
async def test_retained_vial(run: Run[NkParams], thawer: Thawer, counter: CellCounter) -> None:
    """Thaw the first retained QC vial (frozen with the bags) and count it: the post-thaw
    viability and the viable cells recovered against the vial's pre-freeze count. Out of
    specification is a deviation for QA's disposition (the product stays frozen)."""
    await count_retained_vial(run, thawer, counter, RETAINS[0], RETAIN_UL)
