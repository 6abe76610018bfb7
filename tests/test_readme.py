"""The README's Quick start stays true: two commands, and CI runs the second verbatim."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_quick_start_is_exactly_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert quick_start_commands()[1] in ci_lines


def test_main_job_runs_a_protocol_that_exists_on_the_simulated_line() -> None:
    main_job = quick_start_commands()[0]
    run = main_job.split("&&")[-1]
    words = shlex.split(run)
    assert words[0].endswith("cellauto") and words[1] == "run" and "--sim" in words
    assert (ROOT / words[2]).is_file()


def test_the_cli_reference_row_of_run_names_every_option() -> None:
    import argparse

    from cellauto.cli import run_cmd

    parser = argparse.ArgumentParser()
    run_cmd.add_parser(parser.add_subparsers())
    (run,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options = {o for a in run.choices["run"]._actions for o in a.option_strings}
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in text.splitlines() if line.startswith("| `cellauto run PROTOCOL")]
    missing = sorted(o for o in options if o.startswith("--") and o != "--help" and o not in row)
    assert not missing, missing


@pytest.mark.parametrize(
    ("command", "row"), [("db init", "| `cellauto db init"), ("copy", "| `cellauto copy ")]
)
def test_the_cli_reference_rows_of_db_and_copy_name_every_option(command: str, row: str) -> None:
    import argparse

    from cellauto.cli import db_cmds

    parser = argparse.ArgumentParser()
    db_cmds.add_parsers(parser.add_subparsers())
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    chosen = sub.choices[command.split()[0]]
    if " " in command:
        (verbs,) = [a for a in chosen._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = verbs.choices[command.split()[1]]
    options = {o for a in chosen._actions for o in a.option_strings}
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [line for line in text.splitlines() if line.startswith(row)]
    missing = sorted(o for o in options if o.startswith("--") and o != "--help" and o not in line)
    assert not missing, missing
