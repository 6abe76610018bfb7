"""Refused input exits 2 with a one-line message and leaves the journal untouched."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import DEMO, Cli, db_files, db_rows, only_run_id, write_protocol

CENTRIFUGE_PROTOCOL = """
from cellauto import Protocol, Run
from cellauto.instruments import Instrument, command


class Centrifuge(Instrument):
    interface_name = "Centrifuge"

    @command
    async def spin(self, g: float) -> None: ...


protocol = Protocol("spin-down", version="1")


@protocol.step
async def spin(run: Run, centrifuge: Centrifuge) -> None:
    await centrifuge.spin(300.0)
"""

FANCY_COUNTER_PROTOCOL = """
from cellauto import Protocol, Run
from cellauto.instruments import CellCounter


class FancyCounter(CellCounter):
    interface_name = "FancyCounter"


protocol = Protocol("fancy-count", version="1")


@protocol.step
async def count(run: Run, counter: FancyCounter) -> None:
    pass
"""

Build = Callable[[Path], list[object]]


def _protocol(name: str, source: str) -> Build:
    def build(d: Path) -> list[object]:
        return ["run", write_protocol(d, name, source), "--sim"]

    return build


def _params_file(name: str, text: str) -> Build:
    def build(d: Path) -> list[object]:
        (d / name).write_text(text, encoding="utf-8")
        return ["run", DEMO, "--sim", "--params", d / name]

    return build


def _param(*assignments: str) -> Build:
    def build(d: Path) -> list[object]:
        return ["run", DEMO, "--sim", *(x for a in assignments for x in ("--param", a))]

    return build


KNOWN = ("known parameters", "coi", "seed_volume_ml", "culture_days", "feed_ml")

# id -> (argv builder, substrings the one-line message must contain)
CASES: dict[str, tuple[Build, tuple[str, ...]]] = {
    "missing protocol file": (
        lambda d: ["run", d / "nope.py", "--sim"],
        ("nope.py", "does not exist", ".py file"),
    ),
    "not a .py file": (
        lambda d: ["run", write_protocol(d, "demo.txt", DEMO.read_text()), "--sim"],
        ("demo.txt", "not a .py file"),
    ),
    "protocol raises on import": (
        _protocol("boom.py", "x = 1\nraise RuntimeError('no reagents today')\n"),
        ("boom.py", "failed to import", "RuntimeError", "no reagents today", "boom.py:2"),
    ),
    "protocol calls sys.exit on import": (
        _protocol("quits.py", "import sys\n\nsys.exit(0)\n"),
        ("quits.py", "sys.exit(0)", "while it was imported", "quits.py:3"),
    ),
    "py file with two Protocols": (
        _protocol("two.py", DEMO.read_text() + "\nother = Protocol('other', version='1')\n"),
        ("two.py", "2 Protocol objects", "'other'", "'protocol'", "one protocol"),
    ),
    "py file without a Protocol": (
        _protocol("plain.py", "def helper():\n    return 1\n"),
        ("plain.py", "Protocol", "'protocol'", "found 0"),
    ),
    "unknown --param": (_param("nope=1"), ("'nope'", "unknown parameter", *KNOWN)),
    "out-of-range --param": (
        _param("culture_days=99"),
        ("'culture_days'", "99", "<= 14", ">= 3"),
    ),
    "wrong type --param": (_param("culture_days=abc"), ("'culture_days'", "'abc'", "type int")),
    "malformed --param": (_param("novalue"), ("'novalue'", "KEY=VALUE")),
    "empty key --param": (_param("=7"), ("'=7'", "KEY=VALUE")),
    "pattern --param": (_param("coi=lowercase"), ("'coi'", "'lowercase'", "[A-Z0-9]{13}")),
    "missing --params file": (
        lambda d: ["run", DEMO, "--sim", "--params", d / "absent.json"],
        ("absent.json", "does not exist"),
    ),
    "--params not JSON": (_params_file("bad.json", "{culture_days: 7"), ("bad.json", "JSON")),
    "--params not an object": (
        _params_file("list.json", "[7, 14]"),
        ("list.json", "JSON object"),
    ),
    "--params unknown key": (
        _params_file("extra.json", json.dumps({"culture_days": 7, "nope": 1})),
        ("'nope'", "unknown parameter", *KNOWN),
    ),
    "--params out of range": (
        _params_file("low.json", json.dumps({"culture_days": 2})),
        ("'culture_days'", ">= 3"),
    ),
    "equipment the sim line lacks": (
        _protocol("centrifuge.py", CENTRIFUGE_PROTOCOL),
        ("'centrifuge'", "Centrifuge", "BarcodeScanner", "CellCounter", "Bioreactor"),
    ),
    "equipment of a narrower interface": (
        _protocol("fancy.py", FANCY_COUNTER_PROTOCOL),
        ("'counter'", "FancyCounter", "no simulated instrument", "CellCounter"),
    ),
    "run without --sim": (lambda d: ["run", DEMO], ("--sim",)),
}


@pytest.fixture(params=["no journal yet", "journal with a run"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    """None: the --db file does not exist; else a copy of a journal with one run."""
    if request.param == "no journal yet":
        return None
    return request.getfixturevalue("demo_db")


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_exits_2_and_writes_nothing(
    cli: Cli, tmp_path: Path, journal: Path | None, case: str
) -> None:
    build, expected = CASES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    db = journal if journal is not None else tmp_path / "fresh.db"
    files_before = db_files(db)
    rows_before = db_rows(db, tmp_path / "before") if journal is not None else None
    assert bool(files_before) == (journal is not None)
    assert rows_before is None or rows_before["records"]

    result = cli(*build(inputs), "--db", db)

    assert result.code == 2, (result.out, result.err)
    assert result.out == ""
    message = result.err.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("cellauto: error: ")
    assert "Traceback" not in message
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"
    if journal is None:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]
    else:
        assert db_files(db) == files_before
        assert db_rows(db, tmp_path / "after") == rows_before


def test_bad_input_does_not_create_the_default_journal(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = cli("run", DEMO, "--sim", "--param", "culture_days=99")

    assert result.code == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", DEMO, "--sim", "--on-hold", "maybe"], ("--on-hold", "restart", "stop", "abort")),
        (["run", DEMO, "--sim", "--seed", "abc"], ("--seed", "'abc'")),
        (["run"], ("PROTOCOL_FILE",)),
        (["export", "abc"], ("--out",)),
        (["frobnicate"], ("frobnicate", "run", "verify")),
    ],
    ids=["bad --on-hold", "bad --seed", "no protocol file", "export without --out", "unknown"],
)
def test_argument_errors_exit_2(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[object],
    expected: tuple[str, ...],
) -> None:
    monkeypatch.chdir(tmp_path)

    result = cli(*argv)

    assert result.code == 2
    assert result.out == ""
    for text in expected:
        assert text in result.err
    assert list(tmp_path.iterdir()) == []


READ_COMMANDS = {
    "runs": ["runs"],
    "show": ["show", "abc"],
    "verify": ["verify"],
    "export": ["export", "abc", "--out", "exported"],
}


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_on_a_missing_journal_refuse_and_create_nothing(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.chdir(tmp_path)

    explicit = cli(*READ_COMMANDS[command], "--db", tmp_path / "absent.db")
    default = cli(*READ_COMMANDS[command])

    assert explicit.code != 0 and default.code != 0
    assert explicit.out == "" and default.out == ""
    assert "absent.db" in explicit.err and "no journal" in explicit.err
    assert "cellauto.db" in default.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_on_a_missing_journal_exit_2(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.chdir(tmp_path)

    result = cli(*READ_COMMANDS[command], "--db", tmp_path / "absent.db")

    assert result.code == 2


@pytest.mark.parametrize(
    "argv",
    [["show", "deadbeef"], ["verify", "deadbeef"], ["export", "deadbeef", "--out", "x"]],
    ids=["show", "verify", "export"],
)
def test_unknown_run_id_is_refused_by_name(
    cli: Cli, demo_db: Path, tmp_path: Path, argv: list[str]
) -> None:
    before = db_files(demo_db)

    result = cli(*argv, "--db", demo_db)

    assert result.code != 0
    assert result.out == ""
    assert "deadbeef" in result.err
    assert db_files(demo_db) == before
    assert not (tmp_path / "x").exists()


def test_read_commands_never_write_the_journal(cli: Cli, demo_db: Path, tmp_path: Path) -> None:
    run_id = only_run_id(demo_db)
    before = db_files(demo_db)

    for argv in (
        ["runs"],
        ["show", run_id],
        ["show", "--all", run_id],
        ["verify"],
        ["export", run_id, "--out", tmp_path / "out"],
    ):
        assert cli(*argv, "--db", demo_db).code == 0, argv
        assert db_files(demo_db) == before, argv


def test_export_to_a_file_is_refused(cli: Cli, demo_db: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    target.write_text("keep me\n")

    result = cli("export", only_run_id(demo_db), "--out", target, "--db", demo_db)

    assert result.code == 2
    assert "report.csv" in result.err
    assert target.read_text() == "keep me\n"


def test_a_numeric_text_parameter_stays_text(tmp_path: Path) -> None:
    """A 13-digit chain-of-identity id given plainly is text, not a JSON number."""
    from cellauto.protocols.loader import load_protocol
    from cellauto.protocols.params import parse_param_assignments

    protocol = load_protocol(DEMO)
    values = parse_param_assignments(["coi=1234567890123", "culture_days=9"], protocol.params)
    assert values == {"coi": "1234567890123", "culture_days": 9}


def test_a_protocol_that_never_finishes_importing_is_refused(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLAUTO_IMPORT_TIMEOUT_S", "0.2")
    looping = write_protocol(tmp_path, "forever.py", "while True:\n    pass\n")
    db = tmp_path / "j.db"
    result = cli("run", looping, "--sim", "--db", db)
    assert result.code == 2, result.err
    assert "forever.py" in result.err and "did not finish importing within 0.2 s" in result.err
    assert "forever.py:1" in result.err or "forever.py:2" in result.err
    assert not db.exists()
