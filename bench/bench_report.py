"""The batch record report (issue 12) against the bare library calls it is made of.

Run ``python bench/bench_report.py [--quick]``; or import and call :func:`run`, which
returns rows for ``bench/run.py``.

One simulated CAR-T batch (seed 1, a 39.9 °C excursion at 72 h, restarted; ~1,280
records) in a fresh journal, then:

1. ``write_report`` (HTML + PDF) in this process, warm (matplotlib and reportlab
   imported, fonts cached), median of N, interleaved with the baseline: the same five
   figures drawn with matplotlib from the same series and saved as SVG and as 150 dpi PNG
   (``savefig`` 5 times, twice each), plus a reportlab platypus build of the same
   appendix table (one row per appendix row, plain paragraphs) with the five PNGs. The difference is
   cellauto's own work: reading and verifying the records, the review rules, the HTML,
   the anchors and links, the page header.
2. ``cellauto report`` as a command in a new process (cold: imports included), median
   of 3, against ``python -c "import matplotlib.pyplot, reportlab.platypus"``.
3. ``export_run`` of the same run (the CSV/JSON export), for scale.

Machine: see ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CAR_T = ROOT / "protocols" / "car_t_autologous.py"
AT = datetime(2026, 2, 1, tzinfo=UTC)


def _batch(directory: Path) -> tuple[Path, str]:
    from cellauto.sim import simulate
    from cellauto.sim.faults import TemperatureExcursion

    path = directory / "batch.db"
    run = simulate(
        str(CAR_T),
        seed=1,
        faults={"bioreactor": [TemperatureExcursion(at_h=72, delta_c=2.9, duration_h=3)]},
        on_hold="restart",
        db=path,
    )
    return path, run.outcome.run_id


def _baseline(series: Any, table: list[list[str]], out: Path) -> None:
    """The bare library calls: five figures to SVG and PNG, one platypus table build."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Table

    s = series
    pairs = [
        (s.counts_t, [s.viable_cells_per_ml, s.viability_pct]),
        (s.culture_t, [s.glucose_mmol_per_l, s.lactate_mmol_per_l]),
        (s.culture_t, [s.temperature_c, s.ph, s.dissolved_oxygen_pct]),
        (s.freeze_t, [s.chamber_c, s.sample_c]),
        (s.storage_t, [s.storage_c]),
    ]
    pngs = []
    for x, ys in pairs:
        fig, axes = plt.subplots(len(ys), 1, figsize=(7.0, 2.6 * len(ys)), squeeze=False)
        for ax, y in zip(axes[:, 0], ys, strict=True):
            ax.plot(x, y)
        fig.savefig(io.StringIO(), format="svg", metadata={"Date": None})
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=150, metadata={"Software": None})
        pngs.append(png.getvalue())
        plt.close(fig)
    style = getSampleStyleSheet()["BodyText"]
    doc = SimpleDocTemplate(str(out), pagesize=A4, invariant=1)
    story: list[Any] = [Image(io.BytesIO(p), width=400, height=150) for p in pngs]
    story.append(Table([[Paragraph(escape(c), style) for c in row] for row in table], repeatRows=1))
    doc.build(story)


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _cold_s(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a new process running ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(quick: bool = False) -> list[dict[str, object]]:
    from cellauto.records import Journal, export_run
    from cellauto.review.report import write_report
    from cellauto.review.report.batch_record import build_batch_record

    n = 3 if quick else 9
    with tempfile.TemporaryDirectory(prefix="bench-report-") as name:
        directory = Path(name)
        os.environ["CELLAUTO_SIGNING_KEY"] = str(directory / "signing.key")
        path, run_id = _batch(directory)
        with Journal(path, create=False) as journal:
            record = build_batch_record(journal, run_id, generated_at=AT)
            table = [["#", "when", "kind", "record"]] + [
                [a.seq, f"{a.when_utc:%Y-%m-%d %H:%M:%S}", a.kind, a.text] for a in record.appendix
            ]
            records = len(journal.records(run_id))
            write_report(journal, run_id, directory / "warm", generated_at=AT)  # warm up
            ours, raw, export = [], [], []
            for i in range(n):  # interleaved: load on a shared machine hits both alike
                ours.append(
                    _timed(
                        lambda i=i: write_report(
                            journal, run_id, directory / f"r{i}", generated_at=AT
                        )
                    )
                )
                raw.append(_timed(lambda: _baseline(record.series, table, directory / "b.pdf")))
                export.append(_timed(lambda i=i: export_run(journal, run_id, directory / f"e{i}")))
        sizes = [
            (directory / "r0" / f).stat().st_size for f in ("batch-record.html", "batch-record.pdf")
        ]
        env = {**os.environ}
        cold = [
            _cold_s(
                [
                    sys.executable,
                    "-m",
                    "cellauto",
                    "report",
                    run_id,
                    "--db",
                    str(path),
                    "--out",
                    str(directory / f"c{i}"),
                    "--generated-at",
                    "2026-02-01T00:00:00Z",
                ],
                env,
            )
            for i in range(3)
        ]
        imports = [
            _cold_s([sys.executable, "-c", "import matplotlib.pyplot, reportlab.platypus"], env)
            for _ in range(3)
        ]
    ours_s, raw_s, export_s = (statistics.median(v) for v in (ours, raw, export))
    cold_s, cold_cpu = (statistics.median(v) for v in zip(*cold, strict=True))
    import_s = statistics.median(wall for wall, _ in imports)
    return [
        {
            "case": f"report: HTML + PDF of one CAR-T run ({records:,} records), warm",
            "value": f"{ours_s:.2f} s",
            "target": "≤ 1.5x bare calls",
            "detail": f"bare savefig x5 (SVG+PNG) + platypus table {raw_s:.2f} s ="
            f" {ours_s / raw_s:.2f}x; HTML {sizes[0] / 1e3:,.0f} kB, PDF {sizes[1] / 1e3:,.0f} kB;"
            f" export_run {export_s:.2f} s",
            "ok": ours_s <= 1.5 * raw_s,
        },
        {
            "case": "report: `cellauto report` in a new process (cold)",
            "value": f"{cold_s:.2f} s",
            "target": "≤ 2.0 s",
            "detail": f"CPU {cold_cpu:.2f} s; importing matplotlib.pyplot + reportlab.platypus"
            f" alone {import_s:.2f} s",
            "ok": cold_s <= 2.0,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(f"{row['case']:<64} {row['value']:>8}  {row['detail']}")


if __name__ == "__main__":
    main()
