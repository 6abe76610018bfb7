"""The fast commands start fast: what they import, never how long they take.

``cellauto --help``, ``runs``, ``show``, ``verify`` and ``export`` must not import a
simulator, numpy or an instrument wire library (bench/bench_startup.py times them).
Each command runs in a fresh interpreter, which then lists the modules it holds.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cellauto.cli import build_parser, main
from tests.cli.conftest import Cli, only_run_id

# Runs ``cellauto.cli.main(argv)`` with its output captured, then prints the exit code,
# the output and the names in sys.modules as JSON.
PROBE = """
import contextlib, io, json, sys
from cellauto.cli import build_parser, main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""

# numpy and the simulators (cellauto.sim imports numpy), the wire libraries behind them
HEAVY = ("numpy", "cellauto.sim", "cellauto.lines", "asyncua", "pyvisa", "pylabrobot")
# `cellauto --help` needs no journal, hence no model library either
HELP_HEAVY = (*HEAVY, "pydantic", "orjson", "cellauto.records", "cellauto.protocols")


def _probe(*argv: object) -> tuple[int, str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    return report["code"], report["out"], report["modules"]


def _heavy(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy)]


def test_help_imports_no_command_module_nor_journal() -> None:
    code, out, modules = _probe("--help")

    assert code == 0
    assert "verify" in out and "runs" in out
    assert _heavy(modules, HELP_HEAVY) == []
    assert [m for m in modules if m.startswith("cellauto.cli.")] == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("runs", "--db", "DB"), "demo-expansion"),
        (("show", "RUN", "--db", "DB"), "run started"),
        (("verify", "--db", "DB"), "intact"),
        (("verify", "RUN", "--db", "DB"), "intact"),
        (("export", "RUN", "--out", "OUT", "--db", "DB"), "run.json"),
        (("show", "--help"), "usage: cellauto show"),
    ],
)
def test_reading_commands_import_no_simulator_numpy_or_wire_library(
    demo_db: Path, tmp_path: Path, argv: tuple[str, ...], expected: str
) -> None:
    given = {"DB": str(demo_db), "RUN": only_run_id(demo_db)[:8], "OUT": str(tmp_path / "out")}

    code, out, modules = _probe(*(given.get(arg, arg) for arg in argv))

    assert code == 0, out
    assert expected in out
    assert "cellauto.cli.inspect_cmds" in modules  # the command really ran here
    assert _heavy(modules, HEAVY) == []


def test_placeholder_help_lines_are_the_commands_own() -> None:
    """``--help`` lists placeholders; they must read exactly as the full parser does."""
    assert build_parser(commands=()).format_help() == build_parser().format_help()
    for name in ("run", "resume", "runs", "show", "verify", "export", "sim", "certs"):
        assert build_parser(commands={name}).format_help() == build_parser().format_help()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["-v"],
        ["--bogus", "runs"],
        ["runs", "--bogus"],
        ["show"],
        ["sim"],
        ["certs", "create"],
        ["--", "runs"],
        ["runs", "--version"],
    ],
)
def test_refusals_read_as_the_full_parsers(cli: Cli, argv: list[str]) -> None:
    """Parsing in two passes (command, then its arguments) refuses as one pass did."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as refused:
        build_parser().parse_args(argv)

    result = cli(*argv)

    assert (result.code, result.err) == (refused.value.code, err.getvalue())
    assert result.code == 2


def test_subcommand_help_is_the_commands_own(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["verify", "--help"])
    lazy = capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["verify", "--help"])

    assert done.value.code == 0
    assert lazy == capsys.readouterr().out
    assert "usage: cellauto verify" in lazy
