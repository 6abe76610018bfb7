"""Issue 10's "done": a CAR-T batch on the simulated line whose operator steps are answered
from another terminal by two accounts completes, and its record shows every signature.

The controller is `cellauto run protocols/car_t_autologous.py --sim --as alice` in a
subprocess (alice signs the start); this process is the other terminal: it lists the
open tasks (`cellauto tasks --json`) and answers each with `cellauto answer`, alice
performing and bob verifying (the label check and the transfer into LN2 are two-person
tasks). Each hand-off is a scan of the bag's DIN and product code, and the printed label is
scanned back: alice enters what her scanner would read (the label's symbols read from the
run's label_printed record). No sleeps: it waits on what `tasks` lists.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import orjson

from cellauto.protocols import load_protocol
from cellauto.protocols.containers import batch_identities
from cellauto.protocols.handoff import handoff_data
from cellauto.protocols.params import build_params
from cellauto.records.backend import Location
from tests.cli.conftest import REPO, cli
from tests.cli.people import People, own, people
from tests.raw_sql import raw_connect

__all__ = ["cli", "people"]  # fixtures

CAR_T = REPO / "protocols" / "car_t_autologous.py"
COI = "W123426A1B2C3"  # the simulated line's apheresis label
_PROTOCOL = load_protocol(CAR_T)
BAGS = batch_identities(_PROTOCOL, build_params(_PROTOCOL.params, {}, rehearsal=True))
SCANS = {
    "connect apheresis bag": handoff_data(BAGS["apheresis bag"]),
    "final product label": COI,
    "load the freezer": handoff_data(BAGS["final product"]),
    "transfer into LN2": handoff_data(BAGS["final product"]),
}
EXPECTED_TASKS = {
    ("connect apheresis bag", "perform"),
    ("scan the printed label", "perform"),
    ("final product label", "perform"),
    ("final product label", "verify"),
    ("load the freezer", "perform"),
    ("transfer into LN2", "perform"),
    ("transfer into LN2", "verify"),
}


def _staff(people: People) -> None:
    people.bootstrap()
    for name, role in (("alice", "operator"), ("bob", "operator"), ("carol", "supervisor")):
        people.add(name, role)
    for name, trainer in (("alice", "carol"), ("bob", "carol")):
        done = people(
            "training", "add", name, "--for", "car-t-autologous@1.3.0", "--as", trainer,
            stdin=[own(trainer)],
        )  # fmt: skip
        assert done.code == 0, done.err


def _scan(db: Path | Location, task: dict[str, str]) -> tuple[str, ...]:
    """What alice's scanner reads for a scan task: the bag's barcodes, or the label just
    printed (its symbols, from the run's record of it)."""
    if task["name"] != "scan the printed label":
        return ("--value", SCANS[task["name"]])
    with closing(raw_connect(db)) as conn:
        (body,) = conn.execute(
            "SELECT body FROM records WHERE kind = 'label_printed' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    return ("--value", " ".join(orjson.loads(body)["payload"]["symbols"].values()))


def _open_tasks(people: People) -> list[dict[str, str]]:
    listed = people("tasks", "--json")
    assert listed.code == 0, listed.err
    return [dict(task) for task in orjson.loads(listed.out)]


def test_car_t_answered_from_another_terminal_by_two_people(people: People, tmp_path: Path) -> None:
    _staff(people)
    controller = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "run", str(CAR_T), "--sim", "--seed", "3",
         "--patient", "typical", "--param", "expansion_days=7", "--as", "alice", "--password-stdin",
         "--on-hold", "stop", "--db", str(people.db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ),
    )  # fmt: skip
    assert controller.stdin is not None
    controller.stdin.write(own("alice") + "\n")
    controller.stdin.flush()
    answered: set[tuple[str, str]] = set()
    try:
        while answered != EXPECTED_TASKS:
            assert controller.poll() is None, controller.communicate()
            for task in _open_tasks(people):
                key = (task["name"], task["phase"])
                if key in answered:
                    continue
                who = "bob" if task["phase"] == "verify" else "alice"
                value = _scan(people.db, task) if task["phase"] == "perform" else ()
                given = people(
                    "answer", task["task_id"], "--as", who, *value, "--wait-s", "120",
                    stdin=[own(who)],
                )  # fmt: skip
                assert given.code == 0, given.err
                answered.add(key)
        out, err = controller.communicate(timeout=300)
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait()
    assert controller.returncode == 0, err
    assert "ended Complete (complete)" in out
    run_id = next(line.split()[1] for line in out.splitlines() if line.startswith("run "))

    shown = people("show", run_id)
    assert shown.code == 0, shown.err
    lines = [line for line in shown.out.splitlines() if "signed:" in line]
    signers = [line for line in lines if "Alice Tester (alice)" in line or "(bob)" in line]
    assert len(signers) >= len(EXPECTED_TASKS), shown.out
    assert any("— verified —" in line and "(bob)" in line for line in lines), lines
    assert all("[site #" in line for line in signers), signers
    assert all(("UTC" in line and "+00:00" in line) for line in signers), signers
    assert "[SIGNATURE RECORD" not in shown.out

    out_dir = tmp_path / "export"
    exported = people("export", run_id, "--out", out_dir)
    assert exported.code == 0, exported.err
    with (out_dir / "signatures.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    people_rows = [row for row in rows if row["signer"] in ("alice", "bob")]
    assert {row["meaning"] for row in people_rows} >= {"performed", "verified"}
    assert all(row["confirmed"] == "true" for row in people_rows)
    assert all(row["time_zone"] and row["utc_offset"] for row in people_rows)

    verified = people("verify")
    assert verified.code == 0, verified.out + verified.err
    assert "site: intact" in verified.out
