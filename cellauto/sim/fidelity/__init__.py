"""The fidelity of the simulated line: a protocol over many seeds against published
ranges (issue 14, item 7). A skeleton so far: per-seed summaries, a population runner
and the declaration of a row; the published rows, the table and the CLI come later."""

from cellauto.sim.fidelity.rows import Row, RowResult
from cellauto.sim.fidelity.runner import SeedSummary, run_population, run_seed, summarise

__all__ = ["Row", "RowResult", "SeedSummary", "run_population", "run_seed", "summarise"]
