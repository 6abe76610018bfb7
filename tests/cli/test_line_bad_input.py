"""Line files that cannot be served or do not fit: exit 2, naming what and where."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellauto.records.backend import Location
from tests.cli.conftest import DEMO, Cli
from tests.raw_sql import nothing_written


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("adapter", "equipment", "interface", "endpoint"),
    [
        ("visa", "counter", "CellCounter", "TCPIP0::127.0.0.1::{port}::SOCKET"),
        ("opcua", "bioreactor", "Bioreactor", "opc.tcp://127.0.0.1:{port}/cellauto/bioreactor"),
    ],
)
def test_serving_on_a_port_in_use_exits_2_naming_it(
    cli: Cli,
    tmp_path: Path,
    taken_port: int,
    adapter: str,
    equipment: str,
    interface: str,
    endpoint: str,
) -> None:
    line = tmp_path / "busy.toml"
    line.write_text(
        f'name = "busy"\n\n[simulation]\nseed = 1\n\n[equipment.{equipment}]\n'
        f'adapter = "{adapter}"\ninterface = "{interface}"\n'
        f'endpoint = "{endpoint.format(port=taken_port)}"\n',
        encoding="utf-8",
    )
    result = cli("sim", "serve", line, "--for-s", "0")
    assert result.code == 2, result.err
    assert f"cannot serve {equipment!r} on 127.0.0.1 port {taken_port}" in result.err
    assert "port 0 picks a free one" in result.err
    assert "Traceback" not in result.err


def test_a_line_file_interface_that_is_not_the_protocols_is_refused(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    line = tmp_path / "mixed-up.toml"
    line.write_text(
        'name = "mixed-up"\n\n[simulation]\nserve = true\nseed = 1\n\n'
        '[equipment.scanner]\nadapter = "sim"\n\n'
        '[equipment.bioreactor]\nadapter = "sim"\n\n'
        '[equipment.counter]\nadapter = "sim"\ninterface = "Bioreactor"\n',
        encoding="utf-8",
    )
    db = db_location
    result = cli("run", DEMO, "--line", line, "--db", db)
    assert result.code == 2, result.err
    assert (
        "line 'mixed-up': equipment 'counter' is a Bioreactor in the line file, but the "
        "protocol needs a CellCounter there"
    ) in result.err
    assert nothing_written(db)
