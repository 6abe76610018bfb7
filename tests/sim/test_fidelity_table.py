"""The fidelity table (issue 14, item 7): rows over seeds, shares, the Markdown table,
its section in a document, and ``cellauto sim fidelity``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cellauto.cli import main
from cellauto.sim.fidelity import (
    CAR_T_ROWS,
    NK_ROWS,
    Row,
    SeedSummary,
    build_table,
    rows_for,
    write_section,
)
from cellauto.sim.fidelity.table import format_number

ROOT = Path(__file__).resolve().parents[2]


def _seed(seed: int, viability: float, failed: list[str] | None = None) -> SeedSummary:
    return SeedSummary(
        protocol="p.py",
        seed=seed,
        exit_status="complete",
        duration_h=1.0,
        failed_checks=failed or [],
        checks={"viability at release": viability},
        values={"fold expansion": 10.0 * (seed + 1), "flag": True},
        derived={"peak lactate": 12.0},
        patient={"starting_material.viable_cells": 2e9, "population": "p"},
    )


SEEDS = [_seed(0, 90.0), _seed(1, 80.0, ["dose"]), _seed(2, 60.0), _seed(3, 95.0, ["x"])]
VIABILITY = Row(
    name="viability at release",
    kind="check",
    key="viability at release",
    unit="%",
    median_range=(80, 95),
    all_range=(55, 99),
    source="s",
)


def test_a_spread_row_is_inside_only_with_its_median_and_every_seed_in_range() -> None:
    result = VIABILITY.evaluate(SEEDS)
    assert (result.n, result.min, result.median, result.max) == (4, 60.0, 85.0, 95.0)
    assert result.inside
    narrow = VIABILITY.model_copy(update={"all_range": (65.0, 99.0)}).evaluate(SEEDS)
    assert not narrow.inside  # seed 2 at 60 % is below every seed's range
    shifted = VIABILITY.model_copy(update={"median_range": (86.0, 95.0)}).evaluate(SEEDS)
    assert not shifted.inside


@pytest.mark.parametrize(
    ("kind", "key", "expected"),
    [
        ("value", "fold expansion", 25.0),
        ("derived", "peak lactate", 12.0),
        ("patient", "starting_material.viable_cells", 2e9),
    ],
)
def test_a_row_reads_values_derived_quantities_and_the_patient(
    kind: str, key: str, expected: float
) -> None:
    row = Row(name=key, kind=kind, key=key, median_range=(0, 1e12), source="s")  # type: ignore[arg-type]
    assert row.evaluate(SEEDS).median == expected


def test_text_and_booleans_are_not_quantities() -> None:
    for key in ("population", "flag"):
        kind = "patient" if key == "population" else "value"
        row = Row(name=key, kind=kind, key=key, median_range=(0, 1), source="s")  # type: ignore[arg-type]
        assert row.evaluate(SEEDS).n == 0


def test_a_share_row_counts_the_seeds_that_failed_any_named_check() -> None:
    row = Row(
        name="out of specification",
        kind="failed",
        key="dose | viability at release",
        median_range=(5, 30),
        source="s",
    )
    result = row.evaluate(SEEDS)
    assert (result.n, result.median, result.min, result.max) == (4, 25.0, None, None)
    assert result.inside
    assert not row.model_copy(update={"median_range": (0, 20)}).evaluate(SEEDS).inside


def test_rows_refuse_upside_down_ranges_and_a_share_with_a_seed_range() -> None:
    with pytest.raises(ValidationError, match="upside down"):
        Row(name="r", kind="check", key="k", median_range=(2, 1), source="s")
    with pytest.raises(ValidationError, match="no all-seeds range"):
        Row(name="r", kind="failed", key="k", median_range=(1, 2), all_range=(0, 3), source="s")


def test_numbers_are_shown_to_three_figures() -> None:
    assert [format_number(v) for v in (5e9, 97.44, -1.0734, 0.0, 1234.6, None)] == [
        "5.00e9",
        "97.4",
        "-1.07",
        "0",
        "1235",
        "—",
    ]


def test_the_table_is_written_into_its_section_and_rewritten_in_place(tmp_path: Path) -> None:
    table = build_table("p.py", SEEDS, [VIABILITY])
    text = table.markdown()
    assert "seeds 0-3, drawn patients: 1 of 1 rows inside" in text
    assert "| viability at release | % | 4 | 60 | 85 | 95 | 80 to 95 | 55 to 99 | ✓ | s |" in text
    document = tmp_path / "fidelity.md"
    document.write_text("# Fidelity\n\nintro\n", encoding="utf-8")
    assert write_section(document, table)
    assert not write_section(document, table)  # the same table: nothing changes
    other = build_table("q.py", SEEDS[:2], [VIABILITY])
    assert write_section(document, other)
    worse = build_table("p.py", SEEDS, [VIABILITY.model_copy(update={"median_range": (0, 1)})])
    assert not worse.inside and worse.outside == ["viability at release"]
    assert write_section(document, worse)
    page = document.read_text(encoding="utf-8")
    assert page.startswith("# Fidelity\n\nintro\n")
    assert page.count("<!-- fidelity: p.py -->") == 1 and "✗" in page
    assert page.count("<!-- /fidelity: q.py -->") == 1


def test_the_shipped_protocols_have_their_published_rows() -> None:
    assert rows_for(ROOT / "protocols" / "car_t_autologous.py") is CAR_T_ROWS
    assert rows_for("nk_expansion.py") is NK_ROWS
    with pytest.raises(KeyError, match=r"no published ranges for demo_expansion\.py"):
        rows_for("demo_expansion.py")
    for rows in (CAR_T_ROWS, NK_ROWS):
        assert len({row.name for row in rows}) == len(rows)
        assert all(row.source for row in rows)


def test_the_command_prints_the_table_and_checks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    protocol = str(ROOT / "protocols" / "car_t_autologous.py")
    out = tmp_path / "fidelity.md"
    args = ["sim", "fidelity", protocol, "--seeds", "2", "--workers", "1", "--out", str(out)]
    code = main(args)
    printed = capsys.readouterr().out
    assert "`car_t_autologous.py`, seeds 0-1, drawn patients:" in printed
    assert f"{out}: updated" in printed
    assert "<!-- fidelity: car_t_autologous.py -->" in out.read_text(encoding="utf-8")
    assert code == 0  # without --check a row outside is printed, not an error
    # two seeds cannot have the published share (5-15 %) of out-of-specification batches
    assert main([*args, "--check"]) == 1
    assert "outside:" in capsys.readouterr().out


def test_the_command_refuses_an_unknown_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", "fidelity", str(tmp_path / "none.py"), "--seeds", "1"]) == 2
    assert "no protocol file" in capsys.readouterr().err
    demo = str(ROOT / "protocols" / "demo_expansion.py")
    assert main(["sim", "fidelity", demo, "--seeds", "1"]) == 2
    assert "no published ranges for demo_expansion.py" in capsys.readouterr().err


def test_a_car_t_seed_has_the_quantities_the_table_derives() -> None:
    from cellauto.sim.fidelity import run_seed

    summary = run_seed(str(ROOT / "protocols" / "car_t_autologous.py"), 3, patient="typical")
    derived = summary.derived
    assert set(derived) == {
        "starting material total cells",
        "enrichment T-cell recovery",
        "peak lactate",
        "pH at peak lactate",
        "latent-heat rise",
    }
    assert derived["starting material total cells"] == pytest.approx(5e9 * 100 / 97)
    assert 30 < derived["enrichment T-cell recovery"] < 80  # the enrichment keeps 55 ± 6 %
    assert 5 < derived["peak lactate"] < 30 and 6.8 < derived["pH at peak lactate"] < 7.5
    assert 0 <= derived["latent-heat rise"] < 4
