"""measure_once: a step run again after a crash neither draws nor measures twice."""

from __future__ import annotations

from typing import Any

import anyio

from cellauto import MaterialInput, Params, Protocol, Run
from cellauto.instruments import CellCount, CellCounter
from cellauto.instruments.cell_processor import CellProcessor
from cellauto.instruments.materials import Sample
from cellauto.protocols.reconcile import measure_once
from cellauto.records.payloads import InstrumentCommand
from cellauto.sim import simulate


class NoParams(Params):
    coi: str = "W123426A1B2C3"


def _protocol(pause_h: float, after_h: float) -> Protocol[Any]:
    protocol = Protocol(
        "measure-once",
        version="1",
        params=NoParams,
        inputs=[MaterialInput(name="bag", identity_param="coi", material="pbmc")],
    )

    @protocol.step(resume="rerun", expected_duration_h=pause_h + after_h)
    async def sample_and_count(
        run: Run[NoParams], processor: CellProcessor, counter: CellCounter
    ) -> None:
        """Draw a sample; count it a while later; then wait (a crash may fall anywhere)."""

        async def slow_count(sample: Sample) -> CellCount:
            await anyio.sleep(pause_h * 3600)
            return await counter.count(sample)

        count = await measure_once(
            run, "bag count", lambda: processor.draw_sample("bag", 1.0), slow_count, CellCount
        )
        run.set_value("viable cells per mL", count.viable_cells_per_ml)
        await anyio.sleep(after_h * 3600)

    return protocol


def _commands(run: Any) -> list[str]:
    return [p.method for p in run.of_kind(InstrumentCommand)]


def test_a_crash_between_the_draw_and_the_count_counts_the_sample_already_drawn() -> None:
    run = simulate(
        _protocol(pause_h=2, after_h=0), seed=1, crashes=[1.0], downtime_h=1, patient="typical"
    )
    assert run.outcome.state.value == "Complete"
    assert _commands(run) == ["draw_sample", "count"]  # drawn once, counted once


def test_a_crash_after_the_count_takes_the_recorded_result() -> None:
    uninterrupted = simulate(_protocol(pause_h=1, after_h=2), seed=1, patient="typical")
    run = simulate(
        _protocol(pause_h=1, after_h=2), seed=1, crashes=[2.0], downtime_h=1, patient="typical"
    )
    assert run.outcome.state.value == "Complete"
    assert _commands(run) == ["draw_sample", "count"]
    assert run.values["viable cells per mL"] == uninterrupted.values["viable cells per mL"]
