"""The ``cellauto`` command line. Exit codes: 0 complete/intact, 1 otherwise, 2 bad input."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Collection, Sequence
from importlib import import_module
from typing import NoReturn

from cellauto import __version__
from cellauto.errors import BadInputError, CellautoError

__all__ = ["main"]

EXIT_OK, EXIT_NOT_OK, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit 2 too; keep one style
        self.print_usage(sys.stderr)
        print(f"cellauto: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


# The command modules in the order their commands are listed: (module in cellauto.cli,
# the function that adds its parsers, {command: the help line that module gives it}).
# A command module is imported only when its command is chosen (importing `run_cmd`
# imports the simulators and numpy), so the help lines are repeated here for
# `cellauto --help`; tests/cli/test_startup.py checks them against the modules.
_COMMAND_MODULES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("run_cmd", "add_parser", {"run": "run a protocol"}),
    ("resume_cmd", "add_parser", {"resume": "resume a run after a controller crash"}),
    ("queue_cmds", "add_parsers", {"queue": "the run queue of the site's controllers"}),
    (
        "controller_cmd",
        "add_parser",
        {"controller": "a controller service: runs the queued batches of its line"},
    ),
    (
        "inspect_cmds",
        "add_parsers",
        {
            "runs": "list runs",
            "show": "a run's timeline",
            "verify": "check hash chains, the signed ledger and seals",
            "export": "export a run",
        },
    ),
    (
        "trace_cmd",
        "add_parser",
        {"trace": "a run's containers and what touched them; --lot: a lot's batches"},
    ),
    ("sim_cmd", "add_parser", {"sim": "the simulated line"}),
    ("trends_cmd", "add_parser", {"trends": "trends across batches, with control limits"}),
    ("certs_cmd", "add_parser", {"certs": "OPC UA certificates"}),
    ("people_cmds", "add_parsers", {"users": "accounts and roles"}),
    ("training_cmds", "add_parsers", {"training": "training records"}),
    ("equipment_cmds", "add_parsers", {"equipment": "the instrument registry"}),
    ("site_cmds", "add_parsers", {"site": "the site policy"}),
    ("material_cmds", "add_parsers", {"materials": "materials and lots"}),
    (
        "deviation_cmds",
        "add_parsers",
        {"deviations": "a batch's deviations", "deviation": "one deviation: show, raise, ..."},
    ),
    ("qc_cmds", "add_parsers", {"qc": "QC results of a batch"}),
    (
        "release_cmd",
        "add_parser",
        {"release": "QA's release or rejection of a batch (signed); --check: why not"},
    ),
    ("task_cmds", "add_parsers", {"tasks": "operator tasks", "answer": "answer a task"}),
    ("alarm_cmds", "add_parsers", {"alarms": "the runs' alarms; acknowledge one"}),
    ("serve_cmd", "add_parser", {"serve": "the operator and QA web app"}),
    (
        "db_cmds",
        "add_parsers",
        {
            "db": "a journal's database: init",
            "copy": "copy a journal between SQLite and PostgreSQL",
        },
    ),
    ("report_cmd", "add_parser", {"report": "the batch record of a run (HTML and PDF)"}),
    (
        "command_cmds",
        "add_parsers",
        {c: f"{c} a running batch" for c in ("hold", "restart", "stop", "abort")},
    ),
)


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every command's arguments, or only those of ``commands``: the
    others are placeholders with their name and help line (enough for ``--help``)."""
    parser = _Parser(prog="cellauto", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cellauto {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    wanted = None if commands is None else set(commands)
    for module, add_parsers, helps in _COMMAND_MODULES:
        if wanted is None or not wanted.isdisjoint(helps):
            getattr(import_module(f"cellauto.cli.{module}"), add_parsers)(sub)
        else:
            for name, help_line in helps.items():
                sub.add_parser(name, help=help_line, add_help=False)
    return parser


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse in two passes: which command (no command module imported; ``--help``,
    ``--version`` and errors before the command end here, as with the full parser),
    then that command's own arguments, importing its module only."""
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen, _rest = build_parser(commands=()).parse_known_args(argv)
    return build_parser(commands={chosen.command}).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # what the signing key's owner must act on (a key created, a key others can read)
    # is shown even without --verbose
    logging.getLogger("cellauto.records.signing").setLevel(logging.WARNING)
    try:
        return int(args.handler(args))
    except BadInputError as exc:
        print(f"cellauto: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CellautoError as exc:
        print(f"cellauto: error: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    except KeyboardInterrupt:
        print("cellauto: interrupted", file=sys.stderr)
        return EXIT_NOT_OK
    except BrokenPipeError:  # the reader went away (``cellauto show ... | head``): quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
