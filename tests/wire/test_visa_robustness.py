"""Garbled, partial and missing replies: a clear error, never a number; retries only for reads.

Every test runs twice: with the fake instrument on the test's own event loop (the
session waits for it on the loop) and on a loop in another thread (it answers while
the session spins, as a real instrument does).
"""

from __future__ import annotations

import pytest

from cellauto.errors import OutcomeUnknownError
from cellauto.instruments.visa import (
    ScpiInstrumentError,
    ScpiReplyError,
    VisaConnectionError,
    VisaControlledRateFreezer,
    VisaSession,
)
from cellauto.instruments.visa.scpi_reply import parse_real
from tests.wire.scpi_support import CLOSE, Host, fake_instrument, resource

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["loop", "thread"])
def host(request: pytest.FixtureRequest) -> Host:
    return request.param


TEMP = "MEAS:TEMP:CHAM?"


async def _session(port: int, *, timeout_s: float = 1.0, retries: int = 2) -> VisaSession:
    return await VisaSession.open(resource(port), timeout_s=timeout_s, retries=retries)


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"-45.2 C\n", "not an NR1/NR2/NR3 number"),
        (b"-45.2,-45.3\n", "not an NR1/NR2/NR3 number"),
        (b"NAN\n", "not an NR1/NR2/NR3 number"),
        (b"9.9E37\n", "SCPI infinity"),
        (b"-4\xff5.2\n", "not UTF-8"),
        (b"-45.2\n-45.3\n", "more than one line"),
        (b"\n", "empty reply and no error in the queue"),
    ],
)
async def test_a_garbled_reply_raises_after_the_retries(
    reply: bytes, problem: str, host: Host
) -> None:
    async with fake_instrument({TEMP: [reply]}, host) as fake:
        session = await _session(fake.port)
        try:
            with pytest.raises(ScpiReplyError, match=problem) as caught:
                await session.query(TEMP, parse_real)
        finally:
            await session.aclose()
    assert fake.count(TEMP) == 3  # idempotent: tried 1 + 2 times
    assert "(tried 3 times)" in str(caught.value)
    assert "garbled SCPI reply" in str(caught.value)
    assert "(reply to 'MEAS:TEMP:CHAM?')" in str(caught.value)


async def test_a_partial_line_times_out_and_is_never_a_number(host: Host) -> None:
    async with fake_instrument({TEMP: [b"-45.2"]}, host) as fake:
        session = await _session(fake.port, timeout_s=0.1, retries=1)
        try:
            with pytest.raises(VisaConnectionError, match="no complete reply"):
                await session.query(TEMP, parse_real)
        finally:
            await session.aclose()
    assert fake.count(TEMP) == 2


async def test_an_idempotent_query_is_retried_on_a_new_session(host: Host) -> None:
    script = {TEMP: [b"-45.", CLOSE, b"-4x\n", b"-45.25\n"]}  # cut, hang up, garbage, good
    async with fake_instrument(script, host) as fake:
        session = await _session(fake.port, timeout_s=0.1, retries=3)
        try:
            assert await session.query(TEMP, parse_real) == -45.25
        finally:
            await session.aclose()
    assert fake.count(TEMP) == 4
    assert session.retried == 3


async def test_a_command_is_never_repeated_even_when_unconfirmed(host: Host) -> None:
    script = {
        'INIT "BAG-1"': [None],
        "SYST:ERR?": [b"garbage\n", b'0,"No error"\n'],
        TEMP: [b"-45.25\n"],
    }
    async with fake_instrument(script, host) as fake:
        session = await _session(fake.port)
        try:
            with pytest.raises(OutcomeUnknownError, match="may or may not have been carried out"):
                await session.command('INIT "BAG-1"')  # a resumed run lists it as in doubt
            assert await session.query(TEMP, parse_real) == -45.25  # on a reopened session
        finally:
            await session.aclose()
    assert fake.count('INIT "BAG-1"') == 1
    assert fake.count("SYST:ERR?") == 1  # the queue read is never repeated either


async def test_a_hang_up_after_a_command_is_not_a_success(host: Host) -> None:
    async with fake_instrument({"PROF:LOAD": [CLOSE]}, host) as fake:
        session = await _session(fake.port, timeout_s=0.1)
        try:
            with pytest.raises(VisaConnectionError, match="'PROF:LOAD' was sent but not confirmed"):
                await session.command("PROF:LOAD")
        finally:
            await session.aclose()
    assert fake.count("PROF:LOAD") == 1


async def test_a_refused_query_raises_the_queued_error_without_retry(host: Host) -> None:
    script = {"FETC?": [b"\n"], "SYST:ERR?": [b'102,"No result available"\n', b'0,"No error"\n']}
    async with fake_instrument(script, host) as fake:
        session = await _session(fake.port)
        try:
            with pytest.raises(ScpiInstrumentError, match='102,"No result available"'):
                await session.query("FETC?", parse_real)
        finally:
            await session.aclose()
    assert fake.count("FETC?") == 1


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b'RUNNING,2,17.5,1,"BAG-1",7\n', "the list announces 1 items but 2 follow"),
        (b"RUNNING,2,17.5\n", "3 fields where at least 4 are expected"),
        (b'running,2,17.5,1,"BAG-1"\n', "field 1: not one of"),
        (b'RUNNING,2,-17.5,1,"BAG-1"\n', "elapsed_min: Input should be greater than or equal"),
        (b'RUNNING,-2,17.5,1,"BAG-1"\n', "a segment index below -1"),
        (b'RUNNING,2,17.5,1,"BAG-1\n', "unterminated string"),
    ],
)
async def test_a_status_record_that_does_not_fit_the_model_is_refused(
    reply: bytes, problem: str, host: Host
) -> None:
    async with fake_instrument({"PROG:STAT?": [reply]}, host) as fake:
        freezer = await VisaControlledRateFreezer.connect(resource(fake.port), retries=0)
        try:
            with pytest.raises(ScpiReplyError, match=problem) as caught:
                await freezer.status()
        finally:
            await freezer.aclose()
    assert "ControlledRateFreezer F-0001" in str(caught.value)
    assert "reply to 'PROG:STAT?'" in str(caught.value)


@pytest.mark.parametrize("message", ["*ESR?", "SYST:ERR?", "syst:error:next?", "STAT:OPER?"])
async def test_reads_that_clear_are_never_repeated(message: str, host: Host) -> None:
    async with fake_instrument({message: [b"garbage\n"]}, host) as fake:
        session = await _session(fake.port)
        try:
            with pytest.raises(ScpiReplyError):
                await session.query(message, parse_real)
            with pytest.raises(ValueError, match="is a query"):
                await session.command(message)
        finally:
            await session.aclose()
    assert fake.count(message) == 1


async def test_the_error_queue_found_at_connect_is_kept_then_cleared(host: Host) -> None:
    script = {"SYST:ERR?": [b'-222,"Data out of range"\n', b'0,"No error"\n']}
    async with fake_instrument(script, host) as fake:
        freezer = await VisaControlledRateFreezer.connect(resource(fake.port))
        await freezer.aclose()
    assert freezer.errors_at_connect == [(-222, "Data out of range")]
    assert fake.received[:4] == ["*IDN?", "SYST:ERR?", "SYST:ERR?", "*CLS"]
