"""What the simulated instruments physically did, as the instruments saw it.

A controller's journal says what it *intended* and what it was told; a simulated
instrument knows what it actually *did*. ``cellauto sim serve --actions FILE`` writes
one JSON line per physical action (every interface method marked
:func:`~cellauto.instruments.base.command`) that a served simulated instrument
carried out, in the order it did them. Comparing the two is how a crash drill shows
that a controller killed and resumed did nothing twice and journaled everything it
did (``tests/lines/drill.py``).

A command an instrument recognises as one it already carried out (a program start
resent under the same supervisory task id) is logged with ``repeat_of`` saying so
(:func:`note_repeat`): the instrument did nothing new.

Each line: ``{"seq", "instrument", "method", "arguments", "process_time_s", "ok",
"repeat_of"}``;
``arguments`` are JSON-ready exactly as the journal records them
(:func:`~cellauto.protocols.jsonable.to_jsonable`), so the two compare by equality.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from cellauto.clock import Clock
from cellauto.instruments.base import CallKind, Instrument, call_kind
from cellauto.protocols.jsonable import to_jsonable

__all__ = ["ActionLog", "PhysicalAction", "note_repeat", "read_actions"]

log = logging.getLogger(__name__)

#: Set by a watched call; a simulated instrument fills it when it recognises a repeat.
_repeat: ContextVar[list[str] | None] = ContextVar("cellauto_action_repeat", default=None)


def note_repeat(what: str) -> None:
    """Called by a simulated instrument inside a command it recognises as already done
    (``what`` names the earlier action, e.g. the program run it returns again)."""
    found = _repeat.get()
    if found is not None:
        found.append(what)


class PhysicalAction(BaseModel):
    """One physical action a simulated instrument carried out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    instrument: str
    method: str
    arguments: dict[str, Any]
    process_time_s: float
    ok: bool
    """False when the instrument refused or failed the action (it may still have acted)."""
    repeat_of: str | None = None
    """Set when the instrument recognised the command as one it had already carried out."""


def _commands(instrument: Instrument) -> list[str]:
    cls = type(instrument)
    return [
        name
        for name in dir(cls)
        if not name.startswith("_") and call_kind(cls, name) is CallKind.COMMAND
    ]


class ActionLog:
    """Append every physical action of the given instruments to a JSON-lines file.

    Use as a context manager (:meth:`watch`): the instruments' command methods are
    wrapped on the instances for its duration and restored afterwards. Each line is
    flushed as it is written, so a reader in another process sees it at once.
    """

    def __init__(self, path: str | Path, clock: Clock) -> None:
        self.path = Path(path)
        self._clock = clock
        self._seq = 0
        self._file: IO[str] | None = None

    @contextmanager
    def watch(self, instruments: Mapping[str, Instrument]) -> Iterator[ActionLog]:
        self._file = self.path.open("a", encoding="utf-8")
        wrapped: list[tuple[Instrument, str]] = []
        try:
            for name, instrument in instruments.items():
                for method in _commands(instrument):
                    bound = getattr(instrument, method)
                    setattr(instrument, method, self._wrap(name, method, bound))
                    wrapped.append((instrument, method))
            yield self
        finally:
            for instrument, method in wrapped:
                instrument.__dict__.pop(method, None)
            self._file.close()
            self._file = None

    def _wrap(
        self, instrument: str, method: str, bound: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        signature = inspect.signature(bound)

        @functools.wraps(bound)
        async def acting(*args: Any, **kwargs: Any) -> Any:
            arguments = signature.bind(*args, **kwargs)  # as the journal names them
            ok = False
            repeats: list[str] = []
            token = _repeat.set(repeats)
            try:
                result = await bound(*args, **kwargs)
                ok = True
                return result
            finally:
                _repeat.reset(token)
                repeat_of = "; ".join(repeats) or None
                self._write(instrument, method, dict(arguments.arguments), ok, repeat_of)

        return acting

    def record(
        self, instrument: str, method: str, arguments: dict[str, Any], *, ok: bool = True
    ) -> None:
        """Log an action a served instrument did outside a watched command (a liquid
        handler's dispense over PyLabRobot's wire: :mod:`cellauto.sim.plr_actions`)."""
        self._write(instrument, method, arguments, ok, None)

    def _write(
        self,
        instrument: str,
        method: str,
        arguments: dict[str, Any],
        ok: bool,
        repeat_of: str | None,
    ) -> None:
        if self._file is None:
            return
        self._seq += 1
        action = PhysicalAction(
            seq=self._seq,
            instrument=instrument,
            method=method,
            arguments=to_jsonable(arguments),
            process_time_s=self._clock.now_s(),
            ok=ok,
            repeat_of=repeat_of,
        )
        self._file.write(action.model_dump_json() + "\n")
        self._file.flush()


def read_actions(path: str | Path) -> list[PhysicalAction]:
    """The actions a file written by :class:`ActionLog` holds (a torn last line is skipped)."""
    actions = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            actions.append(PhysicalAction.model_validate(json.loads(line)))
        except (ValueError, TypeError):
            log.warning("%s: skipping an unreadable line: %.80s", path, line)
    return actions
