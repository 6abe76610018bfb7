"""The instrument side of SCPI: common commands, error queue, status registers, dispatch.

:class:`ScpiDevice` executes program messages for one simulated instrument. Subclasses
register their own headers in :meth:`ScpiDevice.register` and report overlapped work
through :meth:`operation_condition`, :meth:`operations_pending` and
:meth:`wait_operations`. The registers follow IEEE 488.2 (docs/scpi.md, "Status"):

* status byte (``*STB?``): bit 2 error queue not empty, bit 5 ESB (``*ESR?`` & ``*ESE``),
  bit 6 MSS (``*STB?`` & ``*SRE``), bit 7 OPER (operation event & enable);
* standard event status (``*ESR?``, read clears): bit 0 OPC, 2 query error, 3 device
  error, 4 execution error, 5 command error;
* operation status: CONDition (live), EVENt (bits that rose; read clears), ENABle.
"""

from __future__ import annotations

import logging
from collections import deque

from anyio.abc import TaskGroup
from pydantic import ValidationError

from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments.base import InstrumentIdentity
from cellauto.instruments.visa.scpi_format import quote
from cellauto.sim.scpi.errors import ScpiError, error_entry
from cellauto.sim.scpi.program import Args, HeaderTable, split_message

__all__ = ["ERROR_QUEUE_SIZE", "ScpiDevice", "validation_error"]

log = logging.getLogger(__name__)

ERROR_QUEUE_SIZE = 10

_OPC, _QYE, _DDE, _EXE, _CME = 1, 4, 8, 16, 32
_EAV, _ESB, _MSS, _OPER = 4, 32, 64, 128


class ScpiDevice:
    """One simulated instrument's SCPI interpreter (shared by all its connections)."""

    def __init__(self, identity: InstrumentIdentity) -> None:
        self.identity = identity
        self.errors: deque[tuple[int, str]] = deque()
        self.esr = self.ese = self.sre = 0
        self.oper_event = self.oper_enable = 0
        self._opc_armed = False
        self._task_group: TaskGroup | None = None
        self.table = HeaderTable()
        self._register_common()
        self.register(self.table)

    # -- what a device provides ------------------------------------------------------

    def register(self, table: HeaderTable) -> None:
        """Add the device's own headers."""

    async def operation_condition(self) -> int:
        """STATus:OPERation:CONDition bits now (0: nothing running)."""
        return 0

    async def operations_pending(self) -> bool:
        """Whether overlapped operations (a count, a freeze) are still running."""
        return False

    async def wait_operations(self) -> None:
        """Return once no overlapped operation is running (``*OPC?``, ``*WAI``)."""

    def reset(self) -> None:
        """``*RST``: the device's own settings back to their defaults."""

    # -- what the server calls -------------------------------------------------------

    def bind(self, task_group: TaskGroup | None) -> None:
        """The task group overlapped operations run in (the server's)."""
        self._task_group = task_group

    @property
    def task_group(self) -> TaskGroup:
        if self._task_group is None:
            raise ScpiError(100, "not served: overlapped operations need serve_scpi()")
        return self._task_group

    async def execute(self, raw: bytes) -> str | None:
        """Run one program message; the reply line (without ``\\n``) if it held a query.

        The first error stops the rest of the message; a message with a query then gets
        an empty reply line so that the controller does not wait for its timeout.
        """
        try:
            line = raw.decode("utf-8").removesuffix("\r")
        except UnicodeDecodeError:
            self.push_error(-102, "the message is not UTF-8 text")
            return "" if b"?" in raw else None
        try:
            units = split_message(line)
        except ScpiError as exc:
            self.push_error(exc.code, exc.detail)
            return "" if "?" in line else None
        replies: list[str] = []
        for unit in units:
            try:
                reply = await self.table.lookup(unit.header)(unit.args)
            except ScpiError as exc:
                self.push_error(exc.code, exc.detail)
            except OutOfRangeError as exc:
                self.push_error(-222, str(exc))
            except InstrumentError as exc:
                self.push_error(100, str(exc))
            except ValidationError as exc:
                error = validation_error(exc)
                self.push_error(error.code, error.detail)
            except Exception as exc:  # a simulator bug must not take the server down
                log.exception("%s: %r failed", self.identity.serial, unit.header)
                self.push_error(-200, f"internal error: {exc!r}")
            else:
                if unit.is_query and reply is not None:
                    replies.append(reply)
                continue
            return "" if any(u.is_query for u in units) else None
        return ";".join(replies) if any(u.is_query for u in units) else None

    def push_error(self, code: int, detail: str = "") -> None:
        """Queue an error (the last entry becomes -350 when the queue is full)."""
        entry = error_entry(code, detail)
        log.info("%s %s: SCPI error %d,%r", self.identity.model, self.identity.serial, *entry)
        if code <= -400 or -300 < code < -199:
            self.esr |= _QYE if code <= -400 else _EXE
        elif -200 < code <= -100:
            self.esr |= _CME
        else:
            self.esr |= _DDE
        if len(self.errors) < ERROR_QUEUE_SIZE:
            self.errors.append(entry)
        elif self.errors[-1][0] != -350:
            self.errors[-1] = error_entry(-350)

    def operation_started(self, bit: int) -> None:
        """An overlapped operation began: latch its bit in the operation event register."""
        self.oper_event |= bit

    async def status_byte(self) -> int:
        await self._update_opc()
        stb = _EAV if self.errors else 0
        stb |= _ESB if self.esr & self.ese else 0
        stb |= _OPER if self.oper_event & self.oper_enable else 0
        return stb | (_MSS if stb & self.sre & ~_MSS else 0)

    async def _update_opc(self) -> None:
        if self._opc_armed and not await self.operations_pending():
            self._opc_armed = False
            self.esr |= _OPC

    # -- common commands -------------------------------------------------------------

    def _register_common(self) -> None:
        add = self.table.add
        add("*IDN?", self._idn)
        add("*RST", self._rst)
        add("*CLS", self._cls)
        add("*ESR?", self._esr_query)
        add("*ESE", self._ese)
        add("*ESE?", lambda a: self._register_query(a, self.ese))
        add("*SRE", self._sre)
        add("*SRE?", lambda a: self._register_query(a, self.sre))
        add("*STB?", self._stb)
        add("*OPC", self._opc)
        add("*OPC?", self._opc_query)
        add("*WAI", self._wai)
        add("SYSTem:ERRor?", self._next_error)
        add("SYSTem:ERRor:NEXT?", self._next_error)
        add("SYSTem:ERRor:COUNt?", lambda a: self._register_query(a, len(self.errors)))
        add("SYSTem:VERSion?", self._version)
        add("STATus:OPERation:CONDition?", self._oper_condition)
        add("STATus:OPERation?", self._oper_event_query)
        add("STATus:OPERation:EVENt?", self._oper_event_query)
        add("STATus:OPERation:ENABle", self._oper_enable)
        add("STATus:OPERation:ENABle?", lambda a: self._register_query(a, self.oper_enable))
        add("STATus:PRESet", self._preset)

    async def _idn(self, args: Args) -> str:
        args.expect(0)
        i = self.identity
        return ",".join(_idn_field(f) for f in (i.vendor, i.model, i.serial, i.firmware))

    async def _rst(self, args: Args) -> None:
        args.expect(0)
        self._opc_armed = False
        self.reset()

    async def _cls(self, args: Args) -> None:
        args.expect(0)
        self.errors.clear()
        self.esr = self.oper_event = 0
        self._opc_armed = False

    async def _stb(self, args: Args) -> str:
        args.expect(0)
        return str(await self.status_byte())

    async def _esr_query(self, args: Args) -> str:
        args.expect(0)
        await self._update_opc()
        value, self.esr = self.esr, 0
        return str(value)

    async def _ese(self, args: Args) -> None:
        self.ese = _mask(args, 255)

    async def _sre(self, args: Args) -> None:
        self.sre = _mask(args, 255) & ~_MSS

    async def _register_query(self, args: Args, value: int) -> str:
        args.expect(0)
        return str(value)

    async def _opc(self, args: Args) -> None:
        args.expect(0)
        self._opc_armed = True
        await self._update_opc()

    async def _opc_query(self, args: Args) -> str:
        args.expect(0)
        await self.wait_operations()
        return "1"

    async def _wai(self, args: Args) -> None:
        args.expect(0)
        await self.wait_operations()

    async def _next_error(self, args: Args) -> str:
        args.expect(0)
        code, text = self.errors.popleft() if self.errors else error_entry(0)
        return f"{code},{quote(text)}"

    async def _version(self, args: Args) -> str:
        args.expect(0)
        return "1999.0"

    async def _oper_condition(self, args: Args) -> str:
        args.expect(0)
        return str(await self.operation_condition())

    async def _oper_event_query(self, args: Args) -> str:
        args.expect(0)
        value, self.oper_event = self.oper_event, 0
        return str(value)

    async def _oper_enable(self, args: Args) -> None:
        self.oper_enable = _mask(args, 32767)

    async def _preset(self, args: Args) -> None:
        args.expect(0)
        self.oper_enable = 0


def _mask(args: Args, high: int) -> int:
    args.expect(1)
    value = args.integer(0, "mask")
    if not 0 <= value <= high:
        raise ScpiError(-222, f"{args.header} mask {value} outside 0..{high}")
    return value


def _idn_field(text: str) -> str:
    return text.replace(",", " ").replace(";", " ").strip() or "-"


def validation_error(exc: ValidationError) -> ScpiError:
    """A pydantic refusal as SCPI: bounds are -222 "Data out of range", the rest -224."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    detail = f"{where}: {first['msg']}" if where else first["msg"]
    bounds = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
    return ScpiError(-222 if first["type"] in bounds else -224, detail)
