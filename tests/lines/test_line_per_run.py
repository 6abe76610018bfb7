"""``[simulation] line_per_run = true``: read, and refused where it cannot hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.errors import BadInputError
from cellauto.lines import load_line_config

SIM = """
name = "rehearsal"

[equipment.scanner]
adapter = "sim"

[equipment.bioreactor]
adapter = "sim"
"""


def _line(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "line.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_line_of_simulated_equipment_may_give_each_run_its_own_line(tmp_path: Path) -> None:
    line = load_line_config(_line(tmp_path, SIM + "[simulation]\nline_per_run = true\n"))
    assert line.simulation.line_per_run and line.is_simulation
    plain = load_line_config(_line(tmp_path, SIM + "[simulation]\nseed = 3\n"))
    assert not plain.simulation.line_per_run


def test_line_per_run_is_refused_with_equipment_reached_over_the_wire(tmp_path: Path) -> None:
    text = SIM + (
        '[equipment.counter]\nadapter = "visa"\nendpoint = "TCPIP0::127.0.0.1::5025::SOCKET"\n'
        "[simulation]\nline_per_run = true\n"
    )
    with pytest.raises(BadInputError) as refused:
        load_line_config(_line(tmp_path, text))
    message = str(refused.value)
    assert "line.toml" in message and "counter (visa)" in message
    assert 'every equipment must be adapter = "sim"' in message
    assert "Value error" not in message  # the check's own words, not pydantic's prefix


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("seed = 3", "seed (each run's seed is its own"),
        ("serve = true", "serve (nothing is served"),
        ("speed = 100.0", "speed (the runs go in virtual time"),
        ("epoch = 2026-01-01T00:00:00Z", "epoch (the runs go in virtual time"),
    ],
)
def test_line_per_run_refuses_what_belongs_to_one_line_shared_by_every_run(
    tmp_path: Path, given: str, why: str
) -> None:
    text = SIM + f"[simulation]\nline_per_run = true\n{given}\n"
    with pytest.raises(BadInputError, match="line_per_run = true: drop ") as refused:
        load_line_config(_line(tmp_path, text))
    assert why in str(refused.value)


def test_line_per_run_refuses_a_shared_instrument(tmp_path: Path) -> None:
    text = SIM + (
        '[equipment.counter]\nadapter = "sim"\nshared = { capacity = 1 }\n'
        "[simulation]\nline_per_run = true\n"
    )
    with pytest.raises(BadInputError, match="equipment counter is shared"):
        load_line_config(_line(tmp_path, text))
