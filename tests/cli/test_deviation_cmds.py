"""``cellauto deviations`` and ``cellauto deviation``: the list, show, and each act with
its password on stdin; refusals exit 2 naming why and are journaled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellauto.records.refs import Meaning, RecordRef
from cellauto.records.site_payloads_review import ReviewActRefused
from cellauto.review.read import runner_deviations
from cellauto.site.signatures import sign
from tests.cli.conftest import Cli
from tests.cli.people import People, own
from tests.raw_sql import raw_connect
from tests.review.conftest import Batch, batch, batch_template

__all__ = ["batch", "batch_template"]  # fixtures

IMPACT = "culture above 38 °C for 3 h; potency may be reduced"


@pytest.fixture
def lab(cli: Cli, batch: Batch, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> People:
    """``cellauto`` on the batch's journal, passwords on stdin."""
    return People(cli, batch.path, monkeypatch, tmp_path)


def _act(lab: People, who: str, *argv: object) -> object:
    return lab("deviation", *argv, "--as", who, stdin=[own(who)])


def _dev(batch: Batch) -> str:
    return f"DEV-{batch.run_id[:12]}-01"


def _refusals(batch: Batch) -> list[ReviewActRefused]:
    return [r for r in batch.site.records() if isinstance(r, ReviewActRefused)]


def test_major_walk_through_the_cli(lab: People, batch: Batch) -> None:
    dev = _dev(batch)
    listed = lab("deviations", "--open")
    assert listed.code == 0
    assert dev in listed.out and "open" in listed.out
    assert listed.lines[0].split() == [
        "DEVIATION",
        "RUN",
        "STEP",
        "STATUS",
        "CLASS",
        "TITLE",
        "OPENED",
    ]
    done = _act(
        lab, "sup.jones", "close", dev, "--conclusion", "closed by a supervisor", "--capa", "CAPA-1"
    )
    assert done.code == 2 and "needs deviation.close (qa)" in done.err
    done = _act(lab, "qa.smith", "classify", dev, "--class", "major", "--impact", IMPACT)
    assert done.code == 0, done.err
    assert f"deviation {dev} classified major, signed by qa.smith" in done.out
    done = _act(
        lab,
        "qa.smith",
        "close",
        dev,
        "--conclusion",
        "root cause corrected",
        "--capa",
        "CAPA-2026-0012",
    )
    assert (
        done.code == 2 and "only a minor deviation may close without an investigation" in done.err
    )
    done = _act(
        lab,
        "sup.jones",
        "investigate",
        dev,
        "--root-cause",
        "the heater overshot after a setpoint change",
        "--category",
        "equipment",
        "--product-impact",
        "none",
        "--impact-detail",
        "viability and potency within specification",
    )
    assert done.code == 0, done.err
    done = _act(
        lab,
        "qa.smith",
        "close",
        dev,
        "--conclusion",
        "root cause corrected",
        "--capa",
        "CAPA-2026-0012",
    )
    assert done.code == 0, done.err
    assert lab("deviations", "--open").out.startswith("no open deviations")
    assert [r.cause for r in _refusals(batch)] == ["permission", "needs_investigation"]
    shown = lab("deviation", "show", dev)
    assert shown.code == 0, shown.err
    lines = shown.lines
    assert lines[0].startswith(f"{dev}  run {batch.run_id}  closed  class major  (runner)")
    assert lines[1].startswith("  run record #")
    kinds = [line.split()[2] for line in lines if line.startswith("  site #")]
    assert kinds == ["DEVIATION"] * 3
    assert "DEVIATION CLASSIFIED" in shown.out and "DEVIATION CLOSED" in shown.out
    assert sum("signed: " in line for line in lines) == 3
    assert "— reviewed —" in shown.out and "— approved —" in shown.out
    verified = lab.cli("verify", "--db", batch.path)
    assert verified.code == 0, verified.out


def test_raise_and_withdraw(lab: People, batch: Batch, tmp_path: Path) -> None:
    done = _act(
        lab,
        "op.ann",
        "raise",
        batch.run_id[:12],
        "--title",
        "bag label smudged",
        "--description",
        "the label of the final bag was smudged at fill",
        "--step",
        "expand",
    )
    assert done.code == 0, done.err
    dev = f"DEV-{batch.run_id[:12]}-S01"
    assert f"deviation {dev} raised, signed by op.ann" in done.out
    listed = lab("deviations", batch.run_id, "--json")
    rows = json.loads(listed.out)
    assert [(r["deviation_id"], r["status"], r["origin"]) for r in rows] == [
        (_dev(batch), "open", "runner"),
        (dev, "open", "person"),
    ]
    done = _act(lab, "qa.smith", "withdraw", dev, "--cause", "raised on the wrong batch")
    assert done.code == 0, done.err
    done = _act(lab, "qa.smith", "withdraw", _dev(batch), "--cause", "raised on the wrong batch")
    assert done.code == 2 and "was recorded by the run" in done.err
    shown = json.loads(lab("deviation", "show", dev, "--json").out)
    assert shown["deviation"]["status"] == "withdrawn"
    assert [r["kind"] for r in shown["records"]] == ["deviation_raised", "deviation_withdrawn"]
    assert [len(r["signatures"]) for r in shown["records"]] == [1, 1]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (
            ("raise", "0123456789ab", "--title", "a title", "--description", "long enough text"),
            "no run",
        ),
        (("raise", "RUN", "--title", "abc", "--description", "long enough text"), "title"),
        (
            ("raise", "RUN", "--title", "a title", "--description", "long enough", "--hold"),
            "has ended",
        ),
        (("classify", "DEV-42", "--class", "minor", "--impact", IMPACT), "not a deviation id"),
        (
            ("classify", "DEV-0123456789ab-03", "--class", "minor", "--impact", IMPACT),
            "no deviation",
        ),
        (("close", "DEV", "--conclusion", "a conclusion here", "--capa", "X Y"), "capa"),
    ],
)
def test_refusals_exit_2_naming_why(
    lab: People, batch: Batch, argv: tuple[str, ...], named: str
) -> None:
    argv = tuple(batch.run_id if a == "RUN" else _dev(batch) if a == "DEV" else a for a in argv)
    done = _act(lab, "qa.smith", *argv)
    assert done.code == 2
    assert named in done.err


def test_capa_options_are_exclusive(lab: People, batch: Batch) -> None:
    done = _act(
        lab,
        "qa.smith",
        "close",
        _dev(batch),
        "--conclusion",
        "x" * 20,
        "--capa",
        "CAPA-1",
        "--no-capa-reason",
        "y" * 20,
    )
    assert done.code == 2 and "not allowed with argument" in done.err


def test_evidence_file_missing(lab: People, batch: Batch, tmp_path: Path) -> None:
    assert (
        _act(lab, "qa.smith", "classify", _dev(batch), "--class", "major", "--impact", IMPACT).code
        == 0
    )
    done = _act(
        lab,
        "qa.lee",
        "investigate",
        _dev(batch),
        "--root-cause",
        "the heater overshot after a setpoint change",
        "--category",
        "it-system",
        "--product-impact",
        "potential",
        "--impact-detail",
        "potency to be confirmed at release",
        "--evidence",
        tmp_path / "absent.csv",
    )
    assert done.code == 2 and "evidence cannot be read" in done.err
    assert _refusals(batch)[-1].cause == "evidence_missing"


def test_an_edited_status_is_never_listed(lab: People, batch: Batch) -> None:

    assert (
        _act(lab, "qa.smith", "classify", _dev(batch), "--class", "minor", "--impact", IMPACT).code
        == 0
    )
    conn = raw_connect(batch.path)
    conn.execute("UPDATE deviations SET status = 'closed'")
    conn.close()
    listed = lab("deviations")
    assert listed.code == 1 and "deviations row" in listed.err
    assert lab("deviation", "show", _dev(batch)).code == 1


def test_show_lists_the_restart_approval_under_the_run_record(lab: People, batch: Batch) -> None:
    """A supervisor's ``approved`` signature of the run's deviation record (the restart)
    is shown under it; it closes nothing."""
    with batch.store.reading() as conn:
        recorded = runner_deviations(conn, batch.run_id)[0]
    target = RecordRef(
        chain="run", run_id=batch.run_id, seq=recorded.seq, hash=recorded.hash, kind="deviation"
    )
    who = batch.site.sign_in("sup.jones")
    with batch.store.transaction() as tx:
        sign(tx, who, target, Meaning.APPROVED, "I approve the restart after the deviation")
    shown = lab("deviation", "show", _dev(batch))
    assert shown.code == 0, shown.err
    assert shown.lines[1].startswith(f"  run record #{recorded.seq}: DEVIATION")
    assert "(sup.jones) — approved —" in shown.lines[2]
    assert shown.lines[0].split()[3] == "open"
