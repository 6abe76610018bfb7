"""Demo: receive a labelled T-cell product, expand it in a rocking bag, harvest it.

A small protocol that shows the authoring API end to end on the simulated line.
"""

from __future__ import annotations

from cellauto import Field, MaterialInput, Params, Protocol, Run, Spec
from cellauto.instruments import BarcodeScanner, Bioreactor, CellCounter, Reagent, Setpoints
from cellauto.protocols.reconcile import add_once, feed_once


class ExpansionParams(Params):
    coi: str = Field(
        "W123426A1B2C3",
        pattern=r"^[A-Z0-9]{13}$",
        description="chain-of-identity id printed on the starting-material bag",
    )
    bag: str = Field(
        "starting material bag",
        min_length=1,
        description="where the starting-material bag is on the line (its container id): "
        "a line holding several batches' bags names each",
    )
    seed_volume_ml: float = Field(50.0, gt=0, le=100, description="product volume seeded")
    medium_ml: float = Field(450.0, ge=0, le=900, description="medium added at seeding")
    culture_days: int = Field(7, ge=3, le=14, description="days of expansion")
    feed_above_cells_per_ml: float = Field(1.5e6, gt=0, description="feed when denser")
    feed_ml: float = Field(150.0, gt=0, le=500, description="medium added per feed")


protocol = Protocol(
    "demo-expansion",
    version="1.0.0",
    params=ExpansionParams,
    description="Receive, seed, expand and harvest T cells in a rocking-bag bioreactor.",
    inputs=[
        MaterialInput(name="starting material bag", identity_param="coi", container_param="bag")
    ],
)


@protocol.step(unit_procedure="Receipt", resume="rerun", expected_duration_h=0.1)
async def receive_material(run: Run[ExpansionParams], scanner: BarcodeScanner) -> None:
    """Scan the batch's starting-material bag; its chain-of-identity id must match the order."""
    label = await scanner.scan(run.params.bag)
    run.identity.expect(label, run.params.coi)


@protocol.step(
    unit_procedure="Expansion", resume="reconcile", max_hold_h=4, expected_duration_h=0.5
)
async def seed_culture(run: Run[ExpansionParams], bioreactor: Bioreactor) -> None:
    """Bring the bag to 37 °C, seed it with the product and medium, and activate the T cells.

    Run again after a controller crash (``reconcile``), it asks the bioreactor whether
    the bag was seeded, and activates once.
    """
    resumed = run.resumed is not None
    if not resumed or (await bioreactor.read_process_values()).culture_volume_ml <= 0:
        await bioreactor.set_setpoints(
            Setpoints(
                temperature_c=37.0,
                ph=7.2,
                dissolved_oxygen_pct=40.0,
                rocking_rate_rpm=10.0,
                rocking_angle_deg=6.0,
            )
        )
        await bioreactor.seed(run.params.bag, run.params.seed_volume_ml, run.params.medium_ml)
    await add_once(run, bioreactor, Reagent(name="TransAct", kind="activation", volume_ml=10.0))


@protocol.step(
    unit_procedure="Expansion",
    resume="reconcile",
    max_duration_h=14 * 24 + 12,
    expected_duration_h=lambda params: params.culture_days * 24,
    checks={"daily viability": Spec(min=70, unit="%", policy="hold")},
)
async def expand(run: Run[ExpansionParams], bioreactor: Bioreactor, counter: CellCounter) -> None:
    """Expand for the set number of days: count daily and feed when the culture is dense.

    ``run.every`` keeps the daily schedule from the step's first start and, after a
    controller crash, does not repeat the days done.
    """
    days = run.every(hours=24, times=run.params.culture_days, checkpoint="culture days done")
    async for day in days:
        count = await counter.count(await bioreactor.draw_sample(0.5))
        run.check("daily viability", count.viability_pct)
        volume = (await bioreactor.read_process_values()).culture_volume_ml
        room_ml = 1000.0 - volume
        if count.viable_cells_per_ml > run.params.feed_above_cells_per_ml and room_ml > 1:
            await feed_once(
                run, bioreactor, min(run.params.feed_ml, room_ml), key=f"feed day {day}"
            )


@protocol.step(
    unit_procedure="Harvest",
    resume="operator",
    expected_duration_h=0.5,
    checks={
        "viability at harvest": Spec(min=80, unit="%"),
        "total viable cells": Spec(min=5e8, unit="cells"),
    },
)
async def harvest(run: Run[ExpansionParams], bioreactor: Bioreactor, counter: CellCounter) -> None:
    """Count the final culture and check viability and yield against specification."""
    count = await counter.count(await bioreactor.draw_sample(0.5))
    volume = (await bioreactor.read_process_values()).culture_volume_ml
    run.check("viability at harvest", count.viability_pct)
    run.check("total viable cells", count.viable_cells_per_ml * volume)
