"""A port already in use is bad input: exit 2 naming the equipment and the port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli


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
