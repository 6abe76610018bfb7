"""The Done criterion of issue 14: over 100 drawn patients each shipped protocol's
outcomes lie inside their published ranges (the fidelity table in docs/fidelity.md),
and the batches that miss a specification each end as the protocol declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.sim.fidelity import CAR_T_ROWS, NK_ROWS, Row, SeedSummary, build_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "fidelity.md"

#: How a batch ends after a failed check of each policy, unattended (simulate's
#: on_hold="stop"): continue carries on to the end, hold stops, abort aborts.
ENDING = {"continue": "complete", "hold": "stopped", "abort": "aborted"}


def _ending(summary: SeedSummary) -> str:
    """The exit a seed must have by the policies of its failed checks (the first hold
    or abort decides; only continue: complete)."""
    for policy in summary.failed_policies:
        if policy != "continue":
            return ENDING[policy]
    return "complete"


@pytest.mark.parametrize(("name", "rows"), [("car_t", CAR_T_ROWS), ("nk", NK_ROWS)])
def test_every_row_of_the_fidelity_table_is_inside_its_published_range(
    name: str, rows: tuple[Row, ...], request: pytest.FixtureRequest
) -> None:
    population: list[SeedSummary] = request.getfixturevalue(f"{name}_population")
    table = build_table(population[0].protocol, population, rows)
    assert table.inside, f"outside its published range:\n{table.markdown()}"


def test_some_car_t_batches_miss_a_specification(car_t_population: list[SeedSummary]) -> None:
    """Patients' cells differ: some batches of 100 miss a specification (the published
    share is 5-15 %; healthy NK donors may all pass, as the NK row allows)."""
    missed = [s for s in car_t_population if s.failed_checks]
    assert missed, "no seed of 100 missed a specification: the simulated line is too kind"


@pytest.mark.parametrize("name", ["car_t", "nk"])
def test_every_batch_ends_as_its_protocol_declares(
    name: str, request: pytest.FixtureRequest
) -> None:
    population: list[SeedSummary] = request.getfixturevalue(f"{name}_population")
    for summary in population:
        failed = list(zip(summary.failed_checks, summary.failed_policies, strict=True))
        assert summary.exit_status == _ending(summary), (
            f"seed {summary.seed}: failed {failed} but ended {summary.exit_status}"
        )
    assert {s.exit_status for s in population} <= set(ENDING.values())


def test_the_documented_table_is_all_inside() -> None:
    page = DOCS.read_text(encoding="utf-8")
    for protocol in ("car_t_autologous.py", "nk_expansion.py"):
        begin, end = f"<!-- fidelity: {protocol} -->", f"<!-- /fidelity: {protocol} -->"
        assert begin in page and end in page
        section = page.split(begin)[1].split(end)[0]
        assert "seeds 0-99, drawn patients" in section
        assert "| ✓ |" in section and "| ✗ |" not in section, f"{protocol}: a row is outside"
