"""`cellauto sim serve lines/sim-serve.toml` in another process, used as a line engineer
would: a plain pyvisa session counts a sample it draws, netcat reads a label."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa

from cellauto.instruments.visa.counter import parse_count

ROOT = Path(__file__).resolve().parents[2]
SERVE_LINE = ROOT / "lines" / "sim-serve.toml"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The shipped sim-serve line on free ports (port 0), at speed 600; its endpoints."""
    line = tmp_path / "sim-serve.toml"
    text = SERVE_LINE.read_text(encoding="utf-8")
    line.write_text(re.sub(r"(::|:)(5025|5026|9004)\b", r"\g<1>0", text), encoding="utf-8")
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "sim", "serve", str(line), "--speed", "600"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = json.loads(server.stdout.readline())
        assert first["line"] == "sim-serve" and first["speed"] == 600
        yield first["endpoints"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_plain_pyvisa_session_draws_a_sample_and_counts_it(served: dict[str, str]) -> None:
    assert set(served) == {"counter", "freezer", "scanner"}
    manager = pyvisa.ResourceManager("@py")
    try:
        counter = manager.open_resource(
            served["counter"], read_termination="\n", write_termination="\n", timeout=10_000
        )
        sample_id = counter.query('SAMP:DRAW? "sample tube 1",0.5').strip('"')
        assert sample_id == "CC-0001-S0001"
        assert counter.query("SAMP:ID?") == f'"{sample_id}"'  # drawn and selected
        counter.write('SAMP:OPER "alice";:INIT')
        assert counter.query("*OPC?") == "1"  # 90 s of process time
        count = parse_count(counter.query("FETC?"))
        assert counter.query("SYST:ERR?") == '0,"No error"'
        counter.write('SAMP:DRAW "sample tube 1",0.5')  # the command form selects it too
        assert counter.query("SAMP:ID?") == '"CC-0001-S0002"'
        counter.write('SAMP:DRAW "no such tube",0.5')
        assert counter.query("SYST:ERR?").startswith('121,"Container not found; SAMP:DRAW: ')
        counter.write('SAMP:DRAW "sample tube 1",50')
        assert counter.query("SYST:ERR?").startswith('-222,"Data out of range; SAMP:DRAW: 50 mL')
        counter.close()
    finally:
        manager.close()
    assert (count.sample_id, count.operator, count.instrument_serial) == (
        sample_id,
        "alice",
        "CC-0001",
    )
    # PBMC as it arrives (sim/starting_material.py): 1e9 viable cells in 100 mL, 95 %
    assert 0.7e7 < count.viable_cells_per_ml < 1.3e7
    assert 90 <= count.viability_pct <= 100


def test_netcat_reads_the_sample_tube_label(served: dict[str, str]) -> None:
    """As docs/barcode-scanner.md shows: send, shut the write side, read the replies."""
    host, port = served["scanner"].removeprefix("tcp://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"IDN\rPRESENT sample tube 1\rLON\r")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.split(b"\r") == [
        b"cellauto-sim,SimScan 2D,BS-0003,sim-1.0",
        b"OK",
        b"&/CHW123426A1B2C3W",
        b"",
    ]
