"""``cellauto trends`` and ``cellauto export --measurements --parquet --allotrope``."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from cellauto.cli import main
from cellauto.records.backend import Location
from cellauto.review import _optional
from tests.raw_sql import nothing_written, raw_connect

from .conftest import EXCURSION_AT


def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    out = capsys.readouterr()
    return code, out.out, out.err


def _no_analysis_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_optional, "import_module", missing)


def test_trends_writes_csv_and_html(
    trend_db: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, run_ids = trend_db
    out = tmp_path / "out"
    code, text, err = _cli(
        capsys, "trends", "--protocol", "car-t-autologous", "--out", out, "--db", path
    )
    assert code == 0, err
    assert (
        "car-t-autologous: 12 batches (simulated batches only: the protocol has no real"
        " batch), right first time 11 of 12"
    ) in text
    assert f"deviations per batch of run {run_ids[EXCURSION_AT][:12]}" in text
    assert (out / "trends.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    with (out / "trends.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["protocol"] for r in rows} == {"car-t-autologous"}

    code, text, err = _cli(capsys, "trends", "--out", out, "--baseline", "3", "--db", path)
    assert code == 0, err
    assert "nk-expansion: 1 batches" in text
    with (out / "trends.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["baseline_batches"] for r in rows if r["protocol"] == "car-t-autologous"} == {"3"}


def _as_real(path: Path | Location, run_ids: list[str]) -> None:
    """Mark runs as real batches (their run_started says simulated: false). Trends read
    the tables as indexes, so this stands in for real runs of the same protocol."""
    conn = raw_connect(path)
    for run_id in run_ids:
        done = conn.execute(
            "UPDATE records SET body = replace(body, '\"simulated\":true', '\"simulated\":false')"
            " WHERE run_id = ? AND seq = 0",
            (run_id,),
        )
        assert done.rowcount == 1
    conn.close()


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_trends_keep_simulated_batches_apart(
    trend_db: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, run_ids = trend_db
    real = run_ids[:4]
    _as_real(path, real)
    out = tmp_path / "out"
    code, text, err = _cli(
        capsys, "trends", "--protocol", "car-t-autologous", "--out", out, "--db", path
    )
    assert code == 0, err
    assert "4 batches (real batches only; 8 simulated batches left out" in text
    rows = [r for r in _csv(out / "trends.csv") if r["metric"] == "fold_expansion"]
    assert [(r["run_id"], r["simulated"]) for r in rows] == [(r, "no") for r in real]
    page = (out / "trends.html").read_text(encoding="utf-8")
    assert "Batches trended: real batches only; 8 simulated batches left out" in page

    code, text, err = _cli(capsys, "trends", "--out", out, "--include-simulated", "--db", path)
    assert code == 0, err
    assert "car-t-autologous: 12 batches (real and simulated batches mixed" in text
    assert "nk-expansion: 1 batches (simulated batches only" in text
    rows = [
        r
        for r in _csv(out / "trends.csv")
        if r["metric"] == "fold_expansion" and r["protocol"] == "car-t-autologous"
    ]
    assert [r["simulated"] for r in rows] == ["no"] * 4 + ["yes"] * 8
    page = (out / "trends.html").read_text(encoding="utf-8")
    assert "real and simulated batches mixed (--include-simulated); simulated ones marked" in page
    assert page.count("<td>simulated</td>") == 8 + 1 and page.count("<td>real</td>") == 4


def test_trends_refusals_exit_2_and_write_nothing(
    trend_db: tuple[Path, list[str]],
    db_location: Location,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = trend_db
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "trends", "--protocol", "nope", "--out", out, "--db", path)
    assert code == 2
    assert "no finished run of protocol 'nope'" in err and "car-t-autologous" in err
    code, _, err = _cli(capsys, "trends", "--baseline", "1", "--out", out, "--db", path)
    assert code == 2 and "at least 2" in err
    code, _, err = _cli(capsys, "trends", "--out", out, "--db", tmp_path / "none.db")
    assert code == 2
    _no_analysis_libraries(monkeypatch)
    code, _, err = _cli(capsys, "trends", "--out", out, "--db", path)
    assert code == 2 and "cellauto[analysis]" in err
    assert nothing_written(out)


def test_export_for_analysis(
    trend_db: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, run_ids = trend_db
    out = tmp_path / "export"
    run = run_ids[0]
    code, text, err = _cli(
        capsys,
        "export",
        run[:10],
        "--out",
        out,
        "--measurements",
        "--parquet",
        "--allotrope",
        "--db",
        path,
    )
    assert code == 0, err
    names = {Path(line).name for line in text.splitlines()}
    assert {
        "run.json",
        "measurements.csv",
        "batch-values.csv",
        "measurements.parquet",
        "batch-values.parquet",
        "cell-counts.json",
    } <= names
    with (out / "measurements.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["unit"] for r in rows)
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(out / "measurements.parquet").num_rows == len(rows)
    counts = orjson.loads((out / "cell-counts.json").read_bytes())
    assert counts["cell counting aggregate document"]["cell counting document"]

    plain = tmp_path / "plain"
    code, text, _ = _cli(capsys, "export", run, "--out", plain, "--db", path)
    assert code == 0 and not (plain / "measurements.csv").exists()


def test_export_refusals(
    trend_db: tuple[Path, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, run_ids = trend_db
    out = tmp_path / "export"
    code, _, err = _cli(capsys, "export", "--site", "--measurements", "--out", out, "--db", path)
    assert code == 2 and "--measurements" in err and "RUN_ID" in err
    _no_analysis_libraries(monkeypatch)
    code, _, err = _cli(capsys, "export", run_ids[0], "--parquet", "--out", out, "--db", path)
    assert code == 2 and "cellauto[analysis]" in err
    assert nothing_written(out)
