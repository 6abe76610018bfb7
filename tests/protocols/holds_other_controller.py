"""Another controller process for :mod:`tests.protocols.test_holds_pg`.

``python -m tests.protocols.holds_other_controller URL ASSET``: one run (real time) holds
the shared counter ``ASSET`` of the journal at ``URL``; once granted it prints
``holding <run id> <ticket>``, waits for a line on stdin, lets go, and prints
``released`` when its run has ended.
"""

from __future__ import annotations

import sys

import anyio
import anyio.to_thread

from cellauto import Protocol, Run
from cellauto.instruments import Line
from cellauto.protocols import Runner, State
from cellauto.protocols.holds import SharedPolicy, share
from cellauto.records import Journal
from tests.protocols.test_holds import Meter


def main(url: str, asset: str) -> int:
    protocol = Protocol("other-controller", version="1")

    @protocol.step
    async def hold_the_counter(run: Run, meter: Meter) -> None:
        async with run.hold(meter, purpose="hold until told") as held:
            assert held is not None
            print(f"holding {run.run_id} {held.ticket}", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)

    meter = Meter("M-other")
    share(meter, SharedPolicy(asset))

    async def run() -> State:
        with Journal(url) as journal:
            execution = Runner(journal).prepare(protocol, Line("other-line", {"meter": meter}))
            await execution.execute()
            return execution.state

    state = anyio.run(run)
    print("released", flush=True)
    return 0 if state is State.COMPLETE else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
