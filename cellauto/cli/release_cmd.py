"""``cellauto release RUN_ID``: QA's disposition of a batch, or why it may not be released.

``--decision release|reject --as QA_USER`` signs the decision (meaning ``released`` or
``rejected``; a rejection needs ``--reason``). A release is refused, naming every reason,
while the journal does not verify, a deviation is open, a required QC result is missing,
out of specification or unverified, a signature is missing, or the run did not complete;
the refusal is journaled. ``--check`` prints the same reasons and writes nothing.
Exit 0 done (``--check``: nothing stands against a release); 2 refused or bad input;
3 ``--check`` found reasons; 1 otherwise.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from cellauto.errors import BadInputError, ReleaseRefusedError
from cellauto.records import Journal
from cellauto.records.site_payloads_review import ReleaseProblem
from cellauto.review.disposition import dispose_batch, release_problems

from .people_cmds import acting_options, common_options, sign_in, store_of
from .prompt import Passwords

EXIT_WOULD_BE_REFUSED = 3


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "release",
        help="QA's release or rejection of a batch (signed); --check: why not",
        description=__doc__,
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the run (a unique prefix will do)")
    p.add_argument("--decision", choices=("release", "reject"), help="release or reject")
    p.add_argument("--check", action="store_true", help="list the reasons; write nothing")
    p.add_argument("--json", action="store_true", help="--check: the reasons as JSON")
    acting_options(p, required=False)
    common_options(p)
    p.set_defaults(handler=release_command)


def _print_problems(problems: list[ReleaseProblem]) -> None:
    for problem in problems:
        where = f"  [{problem.where}]" if problem.where else ""
        print(f"  {problem.code:<22} {problem.detail}{where}")


def release_command(args: argparse.Namespace) -> int:
    if args.check:
        if args.decision or args.as_user:
            raise BadInputError("--check writes nothing: give it without --decision and --as")
        return _check(args)
    if args.decision is None or args.as_user is None:
        raise BadInputError(
            "give --decision release|reject and --as QA_USER (or --check to see what stands"
            " against a release)"
        )
    with Journal(args.db, create=False) as journal, store_of(args) as store:
        run_id = journal.resolve_run_id(args.run_id)
        who = sign_in(
            store,
            Passwords(args.password_stdin),
            args.as_user,
            f"release {args.decision} {run_id}",
        )
        try:
            outcome = dispose_batch(
                store, journal, who, run_id, decision=args.decision, reason=args.reason or ""
            )
        except ReleaseRefusedError as refused:
            problems = [p for p in refused.problems if isinstance(p, ReleaseProblem)]
            print(f"{args.decision} refused for batch {run_id} ({len(problems)} reasons):")
            _print_problems(problems)
            print("nothing was released; the refusal is recorded on the site chain")
            return 2
    coa = outcome.coa
    print(
        f"batch {coa.batch_din or run_id} ({coa.product}) {coa.decision} by {who.account.name};"
        f" site records {outcome.record.seq} (decision with its certificate of analysis),"
        f" {outcome.signature.seq} (signature)"
    )
    if coa.simulated:
        print("SIMULATION - NOT A PRODUCT: this batch was made on the simulated line")
    return 0


def _check(args: argparse.Namespace) -> int:
    with Journal(args.db, create=False) as journal, store_of(args) as store:
        run_id = journal.resolve_run_id(args.run_id)
        with store.reading() as conn:
            problems = release_problems(journal, conn, run_id)
    if args.json:
        print(orjson.dumps([p.model_dump() for p in problems], option=orjson.OPT_INDENT_2).decode())
    elif problems:
        print(f"a release of batch {run_id} would be refused ({len(problems)} reasons):")
        _print_problems(problems)
    else:
        print(f"nothing stands against the release of batch {run_id}")
    return EXIT_WOULD_BE_REFUSED if problems else 0
