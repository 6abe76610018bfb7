"""A protocol that needs only a bioreactor: seed a bag and culture it for a few hours."""

from __future__ import annotations

from cellauto import Field, Params, Protocol, Run
from cellauto.instruments import Bioreactor, Setpoints


class CultureParams(Params):
    hours: int = Field(6, ge=1, le=48, description="hours of culture after seeding")


protocol = Protocol(
    "bioreactor-only",
    version="1.0.0",
    params=CultureParams,
    description="Seed a rocking bag and read it every hour (cross-process wire tests).",
)


@protocol.step(unit_procedure="Culture", resume="rerun", expected_duration_h=0.5)
async def seed(run: Run[CultureParams], bioreactor: Bioreactor) -> None:
    """Bring the bag to 37 °C and seed it."""
    await bioreactor.set_setpoints(Setpoints(temperature_c=37.0, rocking_rate_rpm=10.0))
    await bioreactor.seed("starting material bag", 50.0, 450.0)


@protocol.step(unit_procedure="Culture", resume="rerun", expected_duration_h=6)
async def culture(run: Run[CultureParams], bioreactor: Bioreactor) -> None:
    """Read the process values once an hour."""
    for hour in range(run.params.hours):
        await run.sleep(hours=1)
        values = await bioreactor.read_process_values()
        run.set_value(f"culture volume h{hour + 1}", values.culture_volume_ml, unit="mL")
