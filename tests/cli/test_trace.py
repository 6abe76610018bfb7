"""``cellauto trace RUN_ID``: a CAR-T batch's containers from apheresis bag to LN2 position;
the ``din`` parameter refused with a wrong check character, nothing written."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import orjson

from cellauto.records import Journal
from cellauto.records.backend import Location
from tests.cli.conftest import REPO, Cli, db_files, run_demo, run_id_of
from tests.raw_sql import nothing_written, raw_connect

CAR_T = REPO / "protocols" / "car_t_autologous.py"


def _car_t(cli: Cli, db: Path, *extra: object) -> str:
    done = cli("run", CAR_T, "--sim", "--seed", "3", "--patient", "typical",
               "--param", "expansion_days=7", "--param", "bags=3", "--db", db, *extra)  # fmt: skip
    assert done.code == 0, done.err
    return run_id_of(done)


def test_trace_shows_the_genealogy_from_apheresis_bag_to_ln2(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = _car_t(cli, db)
    shown = cli("trace", run_id[:8], "--db", db)
    assert shown.code == 0, shown.err
    lines = shown.lines
    assert lines[0].startswith(f"run {run_id} car-t-autologous")
    assert "DIN W1234 26 000042 5" in lines[0] and "COI W123426A1B2C3 W" in lines[0]
    keys = [line.strip().removeprefix("└ ").split(" (")[0] for line in lines
            if " created " in line]  # fmt: skip
    assert keys == [
        "apheresis bag",
        "enriched product",
        "culture bag",
        "harvest bag",
        "washed product",
        "final product 1",
        "QC sample",
        "count 1",  # 1.3.0: the liquid handler's aliquots of the QC sample
        "count 2",
        "release plate",
        "QC retain 1",
        "QC retain 2",
        "final product 2",
        "final product 3",
    ]
    text = shown.out
    assert "=W12342600004265 <S9000100>" in text  # the apheresis bag's DIN, flag, product
    assert "=W12342600004203 <S12341C0>" in text  # bag 3 of the set, division C0
    assert "custody: (unknown) -> processor" in text and "scan ok" in text
    for slot in (1, 2, 3):
        assert f"now: storage rack A box 1 slot {slot}" in text
    assert text.count("label verified") == 3 and "MISMATCH" not in text
    assert "via dry shipper" in text
    # every lot that went into a container is on it; a set's bags each show the set's lots
    assert "lot: TexMACS medium SIM-texmacs-medium-" in text
    assert "(5 mL) in transduce" in text
    assert "lot: CliniMACS tubing set SIM-clinimacs-tubing-set-" in text
    assert text.count("lot: cryobag 250 mL") == 3 and text.count("lot: CryoStor CS10") == 3
    assert "missing: lots" not in text


def test_trace_lot_finds_the_batches_of_a_lot(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    runs = [_car_t(cli, db), _car_t(cli, db, "--seed", "4")]
    trace = orjson.loads(cli("trace", runs[0], "--json", "--db", db).out)
    vector = next(
        lot["lot_id"]
        for c in trace["containers"]
        for lot in c["lots"]
        if lot["material"] == "CAR lentiviral vector"
    )
    shown = cli("trace", "--lot", vector, "--db", db)
    assert shown.code == 0, shown.err
    assert all(f"run {run_id}" in shown.out for run_id in runs)
    found = orjson.loads(cli("trace", "--lot", vector, "--json", "--db", db).out)
    assert sorted(use["run_id"] for use in found["uses"]) == sorted(runs)
    assert all(use["confirmed"] for use in found["uses"])
    both = cli("trace", runs[0], "--lot", vector, "--db", db)
    assert both.code == 2 and "not both" in both.err


def test_trace_json_has_every_container_and_reads_nothing_it_writes(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = _car_t(cli, db)
    before = db_files(db)
    shown = cli("trace", run_id, "--json", "--db", db)
    assert shown.code == 0, shown.err
    assert db_files(db) == before  # read-only: nor a WAL file
    trace = orjson.loads(shown.out)
    assert trace["din"] == "W123426000042" and trace["coi"] == "W123426A1B2C3"
    by_key = {c["key"]: c for c in trace["containers"]}
    bag = by_key["final product 2"]
    assert (bag["flag"], bag["product_code"], bag["depth"]) == ("02", "S12341B0", 5)
    assert [m["to"] for m in bag["custody"]] == [
        "processor",
        "freezer",
        "dry_shipper",  # scanned into the shipper, carried with its logger, then stored
        "storage rack A box 1 slot 2",
    ]
    assert [m["scan"] for m in bag["custody"]] == [None, "ok", "ok", None]
    assert [label["event"] for label in bag["labels"]] == ["printed", "verified"]
    assert bag["transfers_in"][0]["from"] == "washed product"
    assert {i["name"] for i in bag["instruments"]} == {"processor", "freezer"}


def test_trace_of_a_run_without_containers_names_what_is_missing(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = run_demo(cli, db)
    shown = cli("trace", run_id, "--db", db)
    assert shown.code == 0, shown.err
    assert "missing: containers: the run recorded none" in shown.out


def test_trace_of_an_unknown_run_is_refused(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_demo(cli, db)
    shown = cli("trace", "ffffffff", "--db", db)
    assert shown.code == 2
    assert "ffffffff" in shown.err


def test_din_param_wrong_check_refused_nothing_written(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    refused = cli("run", CAR_T, "--sim", "--param", "din=W123426000042X", "--db", db)
    assert refused.code == 2
    assert "check character 'X' is wrong, the DIN's check character is '5'" in refused.err
    assert nothing_written(db)


def test_din_param_read_by_eye_with_its_check_character_is_taken(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = _car_t(cli, db, "--param", "din=W1234 26 000042 5")
    with Journal(db, create=False) as journal:
        started = journal.records(run_id)[0].payload
    assert started.parameters["din"] == "W123426000042"


def test_trace_names_a_containers_row_that_disagrees_with_the_records(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = _car_t(cli, db)
    with closing(raw_connect(db)) as conn:
        conn.execute(
            "UPDATE containers SET place_name = 'bench', position = NULL"
            " WHERE run_id = ? AND key = 'final product 2'",
            (run_id,),
        )
    shown = cli("trace", run_id, "--db", db)
    assert shown.code == 0, shown.err
    assert (
        "missing: final product 2: the containers table places it at 'bench', its records at "
        "'storage rack A box 1 slot 2'"
    ) in shown.out


def test_show_tells_containers_transfers_custody_and_labels(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = _car_t(cli, db)
    shown = cli("show", run_id, "--db", db)
    assert shown.code == 0, shown.err
    text = shown.out
    assert "container final product 3 (final product) created from washed product" in text
    assert "transfer washed product -> final product 1 by processor" in text
    assert "custody final product 1: freezer -> dry_shipper by sim:operator-a, scanned" in text
    carried = "custody final product 1: dry_shipper -> storage rack A box 1 slot 1 via dry shipper"
    assert carried in text and "readings, max -1" in text and "none)" in text
    assert "label of final product 2 scanned: matches the print" in text


def test_verify_replays_the_containers_table_from_the_records(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = _car_t(cli, db)
    clean = cli("verify", "--db", db)
    assert clean.code == 0, clean.out
    assert "containers: intact, 14 rows" in clean.out
    with closing(raw_connect(db)) as conn:
        conn.execute(
            "UPDATE containers SET position = 'rack Z box 9 slot 9'"
            " WHERE run_id = ? AND key = 'final product 3'",
            (run_id,),
        )
    edited = cli("verify", "--db", db)
    assert edited.code == 1
    assert (
        f"containers: BROKEN: run {run_id} container 'final product 3': containers table "
        "edited: position 'rack Z box 9 slot 9' but the records say 'rack A box 1 slot 3'"
    ) in edited.out
    with closing(raw_connect(db)) as conn:
        conn.execute("DELETE FROM containers WHERE run_id = ? AND key = 'QC sample'", (run_id,))
    assert "container 'QC sample': no containers row" in cli("verify", "--db", db).out


def test_show_tells_the_lots_reserved_and_used(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = _car_t(cli, db)
    text = cli("show", run_id, "--db", db).out
    assert "materials reserved (simulated site):" in text
    assert "CAR lentiviral vector: lot SIM-car-lentiviral-vector-" in text
    assert "material CD3/CD28 activator: lot SIM-cd3-cd28-activator-" in text
    assert "3 mL into culture bag [CD3/CD28 activator; assigned; 3 mL per batch]" in text
