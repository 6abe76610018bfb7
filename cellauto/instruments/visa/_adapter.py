"""What the VISA adapters share: connecting, identifying, closing, building models."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ValidationError

from cellauto.instruments.base import Instrument, InstrumentIdentity
from cellauto.instruments.visa.errors import ScpiReplyError
from cellauto.instruments.visa.session import VisaSession

__all__ = ["VisaAdapter", "reply_model"]

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)


class VisaAdapter(Instrument):
    """Base of the VISA adapters: ``session`` is the :class:`VisaSession` behind them."""

    def __init__(self, session: VisaSession, identity: InstrumentIdentity) -> None:
        super().__init__(identity)
        self.session = session

    @classmethod
    async def connect(
        cls,
        resource_name: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backend: str = "@py",
        spin_s: float = 200e-6,
        **options: Any,
    ) -> Self:
        """Open ``resource_name``, read ``*IDN?`` into the identity and clear the status.

        ``backend`` is pyvisa's: ``@py`` (pyvisa-py, the default) or ``<file.yaml>@sim``
        (pyvisa-sim). ``timeout_s`` bounds every round trip; idempotent queries are tried
        ``1 + retries`` times. ``spin_s`` is how long a reply is polled for on the event
        loop's thread before the wait moves to the session's thread (see
        :mod:`cellauto.instruments.visa.session`). ``options`` go to the adapter (e.g.
        ``poll_interval_s``).
        """
        session = await VisaSession.open(
            resource_name, timeout_s=timeout_s, retries=retries, backend=backend, spin_s=spin_s
        )
        try:
            vendor, model, serial, firmware = await session.identify()
            identity = InstrumentIdentity(
                vendor=vendor, model=model, serial=serial, firmware=firmware, adapter="visa"
            )
            session.where = f"{cls.interface_name} {serial} at {resource_name}"
            instrument = cls(session, identity, **options)
            instrument.errors_at_connect = await session.read_errors()
            if instrument.errors_at_connect:
                log.warning(
                    "%s: error queue at connect: %s", session.where, instrument.errors_at_connect
                )
            await session.command("*CLS")
        except BaseException:
            await session.aclose()
            raise
        return instrument

    async def aclose(self) -> None:
        """Close the VISA session (the instrument keeps running whatever it was doing)."""
        await self.session.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def reply_model(model: type[M], text: str, fields: dict[str, Any]) -> M:
    """``model`` from parsed reply ``fields``; values the model refuses make a bad reply."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ScpiReplyError(f"values a {model.__name__} cannot hold ({problems})", text) from None
