"""Identification-level tests against pyvisa-sim definitions (no server, no socket)."""

from __future__ import annotations

import pytest

from cellauto.instruments.visa import (
    ScpiInstrumentError,
    VisaCellCounter,
    VisaControlledRateFreezer,
)
from cellauto.sim.scpi import PYVISA_SIM_DEFINITIONS

pytest.importorskip("pyvisa_sim")

pytestmark = pytest.mark.anyio

SIM = f"{PYVISA_SIM_DEFINITIONS}@sim"


async def test_both_instruments_identify_themselves_through_pyvisa_sim() -> None:
    counter = await VisaCellCounter.connect(
        "TCPIP0::127.0.0.1::5025::SOCKET", backend=SIM, timeout_s=0.5
    )
    freezer = await VisaControlledRateFreezer.connect(
        "TCPIP0::127.0.0.1::5026::SOCKET", backend=SIM, timeout_s=0.5
    )
    try:
        assert counter.identity.model_dump() == {
            "vendor": "cellauto-sim",
            "model": "SimCount BLU",
            "serial": "CC-0001",
            "firmware": "sim-1.0",
            "adapter": "visa",
        }
        assert (freezer.identity.model, freezer.identity.serial) == ("SimFreeze CRF", "CRF-0001")
        assert (await freezer.status()).state == "idle"
        with pytest.raises(ScpiInstrumentError, match='-113,"Undefined header"') as caught:
            await counter.session.command("SELF:DESTRUCT")
        assert "CellCounter CC-0001 at TCPIP0::127.0.0.1::5025::SOCKET" in str(caught.value)
        assert await counter.session.read_errors() == []
    finally:
        await counter.aclose()
        await freezer.aclose()
