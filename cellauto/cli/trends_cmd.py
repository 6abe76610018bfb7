"""``cellauto trends``: each protocol's batches against their control limits."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cellauto.cli._db import add_db_argument
from cellauto.errors import BadInputError
from cellauto.records import Journal


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "trends",
        help="trends across batches, with control limits",
        description="Fold expansion, viability at release, dose, duration, right-first-time "
        "rate and deviations per batch over every finished run of a protocol (of each "
        "protocol without --protocol), in start order, against control limits (mean ± 3 "
        "sigma over the baseline batches) with out-of-trend values flagged (outside the "
        "limits, or 7 in a row on one side of the mean: Nelson rule 2). Writes trends.csv "
        "and trends.html (self-contained, with plots) in DIR. Needs cellauto[analysis].",
    )
    p.add_argument("--protocol", metavar="NAME", help="only this protocol's runs")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.add_argument(
        "--baseline",
        type=int,
        metavar="N",
        help="compute the limits over the first N batches (default: all); N >= 2",
    )
    p.add_argument(
        "--include-simulated",
        action="store_true",
        help="mix simulated batches with real ones (marked); by default a protocol's"
        " trends use its real batches, or its simulated ones when it has no real batch",
    )
    add_db_argument(p)
    p.set_defaults(handler=trends_command)


def trends_command(args: argparse.Namespace) -> int:
    from cellauto.review._optional import analysis_module
    from cellauto.review.trends import control_limits, trend_selections
    from cellauto.review.trends_out import (
        trends_by_protocol,
        write_trends_csv,
        write_trends_html,
    )

    if args.baseline is not None:
        control_limits([], args.baseline)  # refuses a baseline under 2 before any work
    analysis_module("matplotlib")  # refuse before anything is written
    with Journal(args.db, create=False) as journal:
        selections = trend_selections(
            journal, args.protocol, include_simulated=args.include_simulated
        )
        tables = {name: selection.batches for name, selection in selections.items()}
        if not tables:
            known = sorted(trend_selections(journal))
            raise BadInputError(
                (
                    f"no finished run of protocol {args.protocol!r}"
                    if args.protocol
                    else "no finished run"
                )
                + f" in {args.db}"
                + (f"; protocols with finished runs: {', '.join(known)}" if known else "")
            )
    trends = trends_by_protocol(tables, baseline=args.baseline)
    files = [
        write_trends_csv(trends, args.out / "trends.csv"),
        write_trends_html(
            trends,
            args.out / "trends.html",
            generated_at=datetime.now(UTC),
            source=str(args.db),
            selections=selections,
        ),
    ]
    for name, series in trends.items():
        batches = len(series[0].points) if series else 0
        right = sum(p.batch.right_first_time for p in series[0].points) if series else 0
        print(
            f"{name}: {batches} batches ({selections[name].describe()}), right first time"
            f" {right} of {batches}"
        )
        for t in series:
            for p in t.flagged:
                print(
                    f"  out of trend: {t.metric.title} of run {p.batch.run_id[:12]} "
                    f"({p.value:.4g}{' ' + t.unit if t.unit else ''}): {p.out_of_trend}"
                )
    for file in files:
        print(file)
    return 0
