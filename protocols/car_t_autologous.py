"""Autologous CAR-T: apheresis receipt to cryostorage.

Receipt with a chain-of-identity scan, CD4/CD8 enrichment, activation, lentiviral
transduction, expansion with daily counts and density-driven feeding and perfusion,
harvest, wash and concentrate, formulation to a CAR+ viable dose computed from
patient weight, controlled-rate freezing and storage in vapour-phase LN2. Default
specifications from PROCESS.md.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, timedelta
from functools import partial
from typing import Annotated, cast

import anyio

from cellauto import (
    Field,
    Material,
    MaterialInput,
    Params,
    Protocol,
    Run,
    SimDefault,
    Spec,
    measured,
    per_batch,
    per_param,
)
from cellauto.errors import InstrumentError
from cellauto.identity import ContainerPlan, coi_barcode, parse_coi_barcode
from cellauto.instruments import (
    BarcodeScanner,
    Bioreactor,
    CellCount,
    CellCounter,
    Setpoints,
)
from cellauto.instruments.cell_processor import CellProcessor, ProgramInputs
from cellauto.instruments.controlled_rate_freezer import (
    ControlledRateFreezer,
    FreezeProfile,
    standard_freeze_profile,
)
from cellauto.instruments.cryo_storage import CryoStorage, StoragePosition
from cellauto.instruments.dry_shipper import DryShipper
from cellauto.instruments.flow_cytometer import FlowCytometer, Immunophenotype
from cellauto.instruments.label_printer import LabelPrinter
from cellauto.instruments.liquid_handler import LiquidHandler
from cellauto.instruments.materials import Sample
from cellauto.instruments.thawer import Thawer
from cellauto.protocols import ReleaseTest
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
from cellauto.protocols.reconcile import feed_once, measure_once
from cellauto.protocols.shipment import carry
from cellauto.records.material_payloads import Place
from cellauto.site.materials_read import LotRow


class CarTParams(Params):
    coi: Annotated[str, SimDefault("W123426A1B2C3")] = Field(
        pattern=r"^[A-Z0-9]{5}[0-9]{2}[A-Z0-9]{6}$",
        description="ISBT 128 chain-of-identity id of this patient's therapy",
    )
    din: Annotated[Din, SimDefault("W123426000042")] = Field(
        description="ISBT 128 DIN on the apheresis bag's label (13 characters, or 14 read "
        "by eye with the check character)"
    )
    patient_weight_kg: Annotated[float, SimDefault(70.0)] = Field(
        gt=0, le=250, description="for the dose"
    )
    dose_car_t_per_kg: float = Field(2.0e6, gt=0, le=1e8, description="CAR+ viable T cells/kg")
    max_dose_car_t: float = Field(2.0e8, gt=0, description="label maximum per infusion")
    expansion_days: int = Field(9, ge=7, le=12, description="days from activation to harvest")
    max_expansion_days: int = Field(
        12, ge=7, le=14, description="a poor expander's culture is extended up to this day"
    )
    moi: float = Field(5.0, ge=1, le=20, description="lentiviral multiplicity of infection")
    seed_viable_cells: float = Field(1.0e8, ge=1e7, le=1e9, description="cells put in the bag")
    seed_volume_ml: float = Field(300.0, ge=50, le=500)
    max_culture_volume_ml: float = Field(1000.0, ge=300, le=1000)
    perfusion_from_cells_per_ml: float = Field(2.0e6, gt=0, description="PROCESS.md")
    wash_final_volume_ml: float = Field(20.0, ge=10, le=200, description="PROCESS.md: ~20 mL")
    final_volume_ml: float = Field(70.0, ge=20, le=100, description="infusion bag volume")
    dmso_pct: float = Field(7.5, ge=5, le=9, description="final DMSO from CryoStor CS10")
    bags: int = Field(1, ge=1, le=4, description="final product bags the dose is filled in")
    shelf_life_days: int = Field(365, ge=1, le=3650, description="frozen, from the label")


def final_bags(p: CarTParams) -> list[str]:
    """The final product bags' container keys (as the processor names its outputs)."""
    return (
        ["final product"] if p.bags == 1 else [f"final product {n}" for n in range(1, p.bags + 1)]
    )


def car_t_containers(p: CarTParams) -> list[ContainerPlan]:
    """The containers of a batch, from the apheresis bag to the final product bags."""
    return [
        ContainerPlan(key="apheresis bag", container_type="apheresis bag"),
        ContainerPlan(
            key="enriched product", container_type="selected fraction", parents=("apheresis bag",)
        ),
        ContainerPlan(
            key="culture bag", container_type="culture bag", parents=("enriched product",)
        ),
        ContainerPlan(key="harvest bag", container_type="harvest bag", parents=("culture bag",)),
        ContainerPlan(
            key="washed product", container_type="washed product", parents=("harvest bag",)
        ),
        ContainerPlan(
            key="final product",
            container_type="final product",
            parents=("washed product",),
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
            key="release plate",
            container_type="QC sample",
            product_code="S9021",
            parents=("QC sample",),
        ),
        ContainerPlan(
            key="QC retain", container_type="retained sample", parents=("QC sample",), count=2
        ),
    ]


#: The release tests of a batch (PROCESS.md specifications; endotoxin per kg of the
#: patient through the infused volume, the cell count as a percentage of the target dose).
RELEASE_TESTS = [
    sterility("final product"),
    endotoxin("final product"),
    mycoplasma("final product"),
    ReleaseTest(
        name="vector copy number",
        method="ddPCR (WPRE/RPP30)",
        unit="copies/transduced cell",
        spec=Spec(max=5.0, unit="copies/transduced cell"),
        sample="final product",
        days_to_result=3,
    ),
    ReleaseTest(
        name="identity (CAR+)",
        method="flow cytometry (CAR detection reagent)",
        unit="%",
        spec=Spec(min=10.0, unit="%"),
        sample="final product",
        days_to_result=1,
    ),
    viability("final product", min_pct=80.0),
    ReleaseTest(
        name="post-thaw viability",
        method="trypan blue (automated counter), thawed retained QC vial",
        unit="%",
        spec=Spec(min=70.0, unit="%"),
        sample="QC retain 2",  # the second retained vial, frozen with the bags
        days_to_result=2,
    ),
    dose_count(
        "final product", cells="CAR+ viable cells", method="automated counter x CAR+ fraction"
    ),
]


protocol = Protocol(
    "car-t-autologous",
    version="1.3.0",
    params=CarTParams,
    description=__doc__ or "",
    inputs=[
        MaterialInput(
            name="apheresis bag",
            identity_param="coi",
            din_param="din",
            material="apheresis",
            label=coi_barcode,
            description="fresh leukapheresis product, ISBT 128 DIN and chain-of-identity label",
        )
    ],
    materials=[
        Material("CliniMACS tubing set", per_batch(count=1)),
        Material(
            "TexMACS medium",
            per_param(
                lambda p: p.max_culture_volume_ml * (1 + 2 * (p.expansion_days - 4)),
                unit="mL",
                basis="the culture's supply: the bag filled to its maximum, then perfusion"
                " of about two bag volumes a day from day 5",
            ),
        ),
        Material("CD3/CD28 activator", per_batch(volume_ml=3.0)),
        Material(
            "CAR lentiviral vector",
            measured(
                lambda p, lot, values: values["seeded viable cells"] * p.moi / _titer(lot),
                unit="mL",
                plan=lambda p, lot: p.seed_viable_cells * p.moi / _titer(lot),
                basis="seeded viable cells x MOI / titer",
            ),
        ),
        Material(
            "CryoStor CS10",
            per_param(
                lambda p: p.final_volume_ml * p.dmso_pct / CRYOPROTECTANT_DMSO_PCT,
                unit="mL",
                basis="final volume x DMSO % / 10 %",
            ),
        ),
        Material(
            "cryobag 250 mL",
            per_param(lambda p: p.bags, unit="each", basis="one per final product bag"),
        ),
    ],
    containers=car_t_containers,
    release_tests=RELEASE_TESTS,
    product="CAR-T cells, autologous",
)

DAY_H = 24.0


def _titer(lot: LotRow) -> float:
    """A vector lot's functional titre (TU/mL), from its certificate of analysis."""
    return float(lot.attributes["titer_tu_per_ml"])


WASH_CAPACITY_CELLS = 4e9  # the washer's capacity (PROCESS.md)
WASH_MARGIN = 3.0  # cells washed: 3 x what the dose and QC need (losses, counting, CAR+)
WASH_RECOVERY = 0.85  # expected viable recovery of the wash (PROCESS.md: > 86-88 %)
PROJECTED_DOSE_MIN_PCT = 150.0  # below it at the planned harvest, the culture is extended
CRYOPROTECTANT_DMSO_PCT = 10.0  # CryoStor CS10
QC_VOLUME_ML = 2.5  # the liquid handler draws it from the first bag for release testing
COUNT_TUBES = ["count 1", "count 2"]
COUNT_TUBE_UL = 200.0
RELEASE_WELLS = [f"release plate:{well}" for well in ("A1", "A2", "A3", "A4")]
WELL_UL = 100.0
RETAINS = ["QC retain 1", "QC retain 2"]  # frozen with the bags; 1 thawed here, 2 for QC
RETAIN_UL = 500.0
SHIPPER_MARGIN_H = 24.0  # the dry shipper's charge must outlast the carries by a day
FACILITY = "Cellauto Pilot Plant, 1 Example Way, Springfield"
STORAGE_RACK = "A"  # the batch's bags go in rack A, box 1, slots 1..n
CULTURE_TEMPERATURE = Spec(min=36.0, max=38.0, unit="°C", description="culture temperature")


def car_t_per_ml(viable_per_ml: float, cd3_pct: float, car_pct: float) -> float:
    """CAR+ viable T cells per mL (CAR+ is a share of CD3+ T cells)."""
    return viable_per_ml * cd3_pct / 100.0 * car_pct / 100.0


# -- Receipt -------------------------------------------------------------------------------
@protocol.step(
    unit_procedure="Receipt",
    resume="rerun",
    max_hold_h=24,
    expected_duration_h=0.2,
    checks={"apheresis viability": Spec(min=80, unit="%")},
)
async def receive_apheresis(
    run: Run[CarTParams], scanner: BarcodeScanner, processor: CellProcessor, counter: CellCounter
) -> None:
    """Scan the apheresis bag: its chain-of-identity id must match this order; an operator
    scans its DIN and connects it to the processor; count it."""
    label = await scanner.scan("apheresis bag")
    run.identity.expect(label, run.params.coi, decode=parse_coi_barcode)
    await run.containers.create("apheresis bag")
    await handoff(
        run,
        "apheresis bag",
        name="connect apheresis bag",
        to=Place(kind="instrument", name="processor"),
        instruction="Sterile-weld the apheresis bag to the tubing set of the processor and "
        "open the clamp.",
        timeout_h=2,
    )
    count = await counted(
        run, "receipt count", lambda: processor.draw_sample("apheresis bag", 1.0), counter
    )
    run.check("apheresis viability", count.viability_pct, flags=count_flags(count))


# -- Selection -----------------------------------------------------------------------------
@protocol.step(
    unit_procedure="Selection",
    resume="reconcile",
    max_duration_h=8,
    max_hold_h=6,
    expected_duration_h=5,
    checks={
        "viability after enrichment": Spec(min=70, unit="%"),
        "CD3+ after enrichment": Spec(min=80, unit="%"),
    },
)
async def enrich_cd4_cd8(
    run: Run[CarTParams], processor: CellProcessor, counter: CellCounter, cytometer: FlowCytometer
) -> None:
    """Enrich CD4+ and CD8+ T cells on the closed processor; check viability and purity."""
    await run.materials.use("CliniMACS tubing set", into="enriched product")
    await processor.run_program(
        "CD4CD8_ENRICHMENT",
        ProgramInputs(source_container_id="apheresis bag", output_container_id="enriched product"),
        supervisory_task_id=f"{run.run_id}:enrich",
    )
    count = await counted(
        run, "enrichment count", lambda: processor.draw_sample("enriched product", 1.0), counter
    )
    run.check("viability after enrichment", count.viability_pct, flags=count_flags(count))
    run.set_checkpoint("enrichment total per mL", count.total_cells_per_ml)
    phenotype = await measure_once(
        run, "enrichment phenotype", lambda: processor.draw_sample("enriched product", 0.5),
        lambda sample: cytometer.immunophenotype(sample, panel="T-cell purity"), Immunophenotype,
    )  # fmt: skip
    run.check("CD3+ after enrichment", phenotype.cd3_pct)
    run.set_value("CD3+ share after enrichment", phenotype.cd3_pct, unit="%")


# -- Activation and transduction -------------------------------------------------------------
@protocol.step(
    unit_procedure="Culture", operation="Activation", resume="operator", expected_duration_h=0.5
)
async def activate(
    run: Run[CarTParams], bioreactor: Bioreactor, counter: CellCounter, processor: CellProcessor
) -> None:
    """Seed the bag with the enriched T cells at 37 °C and activate them (day 0)."""
    p = run.params
    # the medium supply bag, connected to the bioreactor for the whole culture
    await run.materials.use("TexMACS medium", into="culture bag")
    if not await _has_culture(run, bioreactor):  # after a crash: never seed twice
        await bioreactor.set_setpoints(
            Setpoints(
                temperature_c=37.0,
                ph=7.2,
                dissolved_oxygen_pct=40.0,
                rocking_rate_rpm=10.0,
                rocking_angle_deg=6.0,
                perfusion_rate_ml_per_day=0.0,
            )
        )
        count = await counted(
            run,
            "activation count",
            lambda: processor.draw_sample("enriched product", 0.5),
            counter,
            expected_per_ml=run.checkpoint_or("enrichment total per mL", None),
        )
        volume_ml = min(p.seed_viable_cells / count.viable_cells_per_ml, p.seed_volume_ml - 10)
        # recorded before the seed, so it is committed with the seed's intent
        run.set_value("seeded viable cells", volume_ml * count.viable_cells_per_ml, unit="cells")
        await bioreactor.seed("enriched product", volume_ml, p.seed_volume_ml - volume_ml)
    await run.materials.add(bioreactor, "CD3/CD28 activator", kind="activation")


async def _has_culture(run: Run[CarTParams], bioreactor: Bioreactor) -> bool:
    """In a step run again after a controller crash: whether the bag already holds a
    culture (the bioreactor knows); on a first attempt False, without asking."""
    if run.resumed is None:
        return False
    return (await bioreactor.read_process_values()).culture_volume_ml > 0


@protocol.step(
    unit_procedure="Culture",
    operation="Transduction",
    resume="operator",
    max_hold_h=30,
    expected_duration_h=24,
)
async def transduce(run: Run[CarTParams], bioreactor: Bioreactor) -> None:
    """On day 1, add the CAR lentiviral vector at the set MOI (once, whatever crashes)."""
    await run.sleep_until(run.step_started + timedelta(hours=DAY_H - 0.5))
    await run.materials.add(
        bioreactor,
        "CAR lentiviral vector",
        kind="vector",
        values={"seeded viable cells": run.value("seeded viable cells")},
        moi=run.params.moi,
    )


# -- Expansion -----------------------------------------------------------------------------
@protocol.step(
    unit_procedure="Culture",
    operation="Expansion",
    resume="reconcile",
    max_duration_h=12 * DAY_H + 12,
    expected_duration_h=lambda p: (p.expansion_days - 1) * DAY_H,
    checks={
        "daily viability": Spec(min=70, unit="%"),
        "CAR+ on day 5": Spec(min=5, unit="% of CD3+"),
        "glucose": Spec(min=2, unit="mmol/L", policy="continue"),
        "projected dose": Spec(
            min=PROJECTED_DOSE_MIN_PCT, unit="% of target dose", policy="continue"
        ),
    },
)
async def expand(
    run: Run[CarTParams], bioreactor: Bioreactor, counter: CellCounter, cytometer: FlowCytometer
) -> None:
    """Count daily; double the volume up to the bag's limit, then perfuse by density.

    On the planned last day the dose the harvest would give is projected; below 150 %
    of the target the culture is extended day by day up to ``max_expansion_days``. The
    culture temperature is watched every 15 minutes throughout.
    """
    async with anyio.create_task_group() as watch:
        watch.start_soon(watch_temperature, run, bioreactor)
        await _expand_daily(run, bioreactor, counter, cytometer)
        watch.cancel_scope.cancel()


async def watch_temperature(run: Run[CarTParams], bioreactor: Bioreactor) -> None:
    """A temperature outside 36-38 °C is a deviation (once per excursion).

    A lost connection is an alarm (a gap in the record), and the watch resumes.
    """
    inside = True
    while True:
        try:
            async for values in bioreactor.process_values(interval_s=900):
                if CULTURE_TEMPERATURE.accepts(values.temperature_c) != inside:
                    inside = not inside
                    if not inside:
                        run.check("culture temperature", values.temperature_c, CULTURE_TEMPERATURE)
        except InstrumentError as exc:
            run.alarm(f"temperature watch lost the bioreactor ({exc}); retrying in 15 min")
            await run.sleep(minutes=15)


async def _daily_count(
    run: Run[CarTParams], bioreactor: Bioreactor, counter: CellCounter, day: int
) -> CellCount:
    """Sample and count; a lost instrument is retried three times, 30 min apart."""
    for attempt in range(1, 5):
        try:
            return await counted(
                run, f"day {day} count", lambda: bioreactor.draw_sample(1.0), counter
            )
        except InstrumentError as exc:
            if attempt == 4:
                raise
            run.alarm(f"daily count failed ({exc}); retry {attempt} of 3 in 30 min")
            await run.sleep(minutes=30)
    raise AssertionError("unreachable")


async def _expand_daily(
    run: Run[CarTParams], bioreactor: Bioreactor, counter: CellCounter, cytometer: FlowCytometer
) -> None:
    """Day 2 to the last day, each a day after the step's start (``run.every``: after a
    controller crash the days done are not repeated); a feed already given before a crash
    is not given again (``feed_once``: the bioreactor's volume tells)."""
    p = run.params
    last = max(p.max_expansion_days, p.expansion_days)
    days = cast(
        AsyncGenerator[int, None],
        run.every(hours=DAY_H, times=last - 1, checkpoint="expansion days done"),
    )
    async with aclosing(days):
        async for done in days:
            day = done + 1  # the step starts on day 1
            viable_cells = await _culture_day(run, bioreactor, counter, cytometer, day)
            if day < p.expansion_days:
                continue
            projected = _projected_dose_pct(run, viable_cells)
            if day == p.expansion_days:
                run.check("projected dose", projected)
            if projected >= PROJECTED_DOSE_MIN_PCT or day >= last:
                run.set_value("culture days", day, unit="days")
                return


def target_dose(p: CarTParams) -> float:
    """CAR+ viable T cells for this patient: per kg, capped at the label maximum."""
    return min(p.dose_car_t_per_kg * p.patient_weight_kg, p.max_dose_car_t)


def _car_share(run: Run[CarTParams]) -> float:
    """CAR+ viable T cells per viable cell, from the day-5 phenotype and the purity."""
    car = run.value_or("CAR+ on day 5", 30.0)
    cd3 = run.value_or("CD3+ share after enrichment", 95.0)
    return max(float(car) / 100.0 * float(cd3) / 100.0, 1e-3)


def _projected_dose_pct(run: Run[CarTParams], viable_cells: float) -> float:
    """The dose (% of target) a harvest of ``viable_cells`` would fill: CAR+ cells after
    the wash, of which the formulation can use what fits in the product volume."""
    p = run.params
    usable = (p.wash_final_volume_ml - 2.5) / p.wash_final_volume_ml
    car_cells = viable_cells * _car_share(run) * WASH_RECOVERY * usable
    return 100.0 * car_cells / target_dose(p)


async def _culture_day(
    run: Run[CarTParams],
    bioreactor: Bioreactor,
    counter: CellCounter,
    cytometer: FlowCytometer,
    day: int,
) -> float:
    """One day of culture: count, check, phenotype on day 5, feed or perfuse; returns
    the viable cells in the bag."""
    p = run.params
    count = await _daily_count(run, bioreactor, counter, day)
    run.check("daily viability", count.viability_pct, flags=count_flags(count))
    values = await bioreactor.read_process_values()
    run.check("glucose", values.glucose_mmol_per_l)
    if day == 5:
        phenotype = await measure_once(
            run, f"day {day} phenotype", lambda: bioreactor.draw_sample(1.0),
            lambda sample: cytometer.immunophenotype(sample, panel="CAR in-process"),
            Immunophenotype,
        )  # fmt: skip
        run.check("CAR+ on day 5", phenotype.car_pct)
        run.set_value("CAR+ on day 5", phenotype.car_pct, unit="% of CD3+")
    density = count.viable_cells_per_ml
    room_ml = p.max_culture_volume_ml - values.culture_volume_ml
    if room_ml > 10 and density > 0.8e6:
        feed_ml = min(values.culture_volume_ml, room_ml)
        await feed_once(run, bioreactor, feed_ml, key=f"feed day {day}")
    elif room_ml <= 10 and density >= p.perfusion_from_cells_per_ml:
        # one bag volume a day per 2e6 cells/mL, capped at 4 volumes a day
        volumes = min(density / p.perfusion_from_cells_per_ml, 4.0)
        rate = round(volumes * values.culture_volume_ml, -1)
        await bioreactor.set_setpoints(Setpoints(perfusion_rate_ml_per_day=rate))
    return count.viable_cells_per_ml * values.culture_volume_ml


# -- Harvest -------------------------------------------------------------------------------
@protocol.step(unit_procedure="Harvest", resume="operator", max_hold_h=4, expected_duration_h=0.6)
async def harvest(run: Run[CarTParams], bioreactor: Bioreactor) -> None:
    """Stop perfusion and rocking, and drain the culture into the harvest bag."""
    if run.resumed is not None and not await _has_culture(run, bioreactor):
        # harvested before the crash: its report may have been lost, the volume was not
        run.set_value("harvest volume", run.value("culture volume at harvest"), unit="mL")
        return
    await bioreactor.set_setpoints(Setpoints(perfusion_rate_ml_per_day=0, rocking_rate_rpm=0))
    volume_ml = (await bioreactor.read_process_values()).culture_volume_ml
    run.set_value("culture volume at harvest", volume_ml, unit="mL")
    result = await bioreactor.harvest("harvest bag")
    run.set_value("harvest volume", result.volume_ml, unit="mL")


@protocol.step(
    unit_procedure="Harvest",
    resume="reconcile",
    max_duration_h=3,
    max_hold_h=2,
    expected_duration_h=1.8,
    checks={
        "minimum harvest": Spec(min=20, unit="% of target dose", policy="abort"),
        "viability after wash": Spec(min=80, unit="%"),
        "wash within capacity": Spec(max=0, unit="limit flags", policy="continue"),
        "wash recovery": Spec(min=70, unit="%", policy="continue"),
    },
)
async def wash_concentrate(
    run: Run[CarTParams], processor: CellProcessor, counter: CellCounter
) -> None:
    """Wash and concentrate what the dose and QC need of the harvest, within the washer's
    capacity; check viability, capacity and recovery; the rest of the harvest goes to waste.

    A harvest with CAR+ cells for less than 20 % of the dose is a manufacturing failure:
    aborted before the wash. What is washed is decided once: a step run again after a
    crash re-attaches to the same program with the same inputs.
    """
    if run.value_or("washed harvest volume", None) is None:
        await _plan_wash(run, processor, counter)
    wash_ml = run.value("washed harvest volume")
    result = await processor.run_program(
        "WASH_CONCENTRATE",
        ProgramInputs(
            source_container_id="harvest bag",
            output_container_id="washed product",
            parameters={
                "final_volume_ml": run.params.wash_final_volume_ml,
                "input_volume_ml": wash_ml,
            },
        ),
        supervisory_task_id=f"{run.run_id}:wash",
    )
    run.check(
        "wash within capacity",
        float(len(result.limit_flags)),
        flags=[flag.message for flag in result.limit_flags],
    )
    expected = run.value("harvest total cells per mL") * wash_ml / result.output_volume_ml
    after = await counted(
        run,
        "wash count",
        lambda: processor.draw_sample("washed product", 0.5),
        counter,
        expected_per_ml=expected,
    )
    run.check("viability after wash", after.viability_pct, flags=count_flags(after))
    run.set_checkpoint("washed total per mL", after.total_cells_per_ml)
    input_viable = run.value("harvest viable cells per mL") * wash_ml
    measured = recovery(max(input_viable, 1.0), after.viable_cells_per_ml * result.output_volume_ml)
    run.check("wash recovery", measured.pct, flags=[*measured.flags, *count_flags(after)])
    not_washed = run.value("harvest cells not washed")
    await run.containers.dispose(
        "harvest bag", reason=f"unwashed rest of the harvest ({not_washed:.3g} viable cells)"
    )


async def _plan_wash(run: Run[CarTParams], processor: CellProcessor, counter: CellCounter) -> None:
    """Count the harvest, check there is enough for a product, and decide the wash volume:
    what the dose and QC need (x WASH_MARGIN), within the washer's capacity for a count
    that may read low (:func:`cellauto.protocols.measures.wash_plan`)."""
    p = run.params
    before = await counted(
        run, "harvest count", lambda: processor.draw_sample("harvest bag", 1.0), counter
    )
    drawn_ml = 1.0 if before.dilution == 1.0 else 2.0  # a recount drew a second sample
    harvest_ml = run.value("harvest volume") - drawn_ml
    viable_per_ml = before.viable_cells_per_ml
    run.set_value("harvest viable cells", viable_per_ml * harvest_ml, unit="cells")
    run.set_value("fold expansion", viable_per_ml * harvest_ml / run.value("seeded viable cells"))
    run.set_value("harvest viable cells per mL", viable_per_ml, unit="cells/mL")
    run.set_value("harvest total cells per mL", before.total_cells_per_ml, unit="cells/mL")
    car_cells = viable_per_ml * harvest_ml * _car_share(run)
    run.check("minimum harvest", 100.0 * car_cells / target_dose(p), flags=count_flags(before))
    qc_share = QC_VOLUME_ML / p.final_volume_ml
    needed = target_dose(p) / _car_share(run) * (1.0 + qc_share) * WASH_MARGIN
    plan = wash_plan(before.total_cells_per_ml, harvest_ml, capacity_cells=WASH_CAPACITY_CELLS)
    wash_ml = min(harvest_ml, plan.input_volume_ml, needed / max(viable_per_ml, 1.0))
    run.set_value("harvest cells not washed", viable_per_ml * (harvest_ml - wash_ml), unit="cells")
    run.set_value("washed harvest volume", wash_ml, unit="mL")


# -- Formulation -----------------------------------------------------------------------------
@protocol.step(
    unit_procedure="Formulation",
    resume="operator",
    max_duration_h=3,
    max_hold_h=1,  # cells in DMSO wait at most an hour for the freezer
    expected_duration_h=1.5,
    checks={"dose available": Spec(min=100, unit="% of target dose", policy="continue")},
)
async def formulate(
    run: Run[CarTParams], processor: CellProcessor, counter: CellCounter, cytometer: FlowCytometer
) -> None:
    """Compute the dose from patient weight, formulate into cryoprotectant and fill the bag.

    The product volume is decided once: a step run again after a crash fills the same.
    """
    p = run.params
    target = target_dose(p)
    if run.value_or("product volume", None) is None:
        await _decide_product_volume(run, processor, counter, cytometer, target)
    await run.materials.use("cryobag 250 mL", into="final product")
    await run.materials.use("CryoStor CS10", into="final product")
    filled = await processor.run_program(
        "FORMULATE_FILL",
        ProgramInputs(
            source_container_id="washed product",
            output_container_id="final product",
            parameters={
                "product_volume_ml": run.value("product volume"),
                "final_volume_ml": p.final_volume_ml,
                "dmso_pct": p.dmso_pct,
                "bag_count": p.bags,
            },
        ),
        supervisory_task_id=f"{run.run_id}:formulate",
    )
    run.set_value("filled volume", filled.output_volume_ml, unit="mL")


@protocol.step(
    unit_procedure="Formulation",
    resume="operator",
    max_hold_h=1,  # cells in DMSO wait at most an hour for the freezer
    expected_duration_h=0.4,
    checks={
        # release specifications continue: the product is frozen and QA disposes of it
        "dose": Spec(min=80, max=120, unit="% of target dose", policy="continue"),
        "viability at release": Spec(min=80, unit="%", policy="continue"),
        "CD3+ at release": Spec(min=80, unit="%", policy="continue"),
        "CAR+ at release": Spec(min=10, unit="% of CD3+", policy="continue"),
    },
)
async def prepare_release_samples(
    run: Run[CarTParams],
    liquid_handler: LiquidHandler,
    counter: CellCounter,
    cytometer: FlowCytometer,
) -> None:
    """Aliquot the QC sample on the liquid handler: two counting tubes, four staining wells
    of the release plate, two retain cryovials (frozen with the bags); count and phenotype
    the aliquots, and compute the dose from the mean of the two counts."""
    p = run.params
    qc_bag = final_bags(p)[0]
    if not run.checkpoint_or("release samples aliquoted", False):
        # from the first bag's sampling port; a tip per destination
        await liquid_handler.transfer(qc_bag, "QC sample", QC_VOLUME_ML * 1000)
        await liquid_handler.aliquot("QC sample", COUNT_TUBES, COUNT_TUBE_UL)
        await liquid_handler.aliquot("QC sample", RELEASE_WELLS, WELL_UL)
        await liquid_handler.aliquot("QC sample", RETAINS, RETAIN_UL)
        run.set_checkpoint("release samples aliquoted", True)
    await _record_release_samples(run, qc_bag)
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
    release = await measure_once(
        run, "release phenotype", lambda: _tube(run, RELEASE_WELLS[0], WELL_UL),
        lambda sample: cytometer.immunophenotype(sample, panel="CAR-T release"), Immunophenotype,
    )  # fmt: skip
    viable_per_ml = sum(c.viable_cells_per_ml for c in counts) / len(counts)
    viability = sum(c.viability_pct for c in counts) / len(counts)
    run.set_value("release viable cells per mL", viable_per_ml, unit="cells/mL")
    run.set_value(
        "retained vial pre-freeze viable cells", viable_per_ml * RETAIN_UL / 1000, unit="cells"
    )
    bag_ml = run.value("filled volume") - QC_VOLUME_ML
    run.set_value("infusion volume", bag_ml, unit="mL")
    dose = car_t_per_ml(viable_per_ml, release.cd3_pct, release.car_pct) * bag_ml
    run.set_value("dose", dose, unit="CAR+ viable T cells")
    # what the release tests normalise by: endotoxin per kg, the count as % of target
    run.set_value("final volume ml", bag_ml, unit="mL")
    target = target_dose(p)
    run.set_value("target dose cells", target, unit="CAR+ viable T cells")
    run.check("dose", 100.0 * dose / target, flags=count_flags(*counts))
    run.check("viability at release", viability, flags=count_flags(*counts))
    run.check("CD3+ at release", release.cd3_pct)
    run.check("CAR+ at release", release.car_pct)


async def _tube(run: Run[CarTParams], tube: str, volume_ul: float) -> Sample:
    return tube_sample(run, tube, volume_ul / 1000)


async def _record_release_samples(run: Run[CarTParams], qc_bag: str) -> None:
    """The QC sample and its aliquots in the container record (each transfer once)."""
    by = "liquid_handler"
    await run.containers.transfer(qc_bag, "QC sample", volume_ml=QC_VOLUME_ML, by=by)
    for tube in COUNT_TUBES:
        await run.containers.transfer("QC sample", tube, volume_ml=COUNT_TUBE_UL / 1000, by=by)
    wells_ml = len(RELEASE_WELLS) * WELL_UL / 1000
    await run.containers.transfer("QC sample", "release plate", volume_ml=wells_ml, by=by)
    for vial in RETAINS:
        await run.containers.transfer("QC sample", vial, volume_ml=RETAIN_UL / 1000, by=by)


async def _decide_product_volume(
    run: Run[CarTParams],
    processor: CellProcessor,
    counter: CellCounter,
    cytometer: FlowCytometer,
    target: float,
) -> None:
    """The product volume for the target dose, from the washed product's count and CAR+."""
    p = run.params
    count = await counted(
        run,
        "dose count",
        lambda: processor.draw_sample("washed product", 0.5),
        counter,
        expected_per_ml=run.checkpoint_or("washed total per mL", None),
    )
    phenotype = await measure_once(
        run, "dose phenotype", lambda: processor.draw_sample("washed product", 0.5),
        lambda sample: cytometer.immunophenotype(sample, panel="CAR-T release"), Immunophenotype,
    )  # fmt: skip
    car_per_ml = car_t_per_ml(count.viable_cells_per_ml, phenotype.cd3_pct, phenotype.car_pct)
    run.set_value("target dose", target, unit="CAR+ viable T cells")
    # the infusion bag delivers its volume less the QC draw and a ~1.5 % hold-up in the
    # tubing; the product may fill at most the share the cryoprotectant leaves free
    delivered_share = (p.final_volume_ml * 0.985 - QC_VOLUME_ML) / (p.final_volume_ml * 0.985)
    max_product_ml = min(
        p.wash_final_volume_ml - 2.5,  # what is left after QC samples
        p.final_volume_ml * (1.0 - p.dmso_pct / CRYOPROTECTANT_DMSO_PCT),
    )
    needed_ml = target / car_per_ml / delivered_share
    run.check("dose available", 100.0 * max_product_ml / needed_ml, flags=count_flags(count))
    product_ml = min(needed_ml, max_product_ml)
    run.set_value(
        "expected release cells per mL",
        count.total_cells_per_ml * product_ml / p.final_volume_ml,
        unit="cells/mL",
    )
    run.set_value("product volume", product_ml, unit="mL")


@protocol.step(unit_procedure="Formulation", resume="rerun", max_hold_h=1, expected_duration_h=0.2)
async def check_label(run: Run[CarTParams], printer: LabelPrinter) -> None:
    """Print each final product bag's label (21 CFR 1271.370) and verify a scan of it
    against the record; two people read the chain-of-identity id on it: it must match
    this order before the bag is frozen (the cells are in DMSO: within half an hour).

    The expiry counts the shelf life from now: the freeze starts within the hour, so the
    label never promises more than the frozen product's shelf life.
    """
    p = run.params
    bags = final_bags(p)
    now = run.now().astimezone(UTC).replace(second=0, microsecond=0)
    dose, volume_ml = run.value("dose"), run.value("infusion volume")
    for bag in bags:
        await print_label(
            run,
            printer,
            bag,
            product="CAR-T cells, autologous",
            expires=now + timedelta(days=p.shelf_life_days),
            volume_ml=round(volume_ml / len(bags), 1),
            cells=f"{dose / len(bags):.2e} CAR+ viable T cells",
            facility=FACILITY,
        )
    await run.identity.confirm_label(
        "final product label",
        expected=run.params.coi,
        instruction="Read the chain-of-identity id printed on the final product bag label.",
        timeout_h=0.5,
    )


# -- Cryopreservation ------------------------------------------------------------------------
def freeze_profile(p: CarTParams) -> FreezeProfile:
    """-1 °C/min from +4 °C with heat-of-fusion compensation for the fill of each bag,
    then -10 °C/min to -90 °C."""
    return standard_freeze_profile(
        heat_of_fusion_compensation=True, final_hold_min=45, fill_ml=p.final_volume_ml / p.bags
    )


@protocol.step(
    unit_procedure="Cryopreservation",
    resume="reconcile",
    max_duration_h=4,
    max_hold_h=2,
    expected_duration_h=2,
    checks={
        "freeze completed": Spec(min=1, description="1 = the profile ran to its end"),
        "phase change detected": Spec(min=1),
        "cooling rate through phase change": Spec(
            min=-2.0, max=-0.5, unit="°C/min", policy="continue"
        ),
        "final sample temperature": Spec(max=-80, unit="°C"),
        "power interruptions": Spec(max=0),
    },
)
async def freeze(run: Run[CarTParams], freezer: ControlledRateFreezer) -> None:
    """An operator loads the bag and the two retained QC vials; freeze them at -1 °C/min
    with heat-of-fusion compensation for the bag's fill, then to -90 °C.

    Chamber and sample temperatures are recorded every minute for the batch record.
    """
    bags = final_bags(run.params)
    state = (await freezer.status()).state if run.resumed is not None else "idle"
    if state not in ("running", "complete"):  # resumed before the start: start it
        for bag in bags:
            await handoff(
                run,
                bag,
                name="load the freezer",
                key=bag if len(bags) > 1 else None,
                to=Place(kind="instrument", name="freezer"),
                instruction=f"Place the {bag} bag in the freezer chamber with the sample "
                "probe on it and close the door.",
                timeout_h=0.5,
            )
        await freezer.load_profile(freeze_profile(run.params))
        await freezer.start([*bags, *RETAINS])  # the probe on the first bag; vials beside
    async for _reading in freezer.temperatures(interval_s=60):
        pass  # every reading is recorded at the instrument boundary; the stream ends with the run
    result = await freezer.result()
    run.check("power interruptions", float(result.power_interruptions))
    run.check("freeze completed", 1.0 if result.end_state == "complete" else 0.0)
    run.check("phase change detected", 1.0 if result.phase_change_detected else 0.0)
    if result.cooling_rate_through_phase_change_c_per_min is not None:
        run.check(
            "cooling rate through phase change",
            result.cooling_rate_through_phase_change_c_per_min,
        )
    run.check("final sample temperature", result.final_sample_temperature_c)


async def _shipper_ready(run: Run[CarTParams], dry_shipper: DryShipper) -> None:
    """Charge the dry shipper with LN2 if its charge may not last the carries (a day's
    margin) or its well is warm, and let it cool back; the carry checks it again."""
    status = await dry_shipper.status()
    cold = status.temperature_c <= DryShipper.MAX_TEMPERATURE_C - 10
    if cold and status.hold_time_remaining_h >= SHIPPER_MARGIN_H:
        return
    await dry_shipper.charge()
    for _ in range(12):  # a charged well is cold again within the hour
        if (await dry_shipper.status()).temperature_c <= DryShipper.MAX_TEMPERATURE_C - 10:
            return
        await run.sleep(minutes=10)


@protocol.step(
    unit_procedure="Cryopreservation",
    resume="reconcile",
    expected_duration_h=0.2,
    checks={"storage temperature": Spec(max=-150, unit="°C")},
)
async def store(run: Run[CarTParams], storage: CryoStorage, dry_shipper: DryShipper) -> None:
    """Move the frozen bags into vapour-phase LN2 below -150 °C in a dry shipper: two
    people scan each bag into the shipper (one scans, one verifies), the shipper's logger
    covers the carry (above -150 °C: a deviation), and the position the storage reports
    must be the one asked for."""
    conditions = await storage.conditions()
    run.check("storage temperature", conditions.temperature_c)
    bags = final_bags(run.params)
    in_shipper = Place(kind="shipper", name="dry_shipper")
    await _shipper_ready(run, dry_shipper)
    for slot, bag in enumerate(bags, start=1):
        position = StoragePosition(rack=STORAGE_RACK, box=1, slot=slot)
        if bag not in {item.container_id for item in await storage.inventory()}:
            await handoff(
                run,
                bag,
                name="transfer into LN2",
                key=bag if len(bags) > 1 else None,
                to=in_shipper,
                instruction=f"Take the frozen {bag} bag from the freezer into the dry shipper, "
                f"carry it to the LN2 storage and place it in {position}.",
                verify=True,
                timeout_h=0.5,
            )
            await carry(
                run,
                dry_shipper,
                bag,
                in_shipper,
                Place(kind="storage", name="storage", position=position),
                transit_min=5,
            )
        await store_checked(run, storage, bag, position, name="storage")
    stored = {item.container_id for item in await storage.inventory()}
    in_inventory = all(bag in stored for bag in bags)
    run.check("bag in inventory", 1.0 if in_inventory else 0.0, Spec(min=1))


# -- QC ----------------------------------------------------------------------------------------
@protocol.step(
    unit_procedure="QC",
    resume="operator",
    expected_duration_h=0.3,
    checks={
        "post-thaw viability": Spec(min=70, unit="%", policy="continue"),
        "post-thaw viable recovery": Spec(min=50, unit="%", policy="continue"),
    },
)
async def test_retained_vial(run: Run[CarTParams], thawer: Thawer, counter: CellCounter) -> None:
    """Thaw the first retained QC vial (frozen with the bags) and count it: the post-thaw
    viability and the viable cells recovered against the vial's pre-freeze count. Out of
    specification is a deviation for QA's disposition (the product stays frozen)."""
    await count_retained_vial(run, thawer, counter, RETAINS[0], RETAIN_UL)
