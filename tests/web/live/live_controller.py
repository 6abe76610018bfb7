"""``python -m tests.web.live.live_controller DB``: run :mod:`live_protocol` on the
simulated line against the journal DB, people answering through the journal (a
:class:`PeopleInbox`, no console: a Held run waits for a Restart from another terminal).

Prints ``run <id>`` once the run is prepared, ``ended <status>`` at its end."""

from __future__ import annotations

import sys

import anyio

from cellauto.clock import Clock, virtual_loop_factory
from cellauto.protocols import Runner
from cellauto.protocols.inbox import PeopleInbox
from cellauto.protocols.params import build_params
from cellauto.records import Journal
from cellauto.sim import sim_line_for_protocol
from cellauto.sim.simulate import DEFAULT_SIM_START
from tests.web.live.live_protocol import protocol

SEED = 3


async def main(db: str) -> None:
    params = build_params(protocol.params, {}, rehearsal=True)
    sim = sim_line_for_protocol(protocol, params, clock=Clock(DEFAULT_SIM_START), seed=SEED)
    with Journal(db) as journal, PeopleInbox(journal) as inbox:
        runner = Runner(journal, clock_origin=DEFAULT_SIM_START, reproducible=True)
        execution = runner.prepare(
            protocol,
            sim.line,
            params,
            seed=SEED,
            operator="web-test",
            operators="people",
            answerers=[inbox],
            authority=inbox.authority(),
        )
        sys.stdout.write(f"run {execution.run_id}\n")
        sys.stdout.flush()
        async with anyio.create_task_group() as group:
            inbox.register(execution)
            group.start_soon(inbox.run)
            outcome = await execution.execute(by="web-test")
            execution.close()
            group.cancel_scope.cancel()
        sys.stdout.write(f"ended {outcome.exit_status}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], backend_options={"loop_factory": virtual_loop_factory})
