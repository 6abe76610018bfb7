"""A run in one process against a bioreactor served over OPC UA by another (issue 9).

On main, ``cellauto run --line`` at ``speed`` 600 or 3600 against a bioreactor served by
a separate ``cellauto sim serve`` failed within a second with a raw ``ConnectionError:
Connection is closed``: asyncua's keep-alive probe and request timeouts ran on the
scaled clock (1 s of keep-alive at speed 3600 is 0.3 ms real).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellauto.records import Journal
from cellauto.records.backend import Location
from tests.cli.conftest import Cli

PAIR = Path(__file__).resolve().parent / "wire_pair"
PROTOCOL = PAIR / "bioreactor_only.py"
SERVE = [sys.executable, "-m", "cellauto", "sim", "serve"]
PLACEHOLDER = "opc.tcp://127.0.0.1:4840/cellauto/bioreactor"


@pytest.fixture
def served_bioreactor(request: pytest.FixtureRequest) -> Iterator[tuple[str, float]]:
    """``cellauto sim serve wire_pair/serve.toml`` in another process; (endpoint, speed)."""
    speed = float(request.param)
    server = subprocess.Popen(
        [*SERVE, str(PAIR / "serve.toml"), "--speed", f"{speed:g}", "--for-s", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        if not first:
            pytest.fail(f"sim serve ended before serving: {server.communicate()[1][-2000:]}")
        yield json.loads(first)["endpoints"]["bioreactor"], speed
    finally:
        server.terminate()
        server.communicate(timeout=30)


def _connect_line(tmp_path: Path, endpoint: str, speed: float) -> Path:
    text = (PAIR / "connect.toml").read_text(encoding="utf-8")
    assert PLACEHOLDER in text and "speed = 600" in text
    line = tmp_path / "connect.toml"
    line.write_text(
        text.replace(PLACEHOLDER, endpoint).replace("speed = 600", f"speed = {speed:g}"),
        encoding="utf-8",
    )
    return line


@pytest.mark.parametrize(
    ("served_bioreactor", "hours"), [(600, 1), (3600, 4)], indirect=["served_bioreactor"]
)
def test_a_run_against_a_bioreactor_served_by_another_process_completes(
    cli: Cli,
    db_location: Location,
    tmp_path: Path,
    served_bioreactor: tuple[str, float],
    hours: int,
) -> None:
    endpoint, speed = served_bioreactor
    db = db_location
    line = _connect_line(tmp_path, endpoint, speed)
    result = cli("run", PROTOCOL, "--line", line, "--db", db, "--param", f"hours={hours}")
    assert result.code == 0, result.out[-2000:] + result.err[-2000:]
    assert "ended Complete" in result.out
    assert "Traceback" not in result.err
    run_id = result.lines[0].split()[1]
    with Journal(db, create=False) as journal:
        records = journal.records(run_id)
    started = records[0].payload
    assert started.instruments["bioreactor"].adapter == "opcua"
    values = {r.payload.name: r.payload.value for r in records if r.kind == "batch_value"}
    assert sorted(values) == [f"culture volume h{h + 1}" for h in range(hours)]
    assert all(volume == pytest.approx(500.0, rel=0.1) for volume in values.values())
