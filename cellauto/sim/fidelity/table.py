"""The fidelity table of a protocol: each published row over a population of seeds,
rendered as Markdown, and written into a section of a document (docs/fidelity.md) so
that regenerating one protocol's table leaves the rest of the page as it is."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from cellauto.sim.fidelity.rows import Row, RowResult
from cellauto.sim.fidelity.runner import SeedSummary

__all__ = ["FidelityTable", "build_table", "format_number", "write_section"]


def format_number(value: float | None) -> str:
    """Three significant figures, in e-notation from 1e5 on (cell numbers)."""
    if value is None:
        return "—"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-2):
        return f"{value:.2e}".replace("e+0", "e").replace("e+", "e")
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _range(bounds: tuple[float, float] | None) -> str:
    if bounds is None:
        return "—"
    return f"{format_number(bounds[0])} to {format_number(bounds[1])}"


class FidelityTable(BaseModel):
    """A protocol's rows over seeds ``first`` .. ``first + seeds - 1``."""

    model_config = ConfigDict(frozen=True)

    protocol: str
    first_seed: int
    seeds: int
    patient: str
    rows: tuple[Row, ...]
    results: tuple[RowResult, ...]

    @property
    def inside(self) -> bool:
        """Every row inside its published ranges."""
        return all(result.inside for result in self.results)

    @property
    def outside(self) -> list[str]:
        return [result.row for result in self.results if not result.inside]

    def markdown(self) -> str:
        last = self.first_seed + self.seeds - 1
        lines = [
            f"`{self.protocol}`, seeds {self.first_seed}-{last}, {self.patient} patients:"
            f" {len(self.rows) - len(self.outside)} of {len(self.rows)} rows inside.",
            "",
            "| row | unit | n | min | median | max | median in | every seed in | | source |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row, result in zip(self.rows, self.results, strict=True):
            mark = "✓" if result.inside else "✗"
            lines.append(
                f"| {row.name} | {row.unit} | {result.n} | {format_number(result.min)}"
                f" | {format_number(result.median)} | {format_number(result.max)}"
                f" | {_range(row.median_range)} | {_range(row.all_range)} | {mark}"
                f" | {row.source} |"
            )
        return "\n".join(lines) + "\n"


def build_table(
    protocol: str,
    summaries: Sequence[SeedSummary],
    rows: Sequence[Row],
    *,
    patient: str = "drawn",
) -> FidelityTable:
    """The table of ``rows`` over ``summaries`` (seeds in order, consecutive)."""
    if not summaries:
        raise ValueError("a fidelity table needs at least one seed")
    return FidelityTable(
        protocol=protocol,
        first_seed=summaries[0].seed,
        seeds=len(summaries),
        patient=patient,
        rows=tuple(rows),
        results=tuple(row.evaluate(summaries) for row in rows),
    )


def _markers(protocol: str) -> tuple[str, str]:
    return f"<!-- fidelity: {protocol} -->", f"<!-- /fidelity: {protocol} -->"


def write_section(document: Path, table: FidelityTable) -> bool:
    """Put ``table`` into ``document`` between its protocol's markers (appended with
    them if the document has none; the document is created if missing). True if the
    document changed."""
    begin, end = _markers(table.protocol)
    section = f"{begin}\n{table.markdown()}{end}"
    old = document.read_text(encoding="utf-8") if document.exists() else ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _match: section, old, count=1)
    else:
        new = (old.rstrip("\n") + "\n\n" if old else "") + section + "\n"
    if new == old:
        return False
    document.write_text(new, encoding="utf-8")
    return True
