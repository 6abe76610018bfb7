"""SCPI timeouts are real seconds on a scaled clock (issue 9, item 3).

At scale 3600 a loop second is 0.28 ms real. Before, the session's wait on the loop
used ``timeout_s`` as loop seconds: its timer expired long before a reply 50 ms away
and every such reply was handed to the worker thread. Now the wait on the loop lasts
``timeout_s`` real (``timeout_s * scale`` on the loop's clock).
"""

from __future__ import annotations

import anyio
import pytest

from cellauto.clock import scaled_loop_factory
from cellauto.instruments.visa.errors import VisaConnectionError
from cellauto.instruments.visa.scpi_reply import parse_real
from tests.wire.scpi_support import query_a_reply_50_ms_away, visa_session

pytestmark = pytest.mark.anyio

SCALE = 3600.0
TEMP = "MEAS:TEMP:CHAM?"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("asyncio", {"loop_factory": scaled_loop_factory(SCALE)})


async def test_a_reply_50_ms_away_is_awaited_on_the_loop_at_scale_3600() -> None:
    session = await query_a_reply_50_ms_away()
    assert (session.replies_spun, session.replies_awaited, session.replies_threaded) == (0, 1, 0)


async def test_an_instrument_that_never_answers_times_out_after_timeout_s_real() -> None:
    async with visa_session({TEMP: [None]}, "thread", timeout_s=0.5, retries=0) as session:
        started = anyio.current_time()
        with pytest.raises(VisaConnectionError, match=r"no complete reply .* within 0.5 s"):
            await session.query(TEMP, parse_real)
        waited = anyio.current_time() - started
    assert waited >= 0.5 * SCALE  # 0.5 s real, on the loop's clock
