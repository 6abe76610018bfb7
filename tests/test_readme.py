"""The README's Quick start stays true: two commands, and CI runs the second verbatim."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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
