"""Additions and samples that a step run again after a controller crash never repeats.

A bag's culture volume is the bioreactor's own evidence of an addition: before adding,
the volume (mL) is recorded as a checkpoint (it is committed together with the addition's
intent, which is fsync'd before the command is sent); a step run again after a crash
compares the bag's volume now with it. An addition found done is not repeated, even if
its reply was lost in the crash; one not found is made. Perfusion exchanges medium
without changing the volume, so the comparison holds while it runs.

    await add_once(run, bioreactor, Reagent(name="CAR vector", kind="vector", volume_ml=5))
    await feed_once(run, bioreactor, 250.0, key=f"feed day {day}")

A sample is drawn once and measured once per key (:func:`measure_once`): the drawn
sample is recorded as a checkpoint, so a step run again counts the sample already in
the tube instead of drawing another, and a result recorded is not measured again::

    count = await measure_once(
        run, "receipt count", lambda: processor.draw_sample("apheresis bag", 1.0),
        counter.count, CellCount,
    )
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel

from cellauto.instruments.bioreactor import Bioreactor, Reagent
from cellauto.instruments.materials import Sample
from cellauto.protocols.context import Run

__all__ = ["add_once", "feed_once", "measure_once"]

M = TypeVar("M", bound=BaseModel)


async def add_once(run: Run, bioreactor: Bioreactor, reagent: Reagent, *, key: str = "") -> bool:
    """Add ``reagent`` unless it was added before a crash; True if added now.

    ``key`` names the addition among the run's checkpoints (default: the reagent's name).
    """
    return await _once(
        run,
        bioreactor,
        key or reagent.name,
        reagent.volume_ml,
        lambda: bioreactor.add_reagent(reagent),
    )


async def feed_once(run: Run, bioreactor: Bioreactor, volume_ml: float, *, key: str) -> bool:
    """Feed ``volume_ml`` of medium unless this feed (``key``, e.g. "feed day 3") was given
    before a crash; True if fed now."""
    return await _once(run, bioreactor, key, volume_ml, lambda: bioreactor.feed(volume_ml))


async def _once(
    run: Run,
    bioreactor: Bioreactor,
    key: str,
    added_ml: float,
    act: Callable[[], Awaitable[object]],
) -> bool:
    done_key, before_key = f"{key}: done", f"{key}: culture volume before"
    if run.checkpoint_or(done_key, False):
        return False
    before_ml = run.checkpoint_or(before_key, None)
    if run.resumed is not None and before_ml is not None:
        now_ml = (await bioreactor.read_process_values()).culture_volume_ml
        if now_ml >= before_ml + added_ml / 2:  # done before the crash; its reply was lost
            run.set_checkpoint(done_key, True)
            return False
    volume_ml = (await bioreactor.read_process_values()).culture_volume_ml
    run.set_checkpoint(before_key, volume_ml)
    await act()
    run.set_checkpoint(done_key, True)
    return True


async def measure_once(
    run: Run,
    key: str,
    draw: Callable[[], Awaitable[Sample]],
    measure: Callable[[Sample], Awaitable[M]],
    result_type: type[M],
) -> M:
    """Draw a sample with ``draw`` and measure it with ``measure`` once for ``key`` (a
    name unique in the protocol, e.g. "receipt count" or f"day {day} count").

    Run again after a controller crash, the step takes the result recorded before it
    (as the instrument reported it, read back as ``result_type``), or measures the
    sample drawn before it rather than drawing another. Only a crash between a draw or a
    measurement and its reply still repeats it: that command is then in doubt in the
    journal.
    """
    result_key, sample_key = f"{key}: result", f"{key}: sample"
    recorded = run.checkpoint_or(result_key, None)
    if recorded is not None:
        return result_type.model_validate(recorded)
    drawn = run.checkpoint_or(sample_key, None)
    if drawn is None:
        sample = await draw()
        run.set_checkpoint(sample_key, sample.model_dump(mode="json"))
    else:
        sample = Sample.model_validate(drawn)
    result = await measure(sample)
    run.set_checkpoint(result_key, result.model_dump(mode="json"))
    return result
