"""Counting in a run, as the shipped protocols do it (CAR-T and NK 1.3.0): a count once
per name (resume-safe), diluted into the counter's linear range; a tube the liquid
handler filled as a sample; and the post-thaw count of a retained vial.

Built on :mod:`cellauto.protocols.measures` (dilutions, flags) and
:func:`cellauto.protocols.reconcile.measure_once` (a count made before a crash is read
back, never made again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from cellauto.instruments.cell_counter import CellCount, CellCounter
from cellauto.instruments.materials import Sample
from cellauto.instruments.thawer import Thawer
from cellauto.protocols.context import Run
from cellauto.protocols.measures import OUT_OF_LINEAR_RANGE, count_flags, dilution_for
from cellauto.protocols.reconcile import measure_once
from cellauto.protocols.spec import Spec

__all__ = ["COUNT_AT", "IN_LINEAR_RANGE", "count_retained_vial", "counted", "tube_sample"]

#: Dilute a dense sample to at most this (design §5.1): high in the 5e4-1e7/mL linear range,
#: so that many cells are imaged (counting noise), with room for the count's own noise.
COUNT_AT = 5e6
IN_LINEAR_RANGE = Spec(
    min=1, description="1 = the count lay in the counter's linear range", policy="continue"
)


async def counted(
    run: Run[Any],
    name: str,
    draw: Callable[[], Awaitable[Sample]],
    counter: CellCounter,
    *,
    expected_per_ml: float | None = None,
) -> CellCount:
    """Count a sample once for ``name`` (resume-safe), diluted for ``expected_per_ml``;
    a count above the counter's linear range is counted again diluted (``name
    (recount)``), and one still outside it is a ``continue`` deviation with its flag
    (the run-level form of :func:`cellauto.protocols.measures.count_in_range`)."""
    dilution = (
        1.0 if expected_per_ml is None else dilution_for(expected_per_ml, target_per_ml=COUNT_AT)
    )
    count = await measure_once(
        run, name, draw, lambda s: counter.count(s, dilution=dilution), CellCount
    )
    if count.range_flag == "above_range":
        more = max(dilution_for(count.total_cells_per_ml, target_per_ml=COUNT_AT), 2 * dilution)
        count = await measure_once(
            run, f"{name} (recount)", draw, lambda s: counter.count(s, dilution=more), CellCount
        )
    if count.range_flag != "in_range":
        run.check("count in linear range", 0.0, IN_LINEAR_RANGE, flags=[OUT_OF_LINEAR_RANGE, name])
    return count


def tube_sample(run: Run[Any], tube: str, volume_ml: float) -> Sample:
    """A tube (or well) the liquid handler filled, as a sample the analysers take whole."""
    return Sample(
        sample_id=tube,
        source_container_id=tube,
        volume_ml=volume_ml,
        drawn_at_process_time_s=run.now().timestamp(),
    )


async def _tube(run: Run[Any], tube: str, volume_ml: float) -> Sample:
    return tube_sample(run, tube, volume_ml)


async def count_retained_vial(
    run: Run[Any], thawer: Thawer, counter: CellCounter, vial: str, vial_ul: float
) -> CellCount:
    """Thaw the retained vial ``vial`` (once: a checkpoint marks it thawed) and count it:
    the post-thaw viability and the viable cells recovered against the vial's pre-freeze
    count (the batch value ``retained vial pre-freeze viable cells``), each set as a
    batch value and checked (the step declares the specifications)."""
    if not run.checkpoint_or(f"{vial} thawed", False):
        await thawer.thaw(vial)
        run.set_checkpoint(f"{vial} thawed", True)
    count = await counted(
        run,
        "post-thaw count",
        partial(_tube, run, vial, vial_ul / 1000),
        counter,
        expected_per_ml=run.value("release viable cells per mL"),
    )
    before = run.value("retained vial pre-freeze viable cells")
    recovered = 100.0 * count.viable_cells_per_ml * vial_ul / 1000 / max(before, 1.0)
    run.set_value("post-thaw viability", count.viability_pct, unit="%")
    run.set_value("post-thaw viable recovery", recovered, unit="%")
    run.check("post-thaw viability", count.viability_pct, flags=count_flags(count))
    run.check("post-thaw viable recovery", recovered, flags=count_flags(count))
    return count
