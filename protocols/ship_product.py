"""Ship frozen product in a dry shipper with a data logger, and receive it.

Checks the shipper is below -150 °C and charged for the trip, loads the containers and
records the dispatch; the shipment travels for ``transit_h`` (virtual time in
simulation); at receipt the logger's readings since dispatch are downloaded and
recorded, and any excursion above the limit is a deviation that holds the run for QA.

Rehearse it on the simulated line::

    cellauto run protocols/ship_product.py --sim

Containers are named by plain keys here (``"final product 1"``); tying them to the
containers of the run that made them is another protocol's job.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import field_validator

from cellauto import Field, Params, Protocol, Run, SimDefault
from cellauto.errors import ProtocolDefinitionError
from cellauto.instruments.dry_shipper import DryShipper
from cellauto.protocols.shipment import dispatch, dispatched, receive

ContainerKey = Annotated[str, Field(min_length=1, max_length=80)]


class ShipmentParams(Params):
    shipment_id: Annotated[str, SimDefault("SHP-SIM-0001")] = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
        description="the shipment's id on its paperwork",
    )
    destination: Annotated[str, SimDefault("Infusion centre (simulated)")] = Field(
        min_length=1, max_length=120, description="where the shipment goes"
    )
    containers: Annotated[list[ContainerKey], SimDefault(["final product 1"])] = Field(
        min_length=1, max_length=12, description="the containers shipped, by key"
    )
    transit_h: float = Field(48.0, gt=0, le=240, description="door to door")
    hold_margin_h: float = Field(
        24.0, ge=0, le=240, description="hold time the shipper must have beyond the transit"
    )
    limit_c: float = Field(-150.0, ge=-196, le=-100, description="product stays below it")

    @field_validator("containers")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        twice = sorted({key for key in value if value.count(key) > 1})
        if twice:
            raise ValueError(f"each container is shipped once; named twice: {', '.join(twice)}")
        return value


protocol = Protocol(
    "ship-product",
    version="1.0.0",
    params=ShipmentParams,
    description="Ship frozen product in a dry shipper; the logger's readings are the evidence.",
)


@protocol.step(unit_procedure="Dispatch", resume="reconcile", expected_duration_h=0.2)
async def load_and_dispatch(run: Run[ShipmentParams], dry_shipper: DryShipper) -> None:
    """Check the dry shipper is cold and charged for the trip, load the containers and
    record the dispatch (once, even after a controller crash)."""
    p = run.params
    await dispatch(
        run,
        dry_shipper,
        p.containers,
        shipment_id=p.shipment_id,
        destination=p.destination,
        min_hold_h=p.transit_h + p.hold_margin_h,
        limit_c=p.limit_c,
    )


@protocol.step(
    unit_procedure="Transit",
    resume="reconcile",
    expected_duration_h=lambda params: params.transit_h,
    max_duration_h=240.5,
)
async def transit(run: Run[ShipmentParams]) -> None:
    """The shipment travels to its destination."""
    sent = dispatched(run, run.params.shipment_id)
    if sent is None:
        raise ProtocolDefinitionError(f"shipment {run.params.shipment_id!r} was not dispatched")
    await run.sleep_until(sent.at + timedelta(hours=run.params.transit_h))


@protocol.step(unit_procedure="Receipt", resume="reconcile", expected_duration_h=0.2)
async def receive_shipment(run: Run[ShipmentParams], dry_shipper: DryShipper) -> None:
    """Download the logger's readings since dispatch, record the receipt with every one,
    and unload; a reading above the limit is a deviation that holds for QA."""
    await receive(run, dry_shipper, shipment_id=run.params.shipment_id, limit_c=run.params.limit_c)
