"""The ``cellauto`` command line. Exit codes: 0 complete/intact, 1 otherwise, 2 bad input."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from cellauto import __version__
from cellauto.cli import certs_cmd, inspect_cmds, resume_cmd, run_cmd, sim_cmd
from cellauto.errors import BadInputError, CellautoError

__all__ = ["main"]

EXIT_OK, EXIT_NOT_OK, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit 2 too; keep one style
        self.print_usage(sys.stderr)
        print(f"cellauto: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cellauto", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cellauto {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run_cmd.add_parser(sub)
    resume_cmd.add_parser(sub)
    inspect_cmds.add_parsers(sub)
    sim_cmd.add_parser(sub)
    certs_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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


if __name__ == "__main__":
    sys.exit(main())
