"""The line a controller's run goes on (:mod:`cellauto.controller.run_line`), and who
reaches a run that had a simulated world of its own (:mod:`cellauto.controller.reach`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextlib import AsyncExitStack

import pytest

from cellauto.clock import Clock
from cellauto.controller.reach import line_assets, missing_assets, run_assets
from cellauto.controller.run_line import RunLine, line_for_run, seed_for_run
from cellauto.controller.takeover import reaching
from cellauto.instruments.line import Line
from cellauto.lines import LineConfig
from cellauto.lines.wire import open_line
from cellauto.protocols import Runner, load_protocol
from cellauto.protocols.definition import Protocol
from cellauto.protocols.params import Params, build_params
from cellauto.protocols.states import State
from cellauto.records import Journal, RecordKind
from cellauto.records import payloads as rec
from cellauto.sim.simulate import DEFAULT_SIM_START
from tests.controller.site import DEMO

pytestmark = pytest.mark.anyio


CAR_T = DEMO.with_name("car_t_autologous.py")


def _config(line_per_run: bool, names: Iterable[str]) -> LineConfig:
    return LineConfig.model_validate(
        {
            "name": "rehearsal",
            "equipment": {name: {"adapter": "sim"} for name in names},
            "simulation": {"line_per_run": line_per_run},
        }
    )


def test_a_seed_is_the_submissions_else_drawn_from_the_run_id() -> None:
    assert seed_for_run("a" * 32, 5) == 5
    drawn = seed_for_run("a" * 32, None)
    assert drawn == seed_for_run("a" * 32, None) != seed_for_run("b" * 32, None)
    assert 0 <= drawn < 2**31


async def _lines(
    journal: Journal, protocol: Protocol, params: Params, seeds: list[int], *, per_run: bool
) -> tuple[Line, list[RunLine]]:
    """The controller's one line, and a run's line for each seed (run ids new)."""
    config = _config(per_run, protocol.equipment())
    clock = Clock(DEFAULT_SIM_START)
    async with AsyncExitStack() as stack:
        shared = await open_line(config, protocol.equipment(), stack, clock=clock)
    made = [
        line_for_run(
            config,
            shared,
            protocol,
            params,
            clock,
            journal.location,
            run_id=uuid.uuid4().hex,
            seed=seed,
        )
        for seed in seeds
    ]
    return shared, made


async def test_each_run_gets_its_own_seeded_world_and_nobody_else_reaches_it(
    journal: Journal,
) -> None:
    protocol = load_protocol(DEMO)
    params = build_params(protocol.params, {"culture_days": 3}, rehearsal=True)
    shared, (mine, other) = await _lines(journal, protocol, params, [5, 6], per_run=True)
    assert mine.line is not shared and mine.line.simulated and mine.seed == 5
    assert mine.line.equipment["bioreactor"] is not other.line.equipment["bioreactor"]
    run_id = uuid.uuid4().hex
    execution = Runner(journal).prepare(
        protocol,
        mine.line,
        params,
        seed=mine.seed,
        run_id=run_id,
        clock=Clock(DEFAULT_SIM_START),
        answerers=mine.answerers,
        site=mine.site,
    )
    outcome = await execution.execute()
    execution.close()
    for made in (mine, other):
        made.close()
    assert outcome.state is State.COMPLETE
    started = journal.records(run_id, {RecordKind.RUN_STARTED})[0].payload
    assert isinstance(started, rec.RunStarted)
    assert started.seed == 5 and started.simulated
    # its instruments lived in its controller's process: no controller's line has them
    needed = run_assets(started)
    assert len(needed) == 3
    assert reaching([("beta", line_assets(shared.equipment)), ("gamma", set())], needed) == []
    missing = missing_assets(started, line_assets(shared.equipment))
    assert [m.split(" ")[0] for m in missing] == ["bioreactor", "counter", "scanner"]
    assert all(m.endswith(", simulated in its controller's process)") for m in missing)


async def test_the_seed_draws_the_patient_of_a_runs_world(journal: Journal) -> None:
    protocol = load_protocol(CAR_T)
    params = build_params(protocol.params, {}, rehearsal=True)
    _, made = await _lines(journal, protocol, params, [5, 6, 5], per_run=True)
    for one in made:
        one.close()
    patients = [one.line.simulation.patient if one.line.simulation else None for one in made]
    assert patients[0] is not None and patients[0] != patients[1] and patients[0] == patients[2]


async def test_without_line_per_run_every_run_goes_on_the_controllers_one_line(
    journal: Journal,
) -> None:
    protocol = load_protocol(DEMO)
    params = build_params(protocol.params, {"culture_days": 3}, rehearsal=True)
    shared, [made] = await _lines(journal, protocol, params, [5], per_run=False)
    made.close()
    assert made.line is shared and made.seed is None and made.answerers == []
