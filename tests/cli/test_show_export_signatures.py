"""Signatures of operator tasks in ``cellauto show`` and ``cellauto export``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from cellauto import Protocol, Run, Spec
from cellauto.records.backend import Location
from cellauto.records.export import SIGNATURE_COLUMNS
from cellauto.sim import simulate
from tests.cli.conftest import Cli

SIGNED = "signed: Simulated operator {letter} (sim:operator-{lower}) — {meaning} — {when} UTC "
SIM_MARK = "(+00:00)  [SIMULATED OPERATOR]"


def _protocol() -> Protocol:
    protocol = Protocol("signed-steps", version="1")

    @protocol.step
    async def formulate(run: Run) -> None:
        await run.confirm("connect bag", instruction="Weld the bag to the set.")
        await run.enter(
            "bag weight",
            type=float,
            unit="g",
            spec=Spec(min=70, max=90, unit="g"),
            instruction="Weigh the filled bag.",
            verify=True,
        )

    return protocol


def _run(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "signed.db"
    result = simulate(_protocol(), db=db, seed=2, patient="typical")
    assert result.exit_status == "complete"
    return db, result.outcome.run_id


def _signed(letter: str, meaning: str, when: str) -> str:
    return SIGNED.format(letter=letter, lower=letter.lower(), meaning=meaning, when=when) + (
        SIM_MARK
    )


def test_show_prints_each_signature_under_its_record(cli: Cli, tmp_path: Path) -> None:
    db, run_id = _run(tmp_path)
    result = cli("show", run_id, "--db", db)
    assert result.code == 0, result.err
    lines = result.lines
    task_lines = [i for i, line in enumerate(lines) if "task " in line.lower()]
    assert any(
        "TASK" in lines[i] and "opened: confirm 'connect bag'" in lines[i] for i in task_lines
    )
    performed = next(i for i, line in enumerate(lines) if line.endswith("performed"))
    assert lines[performed + 1] == "          " + _signed("A", "performed", "2026-01-05 08:05:00")
    answered = next(i for i, line in enumerate(lines) if "answered: 80.0" in line)
    assert lines[answered + 1] == "          " + _signed("A", "performed", "2026-01-05 08:10:00")
    verified = next(i for i, line in enumerate(lines) if line.endswith("verified"))
    assert lines[verified + 1] == "          " + _signed("B", "verified", "2026-01-05 08:13:00")


def test_export_writes_signatures_csv_and_run_json(cli: Cli, tmp_path: Path) -> None:
    db, run_id = _run(tmp_path)
    out = tmp_path / "export"
    result = cli("export", run_id, "--out", out, "--db", db)
    assert result.code == 0, result.err
    with (out / "signatures.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == SIGNATURE_COLUMNS
    assert [(r["record_kind"], r["signer"], r["meaning"]) for r in rows] == [
        ("task_answered", "sim:operator-a", "performed"),
        ("task_answered", "sim:operator-a", "performed"),
        ("task_verified", "sim:operator-b", "verified"),
    ]
    first = rows[0]
    assert first["printed_name"] == "Simulated operator A"
    assert first["signed_at_local"] == "2026-01-05T08:05:00.000000+00:00"
    assert first["signed_at_utc"] == "2026-01-05T08:05:00.000000+00:00"
    assert (first["time_zone"], first["utc_offset"]) == ("UTC", "+00:00")
    assert (first["site_seq"], first["site_hash"], first["simulated"]) == ("", "", "true")
    assert {r["confirmed"] for r in rows} == {"simulated"}
    assert len(first["task_id"]) == 8 and int(first["run_seq"]) > 0
    document = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert [s["run_seq"] for s in document["signatures"]] == [int(r["run_seq"]) for r in rows]
    assert (out / "task_opened.csv").is_file() and (out / "task_verified.csv").is_file()


def test_run_without_operator_tasks_exports_no_signatures(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    protocol = Protocol("plain", version="1")

    @protocol.step
    async def nothing(run: Run) -> None:
        await run.sleep(minutes=1)

    run_id = simulate(protocol, db=db, patient="typical").outcome.run_id
    out = tmp_path / "export"
    assert cli("export", run_id, "--out", out, "--db", db).code == 0
    assert not (out / "signatures.csv").exists()
    assert "signatures" not in json.loads((out / "run.json").read_text(encoding="utf-8"))
