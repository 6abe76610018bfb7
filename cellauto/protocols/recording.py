"""The instrument boundary: every call a step makes to an instrument is recorded here.

Steps never receive the instrument itself but a :class:`RecordedInstrument` that
forwards each interface method and journals it, so the protocol author writes no
logging code:

* ``@command`` methods wait at a hold point first (no new physical action while the
  run is holding), then journal the intent *durably* before the instrument is
  touched, then journal the response (or the error) with its duration;
* ``@query`` methods journal their result as a reading;
* ``@stream`` methods journal every item they yield as a reading.

A call of a *shared* instrument (:mod:`.holds`) is made in a hold of the instrument: the
run waits for it in the asset's fair queue first, unless it holds it already
(``run.hold``).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cellauto.errors import OutcomeUnknownError
from cellauto.instruments.base import CallKind, Instrument, call_kind
from cellauto.protocols import holds
from cellauto.protocols.jsonable import to_jsonable
from cellauto.records import payloads as rec

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution

__all__ = ["RecordedInstrument"]


def _error_info(exc: BaseException) -> rec.ErrorInfo:
    return rec.ErrorInfo(type=type(exc).__name__, message=str(exc))


class RecordedInstrument:
    """A stand-in for one instrument of the line that records every call."""

    def __init__(self, name: str, instrument: Instrument, execution: Execution) -> None:
        self._name = name
        self._instrument = instrument
        self._execution = execution
        self.identity = instrument.identity

    def __repr__(self) -> str:
        return f"<recorded {self._name}: {self._instrument!r}>"

    @property
    def unwrapped(self) -> Instrument:
        """The instrument itself (calls on it are not recorded)."""
        return self._instrument

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._instrument, attr)
        kind = call_kind(type(self._instrument), attr)
        if kind is None or not callable(target):
            return target
        if kind is CallKind.COMPOSITE:
            # run the interface's own code with self = this recorder
            wrapper: Any = getattr(type(self._instrument), attr).__get__(self)
        elif kind is CallKind.STREAM:
            wrapper = self._wrap_stream(attr, target)
        else:
            wrapper = self._wrap_call(attr, target, kind)
        self.__dict__[attr] = wrapper  # cache: later lookups skip __getattr__
        return wrapper

    @staticmethod
    def _binder(method: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
        """Name each call's arguments as the journal records them (signature read once)."""
        try:
            bind = inspect.signature(method).bind
        except (TypeError, ValueError):
            bind = None

        def arguments(args: Any, kwargs: Any) -> dict[str, Any]:
            if bind is not None:
                try:
                    bound = bind(*args, **kwargs)
                except TypeError:
                    pass
                else:
                    return {k: to_jsonable(v) for k, v in bound.arguments.items()}
            return {"args": to_jsonable(list(args)), "kwargs": to_jsonable(kwargs)}

        return arguments

    def _wrap_call(
        self, method_name: str, method: Callable[..., Awaitable[Any]], kind: CallKind
    ) -> Callable[..., Awaitable[Any]]:
        execution = self._execution
        name = self._name
        bind_arguments = self._binder(method)

        shared = holds.policy_of(self._instrument)

        async def recorded(*args: Any, **kwargs: Any) -> Any:
            if shared is not None:
                return await holds.using(
                    execution,
                    name,
                    shared,
                    method_name,
                    args,
                    kwargs,
                    lambda: call(args, kwargs, hold_point=False),
                    command=kind is CallKind.COMMAND,
                )
            return await call(args, kwargs, hold_point=True)

        async def call(args: Any, kwargs: Any, *, hold_point: bool) -> Any:
            if kind is CallKind.COMMAND and hold_point:
                await execution.hold_point()
            arguments = bind_arguments(args, kwargs)
            step = execution.current_step_name
            clock = execution.clock
            command_seq = None
            if kind is CallKind.COMMAND:
                # on disk before the instrument is touched (the loop runs on meanwhile)
                command_seq = await execution.record_durable(
                    rec.InstrumentCommand(
                        instrument=name, method=method_name, arguments=arguments, step=step
                    )
                )
            started = clock.monotonic()
            try:
                result = await method(*args, **kwargs)
            except BaseException as exc:
                execution.record(
                    rec.InstrumentResponse(
                        instrument=name,
                        method=method_name,
                        command_seq=command_seq,
                        arguments=arguments,
                        step=step,
                        ok=False,
                        error=_error_info(exc),
                        # sent, but whether it was carried out is unknown: still in doubt
                        outcome_unknown=isinstance(exc, OutcomeUnknownError),
                        duration_s=clock.monotonic() - started,
                    )
                )
                raise
            if kind is CallKind.COMMAND:
                execution.record(
                    rec.InstrumentResponse(
                        instrument=name,
                        method=method_name,
                        command_seq=command_seq,
                        step=step,
                        ok=True,
                        result=to_jsonable(result),
                        duration_s=clock.monotonic() - started,
                    )
                )
                # material moved between declared containers: its transfer, recorded here
                await execution.containers.after_instrument(name, method_name, arguments)
            else:
                execution.record(
                    rec.Reading(
                        instrument=name,
                        method=method_name,
                        arguments=arguments,
                        step=step,
                        value=to_jsonable(result),
                    )
                )
            return result

        recorded.__name__ = method_name
        recorded.__doc__ = method.__doc__
        return recorded

    def _wrap_stream(
        self, method_name: str, method: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        execution = self._execution
        name = self._name
        bind_arguments = self._binder(method)

        async def recorded(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            arguments = bind_arguments(args, kwargs)
            try:
                async for item in method(*args, **kwargs):
                    execution.record(
                        rec.Reading(
                            instrument=name,
                            method=method_name,
                            arguments=arguments,
                            step=execution.current_step_name,
                            value=to_jsonable(item),
                        )
                    )
                    yield item
            except Exception as exc:
                execution.record(
                    rec.InstrumentResponse(
                        instrument=name,
                        method=method_name,
                        command_seq=None,
                        arguments=arguments,
                        step=execution.current_step_name,
                        ok=False,
                        error=_error_info(exc),
                        duration_s=0.0,
                    )
                )
                raise

        recorded.__name__ = method_name
        return recorded
