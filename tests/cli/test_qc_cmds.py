"""``cellauto qc`` and ``cellauto sim qc``: a simulated batch's QC, from the simulated
lab's export to every test passed; refusals exit 2 and are journaled."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest

from tests.cli.people import People, own
from tests.raw_sql import journal_snapshot, raw_connect
from tests.review.conftest import Batch, batch, batch_template

__all__ = ["batch", "batch_template"]  # fixtures


@pytest.fixture
def lab(cli, batch: Batch, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> People:  # type: ignore[no-untyped-def]
    return People(cli, batch.path, monkeypatch, tmp_path)


def _refusals(db: Path) -> list[str]:
    with closing(raw_connect(db)) as conn:
        return [
            cause
            for (cause,) in conn.execute(
                "SELECT json_extract(body, '$.payload.cause') FROM site_records"
                " WHERE kind = 'review_act_refused' ORDER BY seq"
            )
        ]


def _tests(lab: People, run_id: str) -> dict[str, str]:
    done = lab("qc", "tests", run_id, "--json")
    assert done.code == 0, done.err
    return {row["test"]: row["state"] for row in json.loads(done.out)}


def test_simulated_lab_to_every_test_passed(lab: People, batch: Batch, tmp_path: Path) -> None:
    run_id = batch.run_id
    assert set(_tests(lab, run_id).values()) == {"missing"}
    shown = lab("qc", "tests", run_id[:12])
    assert shown.code == 0 and "endotoxin" in shown.out and "<= 5 EU/kg" in shown.out

    done = lab(
        "qc",
        "schema",
        "define",
        "sim-lims",
        "--builtin",
        "sim",
        "--as",
        "qa.smith",
        stdin=[own("qa.smith")],
    )
    assert done.code == 0, done.err
    assert "sim-lims v1 defined" in done.out
    listed = lab("qc", "schema", "list")
    assert listed.code == 0 and "sim-lims" in listed.out
    assert json.loads(lab("qc", "schema", "show", "sim-lims").out)["version"] == 1

    export = tmp_path / "results.csv"
    done = lab("sim", "qc", run_id, "--out", export, "--fault", "post-thaw viability:missing")
    assert done.code == 0, done.err
    assert "7 results" in done.out

    before = journal_snapshot(batch.path)
    dry = lab("qc", "import", run_id, export, "--schema", "sim-lims", "--dry-run")
    assert dry.code == 0, dry.err
    assert "dry run: 7 results would be imported" in dry.out
    assert journal_snapshot(batch.path) == before  # no session_opened, no refusal: nothing at all
    unsigned = lab("qc", "import", run_id, export, "--schema", "sim-lims")
    assert unsigned.code != 0 and "give --as USER" in unsigned.err
    assert journal_snapshot(batch.path) == before

    done = lab(
        "qc",
        "import",
        run_id,
        export,
        "--schema",
        "sim-lims",
        "--as",
        "lab.chen",
        stdin=[own("lab.chen")],
    )
    assert done.code == 0, done.err
    again = lab(
        "qc",
        "import",
        run_id,
        export,
        "--schema",
        "sim-lims",
        "--as",
        "lab.chen",
        stdin=[own("lab.chen")],
    )
    assert again.code == 2 and "already imported" in again.err
    states = _tests(lab, run_id)
    assert states.pop("post-thaw viability") == "missing"
    assert set(states.values()) == {"pass"}

    with closing(raw_connect(batch.path)) as conn:
        (din,) = conn.execute(
            "SELECT din || flag FROM containers WHERE run_id = ? AND key = 'QC sample'", (run_id,)
        ).fetchone()
    add = (
        "qc", "add", run_id, "--test", "post-thaw viability", "--value", "78.5",
        "--sample", "S-PTV-1", "--din", din, "--method", "trypan blue", "--analyst", "L. Chen",
        "--tested-on", "2026-01-25", "--instrument", "COUNTER-3",
    )  # fmt: skip
    done = lab(*add, "--as", "lab.chen", stdin=[own("lab.chen")])
    assert done.code == 0, done.err
    result_id = f"QC-{run_id[:12]}-post-thaw-viability-01"
    assert result_id in done.out
    assert _tests(lab, run_id)["post-thaw viability"] == "pass, unverified"

    refused = lab("qc", "verify", result_id, "--as", "lab.chen", stdin=[own("lab.chen")])
    assert refused.code == 2 and "may not verify it" in refused.err
    done = lab("qc", "verify", result_id, "--as", "lab.ito", stdin=[own("lab.ito")])
    assert done.code == 0, done.err
    assert _tests(lab, run_id)["post-thaw viability"] == "pass"

    refused = lab(*add, "--as", "lab.ito", stdin=[own("lab.ito")])
    assert refused.code == 2 and "a retest is recorded only after QA" in refused.err
    done = lab(
        "qc", "invalidate", result_id, "--cause", "sample thawed twice by mistake",
        "--as", "qa.lee", stdin=[own("qa.lee")],
    )  # fmt: skip
    assert done.code == 0, done.err
    assert _tests(lab, run_id)["post-thaw viability"] == "invalidated"
    assert _refusals(batch.path) == ["already_imported", "segregation", "retest_needs_invalidation"]


def test_oos_import_opens_a_deviation(lab: People, batch: Batch, tmp_path: Path) -> None:
    done = lab(
        "qc",
        "schema",
        "define",
        "sim-json",
        "--builtin",
        "sim-json",
        "--as",
        "qa.smith",
        stdin=[own("qa.smith")],
    )
    assert done.code == 0, done.err
    export = tmp_path / "results.json"
    done = lab(
        "sim",
        "qc",
        batch.run_id,
        "--out",
        export,
        "--format",
        "json",
        "--fault",
        "endotoxin:fail=9",
    )
    assert done.code == 0, done.err
    done = lab(
        "qc",
        "import",
        batch.run_id,
        export,
        "--schema",
        "sim-json",
        "--as",
        "lab.chen",
        stdin=[own("lab.chen")],
    )
    assert done.code == 0, done.err
    assert f"deviation DEV-{batch.run_id[:12]}-S01 opened" in done.out
    assert _tests(lab, batch.run_id)["endotoxin"] == "fail"


def test_borderline_results_are_flagged(lab: People, batch: Batch, tmp_path: Path) -> None:
    done = lab(
        "qc",
        "schema",
        "define",
        "sim-lims",
        "--builtin",
        "sim",
        "--as",
        "qa.smith",
        stdin=[own("qa.smith")],
    )
    assert done.code == 0, done.err
    export = tmp_path / "results.csv"
    done = lab("sim", "qc", batch.run_id, "--out", export, "--fault", "viability:borderline")
    assert done.code == 0, done.err
    done = lab(
        "qc",
        "import",
        batch.run_id,
        export,
        "--schema",
        "sim-lims",
        "--as",
        "lab.chen",
        stdin=[own("lab.chen")],
    )
    assert done.code == 0, done.err
    rows = {r["test"]: r for r in json.loads(lab("qc", "tests", batch.run_id, "--json").out)}
    assert (rows["viability"]["state"], rows["viability"]["borderline"]) == ("pass", True)
    assert rows["sterility"]["borderline"] is False
    assert "pass (borderline)" in lab("qc", "tests", batch.run_id).out


def test_bad_input(lab: People, batch: Batch, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    assert lab("sim", "qc", batch.run_id, "--out", out, "--fault", "endotoxin:melt").code == 2
    assert lab("sim", "qc", batch.run_id, "--out", out, "--fault", "potency:fail").code == 2
    assert lab("sim", "qc", "ab" * 16, "--out", out).code == 2
    assert lab("qc", "tests", "ab" * 16).code == 2
    assert lab("qc", "schema", "show", "nope").code == 2
    mapping = tmp_path / "map.json"
    mapping.write_text('{"format": "csv"}')
    done = lab(
        "qc",
        "schema",
        "define",
        "x",
        "--file",
        mapping,
        "--as",
        "qa.smith",
        stdin=[own("qa.smith")],
    )
    assert done.code == 2 and "columns" in done.err
    both = lab("qc", "add", batch.run_id, "--test", "viability", "--value", "1", "--text", "x")
    assert both.code == 2
    done = lab(
        "qc", "add", batch.run_id, "--test", "viability", "--value", "91", "--sample", "S",
        "--method", "m", "--analyst", "a", "--tested-on", "2026-01-20", "--instrument", "i",
        "--as", "qa.smith",
    stdin=[own("qa.smith")])  # fmt: skip
    assert done.code == 2 and "qc.enter" in done.err
    assert _refusals(batch.path) == ["permission"]
