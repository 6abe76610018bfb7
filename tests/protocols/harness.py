"""A controllable protocol for driving a real run into each ISA-88 state."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio

from cellauto import Protocol, Run
from cellauto.instruments import Instrument, InstrumentIdentity, Line, command, query
from cellauto.protocols import Runner, State
from cellauto.protocols.execution import Execution, RunOutcome
from cellauto.records import Journal
from cellauto.records.refs import Meaning, SignatureShown

ORIGIN = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class Valve(Instrument):
    """A trivial instrument: one command (a hold point) and one query."""

    interface_name = "Valve"

    def __init__(self) -> None:
        super().__init__(InstrumentIdentity(vendor="test", model="V1", serial="V-1", firmware="1"))
        self.opened = 0

    @command
    async def open(self) -> int:
        await anyio.sleep(1)
        self.opened += 1
        return self.opened

    @query
    async def position(self) -> str:
        return "open" if self.opened else "closed"


def gated_protocol(gate: anyio.Event) -> Protocol:
    protocol = Protocol("gated", version="1")

    @protocol.step
    async def work(run: Run, valve: Valve) -> None:
        await gate.wait()
        await valve.open()

    @protocol.step
    async def finish(run: Run, valve: Valve) -> None:
        await valve.position()

    return protocol


class Harness:
    """One run of the gated protocol, executing in a task group."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.gate = anyio.Event()
        self.valve = Valve()
        self.runner = Runner(journal, clock_origin=ORIGIN)
        self.execution: Execution = self.runner.prepare(
            gated_protocol(self.gate), Line("test", {"valve": self.valve})
        )
        self.outcome: RunOutcome | None = None

    async def _execute(self) -> None:
        self.outcome = await self.execution.execute()

    async def settle(self) -> None:
        """Let every task run until all wait (virtual time moves on)."""
        await anyio.sleep(5)

    async def drive_to(self, tg: anyio.abc.TaskGroup, target: State) -> None:
        ex = self.execution
        tg.start_soon(self._execute)
        await self.settle()
        assert ex.state is State.RUNNING
        if target is State.RUNNING:
            return
        if target is State.COMPLETE:
            self.gate.set()
        elif target in (State.HOLDING, State.HELD, State.RESTARTING):
            ex.command("Hold", by="test")
            if target is not State.HOLDING:
                self.gate.set()
                await self.settle()
                assert ex.state is State.HELD
                if target is State.RESTARTING:
                    ex.command("Restart", by="test")
                    assert ex.state is State.RESTARTING
                    return  # synchronous: the waiting step has not resumed yet
        elif target in (State.STOPPING, State.STOPPED):
            ex.command("Stop", by="test")
            if target is State.STOPPED:
                self.gate.set()
        elif target is State.ABORTED:
            ex.command("Abort", by="test")
        elif target is State.ABORTING:
            ex.command("Abort", by="test")
            assert ex.state is State.ABORTING
            return  # synchronous: the cancellation has not landed yet
        elif target is State.IDLE:
            self.gate.set()
            await self.settle()
            assert ex.state is State.COMPLETE
            ex.command("Reset", by="test")
        await self.settle()
        assert ex.state is target, (ex.state, target)

    def states(self) -> list[str]:
        return [
            r.payload.to_state
            for r in self.journal.records(self.execution.run_id)
            if r.kind == "state_change"
        ]


def supervisor_approval(signer: str = "sam") -> SignatureShown:
    """A supervisor's approval, as a Restart after a deviation needs (no site here)."""
    return SignatureShown(
        signer=signer,
        printed_name=signer.title(),
        meaning=Meaning.APPROVED,
        signed_at=ORIGIN,
        time_zone="UTC",
        utc_offset="+00:00",
    )
