"""A simulated run's repr names its outcome, not every record (asyncio reprs the result
of the finished main task when ``anyio.run`` returns on the main thread)."""

from __future__ import annotations

from cellauto import Protocol, Run
from cellauto.sim import simulate


def test_the_repr_leaves_the_records_out() -> None:
    protocol = Protocol("repr-test", version="1")

    @protocol.step(expected_duration_h=0.1)
    async def only(run: Run) -> None:
        await run.sleep(minutes=1)

    result = simulate(protocol, seed=0)
    assert result.exit_status == "complete"
    assert len(result.records) > 3
    shown = repr(result)
    assert "records=[" not in shown and "Record(" not in shown
    assert f"records={len(result.records)}" in shown  # the outcome's count
