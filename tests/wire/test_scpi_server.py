"""The simulated SCPI servers: common commands, error queue, status, overlapped counts."""

from __future__ import annotations

import anyio
import pytest
import pyvisa

from cellauto.clock import awaiting_outside
from cellauto.instruments.visa.counter import parse_count
from cellauto.sim.scpi import (
    ERROR_QUEUE_SIZE,
    Args,
    CounterScpi,
    FreezerScpi,
    HeaderTable,
    serve_scpi,
)
from tests.wire.scpi_support import ask, make_counter, make_freezer, resource

pytestmark = pytest.mark.anyio


async def test_a_plain_pyvisa_session_identifies_and_counts() -> None:
    counter, sample = make_counter()
    start = anyio.current_time()
    async with serve_scpi(CounterScpi(counter)) as server:

        def session() -> tuple[str, str, str]:
            manager = pyvisa.ResourceManager("@py")
            try:
                inst = manager.open_resource(
                    resource(server.port), read_termination="\n", write_termination="\n"
                )
                inst.timeout = 5000
                idn = inst.query("*IDN?")
                inst.write(f'SAMP:ID "{sample.sample_id}";:SAMP:OPER "bob";:INIT')
                done = inst.query("*OPC?")  # waits for the 90 s count (served: time jumps)
                return idn, done, inst.query("FETC?")
            finally:
                manager.close()

        with awaiting_outside():
            idn, done, fetched = await anyio.to_thread.run_sync(session)
    assert idn == "cellauto-sim,SimCount BLU,CC-0001,sim-1.0"
    assert done == "1"
    count = parse_count(fetched)
    assert (count.sample_id, count.operator, count.instrument_serial) == (
        sample.sample_id,
        "bob",
        "CC-0001",
    )
    assert 90 <= anyio.current_time() - start < 120
    assert 0.5e7 < count.total_cells_per_ml < 5e7


async def test_several_units_per_line_and_header_forms() -> None:
    async with serve_scpi(FreezerScpi(make_freezer())) as server:
        (reply,) = await ask(server.port, b"*CLS;syst:err:coun?;:PROFile:count?;*IDN?\n")
        assert reply == b"0;0;cellauto-sim,SimFreeze CRF,CRF-0001,sim-1.0\n"
        (reply,) = await ask(server.port, b'PROF:NAME "a;b,""c""";PROF:NAME?\n')
        assert reply == b'"a;b,""c"""\n'
        assert await ask(server.port, b"SYSTEM:VERSION?\r\n") == [b"1999.0\n"]


async def test_error_queue_keeps_ten_then_reports_overflow() -> None:
    async with serve_scpi(FreezerScpi(make_freezer())) as server:
        await ask(server.port, b"*CLS;*IDN?\n")
        for index in range(ERROR_QUEUE_SIZE + 3):
            await ask(server.port, f"NO:SUCH{index};*OPC?\n".encode())
        (count,) = await ask(server.port, b"SYST:ERR:COUN?\n")
        assert count == b"10\n"
        entries = await ask(server.port, b"SYST:ERR?\n" * 11, replies=11)
    assert entries[0] == b'-113,"Undefined header; NO:SUCH0"\n'
    assert entries[8] == b'-113,"Undefined header; NO:SUCH8"\n'
    assert entries[9] == b'-350,"Queue overflow"\n'
    assert entries[10] == b'0,"No error"\n'


async def test_failed_query_is_answered_with_an_empty_line_and_queues_why() -> None:
    counter, _ = make_counter()
    async with serve_scpi(CounterScpi(counter)) as server:
        assert await ask(server.port, b"*IDN?;FETC?\n") == [b"\n"]
        (entry,) = await ask(server.port, b"SYST:ERR?\n")
        assert entry.startswith(b'102,"No result available; no count')
        cases = {
            b'SAMP:ID "unterminated\n': b"-102",
            b"SAMP:ID 12\n": b"-104",
            b"SAMP:ID\n": b"-109",
            b'SAMP:ID "a","b"\n': b"-108",
            b'SAMP:ID "nowhere"\n': b"110",
            b"INIT\n": b"111",
            b'SAMP:OPER ""\n': b"-224",
        }
        for message, code in cases.items():
            await ask(server.port, message + b"*OPC?\n")
            (entry,) = await ask(server.port, b"SYST:ERR?\n")
            assert entry.startswith(code + b","), (message, entry)


async def test_status_byte_event_register_and_enables() -> None:
    async with serve_scpi(FreezerScpi(make_freezer())) as server:
        (stb,) = await ask(server.port, b"*CLS;*ESE 60;*SRE 32;FOO\n*STB?\n")
        assert stb == b"100\n"  # error available 4 + event summary 32 + service request 64
        assert await ask(server.port, b"*ESR?;*STB?\n") == [b"32;4\n"]
        assert await ask(server.port, b"SYST:ERR?;*STB?\n") == [b'-113,"Undefined header; FOO";0\n']
        assert await ask(server.port, b"*ESE?;*SRE?\n") == [b"60;32\n"]
        assert await ask(server.port, b"*ESE 256;*ESE?\n") == [b"\n"]
        (entry,) = await ask(server.port, b"SYST:ERR?\n")
        assert entry.startswith(b"-222,")


async def test_a_count_is_overlapped_and_status_answers_meanwhile() -> None:
    counter, sample = make_counter()
    async with serve_scpi(CounterScpi(counter)) as server:
        port = server.port
        message = f'*CLS;STAT:OPER:ENAB 16;SAMP:ID "{sample.sample_id}";INIT;*OPC;*ESR?\n'
        assert await ask(port, message.encode()) == [b"0\n"]
        assert await ask(port, b"STAT:OPER:COND?;STAT:OPER?;STAT:OPER?;*STB?\n") == [b"16;16;0;0\n"]
        assert await ask(port, b"INIT;*IDN?\n") == [b"\n"]  # busy: 101
        await anyio.sleep(91)
        assert await ask(port, b"STAT:OPER:COND?;*ESR?\n") == [b"0;9\n"]  # OPC + DDE (101)
        (record,) = await ask(port, b"FETC?\n")
        assert parse_count(record.decode().rstrip("\n")).sample_id == sample.sample_id
        # *RST drops the result; ABORt stops a count without one
        assert await ask(port, b"*RST;INIT;*IDN?\n") == [b"\n"]
        assert await ask(port, f'SAMP:ID "{sample.sample_id}";INIT;ABOR;*OPC?\n'.encode()) == [
            b"1\n"
        ]
        assert await ask(port, b"FETC?\n") == [b"\n"]


async def test_freezer_measures_and_refuses_out_of_range_segments() -> None:
    async with serve_scpi(FreezerScpi(make_freezer())) as server:
        port = server.port
        assert await ask(port, b"MEAS:TEMP:CHAM?\n") == [b"\n"]  # nothing loaded: 100
        steps = b'*CLS;PROF:CLE;PROF:NAME "short";PROF:RAMP -1,-5;PROF:HOLD 5;PROF:LOAD\n'
        assert await ask(port, steps + b"SYST:ERR?\n") == [b'0,"No error"\n']
        (chamber,) = await ask(port, b"MEAS:TEMP:CHAM?\n")
        assert abs(float(chamber) - 4.0) < 1.0
        (state,) = await ask(port, b"PROG:STAT?\n")
        assert state == b"LOADED,-1,0.0,0\n"
        for bad, code in [
            (b"PROF:RAMP -1,-500", b"-222"),
            (b"PROF:RAMP 0,-5", b"-224"),
            (b"PROF:RAMP -60,-5", b"-222"),
            (b"PROF:TEMP 41", b"-222"),
            (b"PROF:CLE;PROF:LOAD", b"-221"),
            (b'PROF:CLE;PROF:NAME "x";PROF:RAMP 1,-5;PROF:LOAD', b"-221"),
            (b'INIT "BAG-9"', b"121"),
        ]:
            (entry,) = await ask(port, bad + b"\nSYST:ERR?\n")
            assert entry.startswith(code + b","), (bad, entry)


async def test_a_failing_handler_queues_an_execution_error_and_the_server_goes_on() -> None:
    class Broken(FreezerScpi):
        def register(self, table: HeaderTable) -> None:
            super().register(table)
            table.add("BROKen?", self._broken)

        async def _broken(self, args: Args) -> str:
            raise RuntimeError("simulator bug")

    async with serve_scpi(Broken(make_freezer())) as server:
        assert await ask(server.port, b"BROK?\n") == [b"\n"]
        (entry,) = await ask(server.port, b"SYST:ERR?\n")
        assert entry == b"-200,\"Execution error; internal error: RuntimeError('simulator bug')\"\n"
        assert await ask(server.port, b"*OPC?\n") == [b"1\n"]
