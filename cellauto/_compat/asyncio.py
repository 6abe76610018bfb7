"""The asyncio internals cellauto's clocks rely on (Python is not pinned: see TESTED).

:class:`~cellauto.clock.VirtualTimeEventLoop` and
:class:`~cellauto.clock.ScaledTimeEventLoop` give ``asyncio.SelectorEventLoop`` their
own selector (a public argument) and rely on how ``BaseEventLoop._run_once`` uses it:
each iteration asks ``self._selector.select(timeout)`` with ``timeout`` the time until
the earliest timer in ``_scheduled`` by ``self.time()`` (None when nothing is
scheduled, 0 when callbacks are ready, at most ``MAXIMUM_SELECT_TIMEOUT``), then runs
the timers due by ``self.time() + _clock_resolution``. The virtual loop's selector
turns that timeout into a jump of virtual time; the scaled loop's divides it by the
scale.

Python is not pinned (``requires-python >= 3.11``), so on an untested Python version
this module warns, loudly (a warning and an ERROR log), instead of refusing: refusing
would make cellauto unusable on every new Python, while the check of the internals
below, which does refuse, catches the change that would break the clocks.
"""

from __future__ import annotations

import asyncio.base_events
import sys

from cellauto._compat._check import Internal, check_dependency, internal

__all__ = ["TESTED", "check", "python_version"]

#: Python versions (major.minor) the clocks were tested with.
TESTED = ("3.11",)

_RUN_ONCE_USES = ("_selector", "select", "_scheduled", "time", "_clock_resolution")


def _run_once_uses(name: str) -> Internal:
    def present() -> bool:
        run_once = getattr(asyncio.base_events.BaseEventLoop, "_run_once", None)
        code = getattr(run_once, "__code__", None)
        return code is not None and name in code.co_names

    return Internal(f"asyncio.base_events.BaseEventLoop._run_once -> {name}", present)


INTERNALS = (
    internal("asyncio.base_events.BaseEventLoop", "_run_once"),
    *(_run_once_uses(name) for name in _RUN_ONCE_USES),
    internal("asyncio.base_events", "MAXIMUM_SELECT_TIMEOUT"),
)


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def check(installed: str | None = None) -> str:
    """Warn on an untested Python; refuse one whose event loop lacks what the clocks use."""
    return check_dependency(
        "python",
        TESTED,
        INTERNALS,
        module="asyncio",
        installed=installed or python_version(),
        on_untested="warn",
    )


check()
