"""The fidelity of the simulated line: a protocol over many seeds against published
ranges (issue 14, item 7): per-seed summaries, a population runner, the published rows
of the shipped protocols and the table (``cellauto sim fidelity``)."""

from cellauto.sim.fidelity.published import CAR_T_ROWS, NK_ROWS, rows_for
from cellauto.sim.fidelity.rows import Row, RowResult
from cellauto.sim.fidelity.runner import SeedSummary, run_population, run_seed, summarise
from cellauto.sim.fidelity.table import FidelityTable, build_table, write_section

__all__ = [
    "CAR_T_ROWS",
    "NK_ROWS",
    "FidelityTable",
    "Row",
    "RowResult",
    "SeedSummary",
    "build_table",
    "rows_for",
    "run_population",
    "run_seed",
    "summarise",
    "write_section",
]
