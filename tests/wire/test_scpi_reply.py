"""The strict SCPI reply parser: exact values or ScpiReplyError, fuzzed with hypothesis."""

from __future__ import annotations

import csv
import math
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellauto.instruments.cell_counter import CellCount
from cellauto.instruments.visa.counter import parse_count
from cellauto.instruments.visa.errors import ScpiReplyError
from cellauto.instruments.visa.freezer import parse_result, parse_status
from cellauto.instruments.visa.scpi_reply import (
    parse_bool,
    parse_error_entry,
    parse_idn,
    parse_int,
    parse_optional_real,
    parse_real,
    parse_string,
    reply_text,
    split_fields,
)
from cellauto.sim.scpi.counter import format_count

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COUNT = CellCount(
    sample_id='P-S0001 "a,b"',
    total_cells_per_ml=11804982.11025358,
    viable_cells_per_ml=11373396.630126271,
    viability_pct=96.34403952419004,
    mean_diameter_um=9.123276356910129,
    operator="Zoë",
    counted_at_process_time_s=1767225690.0313141,
    instrument_serial="CC-0001",
)
COUNT_LINE = (format_count(COUNT) + "\n").encode()
NUMERIC_FIELDS = (1, 2, 3, 4, 5, 7)
PARSERS = (
    parse_real,
    parse_optional_real,
    parse_int,
    parse_bool,
    parse_string,
    parse_error_entry,
    parse_idn,
    parse_count,
    parse_status,
    parse_result,
)
MUTATION_BYTES = list(b'0123456789.,-+eE" \n\xff\x00a')


def test_exact_values_and_refusals() -> None:
    assert parse_real("-1.25E+01") == -12.5
    assert parse_real("12.") == 12.0 and parse_real(".5") == 0.5 and parse_real("+7") == 7.0
    assert parse_optional_real("9.91E+37") is None
    assert parse_int("-1") == -1
    assert parse_string('"say ""hi"", then go"') == 'say "hi", then go'
    assert split_fields('"a,b",1,""""') == ['"a,b"', "1", '""""']
    assert parse_error_entry('-222,"Data out of range; x"') == (-222, "Data out of range; x")
    assert parse_idn("cellauto-sim,SimCount BLU,CC-0001,sim-1.0")[1] == "SimCount BLU"
    assert parse_count(reply_text(COUNT_LINE)) == COUNT
    refused = {
        parse_real: [
            "",
            " 1",
            "1 ",
            "1,0",
            "0x10",
            "1_000",
            "nan",
            "inf",
            "1e999",
            "9.9E37",
            "\u0661",
        ],
        parse_optional_real: ["-9.9E37", "9.9E37", "NAN"],
        parse_int: ["1.0", "1e3", "", "+"],
        parse_bool: ["ON", "2", "true", " 1"],
        parse_string: ['"', "abc", '"a"b"', "'a'"],
        parse_idn: ["a,b,c", "a,b,c,d,e", "a,,c,d", "a, b,c,d"],
    }
    for parse, texts in refused.items():
        for text in texts:
            with pytest.raises(ScpiReplyError):
                parse(text)


def test_a_reply_line_must_be_one_complete_utf8_line() -> None:
    assert reply_text("-5 °C\n".encode()) == "-5 °C"
    for raw in [b"1.5", b"1.5\n2\n", b"1.5\r\n", b"1\x005\n", b"\xc3\n", b""]:
        with pytest.raises(ScpiReplyError):
            reply_text(raw)
    with pytest.raises(ScpiReplyError, match=r"partial reply: no terminating newline") as caught:
        reply_text(b'"P-S0001",1180')
    assert "b'\"P-S0001\",1180'" in str(caught.value)  # the reply is quoted


def test_variable_lists_and_optional_values() -> None:
    status = parse_status('RUNNING,2,17.5,2,"BAG-1","BAG-2"')
    assert (status.state, status.segment_index, status.loaded_container_ids) == (
        "running",
        2,
        ["BAG-1", "BAG-2"],
    )
    result = parse_result(
        'FAILED,"p",-20.0,0,9.91E+37,9.91E+37,0.0,9.91E+37,2,"power lost",1,"BAG-1"'
    )
    assert result.phase_change_process_time_s is None and result.power_interruptions == 2
    with pytest.raises(ScpiReplyError, match="announces 2 items but 1 follow"):
        parse_status('RUNNING,2,17.5,2,"BAG-1"')


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_never_crash_the_parser(raw: bytes) -> None:
    try:
        text = reply_text(raw)
    except ScpiReplyError:
        return
    for parse in PARSERS:
        try:
            value = parse(text)
        except ScpiReplyError:
            continue
        if parse in (parse_real, parse_optional_real) and value is not None:
            assert value == float(Decimal(text))


@FUZZ
@given(st.text(alphabet='0123456789+-.eE ,"9NAIaif#', max_size=40))
def test_fuzz_number_like_text_gives_the_encoded_value_or_an_error(text: str) -> None:
    for parse in (parse_real, parse_optional_real):
        try:
            value = parse(text)
        except ScpiReplyError:
            continue
        if value is not None:  # the float nearest to the decimal written, as Decimal reads it
            assert value == float(Decimal(text)) and math.isfinite(value)
    try:
        integer = parse_int(text)
    except ScpiReplyError:
        return
    assert Decimal(integer) == Decimal(text)  # exact, however long


@FUZZ
@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: abs(x) < 9.9e37))
def test_every_float_round_trips_exactly(value: float) -> None:
    text = repr(value)
    assert parse_real(text) == value
    assert math.copysign(1, parse_real(text)) == math.copysign(1, value)


def test_every_truncated_reply_is_refused() -> None:
    for cut in range(len(COUNT_LINE)):
        with pytest.raises(ScpiReplyError):
            parse_count(reply_text(COUNT_LINE[:cut]))


def _mutate(line: bytes, position: int, operation: str, byte: int) -> bytes:
    raw = bytearray(line)
    position %= len(raw)
    if operation == "replace":
        raw[position] = byte
    elif operation == "insert":
        raw.insert(position, byte)
    else:
        del raw[position]
    return bytes(raw)


def _check_count(raw: bytes) -> None:
    """Accepted only with every value exactly what the text encodes (read independently)."""
    try:
        count = parse_count(reply_text(raw))
    except ScpiReplyError:
        return
    fields = next(csv.reader([raw.decode().rstrip("\n")], strict=True))
    values = count.model_dump()
    for index, name in enumerate(CellCount.model_fields):
        if index in NUMERIC_FIELDS:
            assert values[name] == float(Decimal(fields[index])), (raw, name)
        else:
            assert values[name] == fields[index], (raw, name)


def test_every_single_byte_mutation_of_a_record_is_refused_or_exact() -> None:
    for position in range(len(COUNT_LINE)):
        for byte in MUTATION_BYTES:
            for operation in ("replace", "insert", "delete"):
                _check_count(_mutate(COUNT_LINE, position, operation, byte))


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(COUNT_LINE)),
            st.sampled_from(["replace", "insert", "delete"]),
            st.sampled_from(MUTATION_BYTES),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_mutated_records_give_the_mutated_values_or_an_error(
    mutations: list[tuple[int, str, int]],
) -> None:
    raw = COUNT_LINE
    for position, operation, byte in mutations:
        raw = _mutate(raw, position, operation, byte) if raw else raw
    _check_count(raw)
