"""The protocol of the web tests' live run: a bag scanned, 12 virtual hours of culture
ending with an alarm, then a confirmation, a verified entry, and a day of culture.

While a task is open the run's virtual clock follows real time, so the run waits at
``connect`` for as long as a test needs; a Hold there is applied at once."""

from __future__ import annotations

from cellauto import Field, MaterialInput, Params, Protocol, Run, Spec
from cellauto.instruments import BarcodeScanner, Bioreactor, Setpoints

WEIGHT = Spec(min=70, max=90, unit="g")


class LiveParams(Params):
    coi: str = Field("W123426A1B2C3", pattern=r"^[A-Z0-9]{13}$")


protocol = Protocol(
    "web-live",
    version="1",
    params=LiveParams,
    inputs=[MaterialInput(name="starting material bag", identity_param="coi")],
)

SETPOINTS = Setpoints(
    temperature_c=37.0,
    ph=7.2,
    dissolved_oxygen_pct=40.0,
    rocking_rate_rpm=10.0,
    rocking_angle_deg=6.0,
)


@protocol.step(expected_duration_h=0.1)
async def receive_material(run: Run[LiveParams], scanner: BarcodeScanner) -> None:
    """Scan the bag."""
    run.identity.expect(await scanner.scan("starting material bag"), run.params.coi)


@protocol.step(expected_duration_h=12)
async def start_culture(run: Run[LiveParams], bioreactor: Bioreactor) -> None:
    """Seed and watch for 12 h."""
    await bioreactor.set_setpoints(SETPOINTS)
    await bioreactor.seed("starting material bag", 50.0, 450.0)
    async for _ in run.every(hours=1, times=12, checkpoint="watch"):
        await bioreactor.read_process_values()
    run.alarm("pH probe drift suspected", severity="major")


@protocol.step(expected_duration_h=0.5)
async def connect(run: Run[LiveParams]) -> None:
    """Connect the feed bag."""
    await run.confirm("connect feed bag", instruction="Weld the feed bag to the set.")


@protocol.step(expected_duration_h=0.5)
async def weigh(run: Run[LiveParams]) -> None:
    """Weigh the feed bag; a second person verifies the entry."""
    await run.enter(
        "bag weight", type=float, unit="g", spec=WEIGHT, instruction="Weigh the bag.", verify=True
    )


@protocol.step(expected_duration_h=24)
async def culture(run: Run[LiveParams], bioreactor: Bioreactor) -> None:
    """A day of culture."""
    async for _ in run.every(hours=1, times=24, checkpoint="grow"):
        await bioreactor.read_process_values()
