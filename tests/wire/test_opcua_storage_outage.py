"""A store whose reply was lost is sent again under the same operation id: stored once."""

from __future__ import annotations

from typing import Any

import pytest
from asyncua import ua

from cellauto.instruments.cryo_storage import StoredItem
from cellauto.instruments.opcua import OpcUaCryoStorage
from cellauto.sim.opcua import serve_storage
from tests.wire.opcua_more_support import at, make_storage
from tests.wire.test_opcua_support import leftover_tasks, plain_client

pytestmark = pytest.mark.anyio


async def test_a_lost_reply_to_store_stores_the_bag_once() -> None:
    sim = make_storage()
    async with serve_storage(sim) as server:
        adapter = await OpcUaCryoStorage.connect(
            server.url, clock=sim.world.clock, reconnect_max_delay_s=2.0
        )
        async with adapter:
            calls: list[str] = []
            plain_store = sim.store

            async def cut_then_store(container_id: str, position: Any) -> StoredItem:
                calls.append(container_id)
                if len(calls) == 1:  # the device took the bag; its reply never arrives
                    assert server.drop_connections() == 1
                return await plain_store(container_id, position)

            sim.store = cut_then_store  # type: ignore[method-assign]
            item = await adapter.store("bag 1", at(slot=7))
            assert (item.container_id, item.position) == ("bag 1", at(slot=7))
            assert calls == ["bag 1"]  # the resend found the operation: nothing new started
            assert len(adapter.gaps) == 1
            assert [i.container_id for i in await adapter.inventory()] == ["bag 1"]
            assert (
                sim.world.containers["bag 1"].history.count(
                    "stored in CryoStorage LN2-0001 at rack A box 1 slot 7"
                )
                == 1
            )
    assert leftover_tasks() == []


async def test_republishing_a_notification_no_longer_kept_is_refused() -> None:
    """OPC UA Part 4: BadMessageNotAvailable, which ends a client's republish loop (asyncua's
    server answered an empty message, and its client asked again forever)."""
    sim = make_storage()
    async with serve_storage(sim) as server, plain_client(server.url) as client:
        subscription = await client.create_subscription(0, None)  # type: ignore[arg-type]
        session = client.uaclient.session
        with pytest.raises(ua.uaerrors.BadMessageNotAvailable):
            await session.republish(subscription.subscription_id, 999)
        await subscription.delete()
