"""Live progress of a run: a status line on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from cellauto.records import payloads as rec
from cellauto.records.wording import format_duration, iso

if TYPE_CHECKING:
    from cellauto.protocols.definition import Protocol
    from cellauto.protocols.params import Params

__all__ = ["Progress", "format_duration", "iso"]


class Progress:
    """Observer of a run's records that tells the operator what is happening."""

    def __init__(self, protocol: Protocol, params: Params, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self.protocol = protocol
        self.total = len(protocol.steps)
        self.estimates_h = protocol.estimate_h(params)
        self.start_s: float | None = None
        self._last_draw = 0.0
        self._step_index = 0
        self._step_start_s: float | None = None
        self.closed = False
        self._status = ""

    def _remaining_h(self, index: int, now_s: float | None = None) -> float:
        """Estimated hours left: the rest of step ``index`` and every step after it."""
        current = self.estimates_h[index] if index < self.total else 0.0
        if now_s is not None and self._step_start_s is not None:
            current = max(0.0, current - (now_s - self._step_start_s) / 3600)
        return current + sum(self.estimates_h[index + 1 :])

    def _write(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except (BrokenPipeError, ValueError):  # the reader went away: keep running, quietly
            self.closed = True

    def _line(self, text: str) -> None:
        clear = "\r\x1b[K" if self.live and self._status else ""
        status = self._status if self.live else ""
        self._write(f"{clear}{text}\n{status}")

    def _draw(self, now_s: float, force: bool = False) -> None:
        if not self.live or self.start_s is None:
            return
        wall = time.monotonic()
        if not force and wall - self._last_draw < 0.1:
            return
        self._last_draw = wall
        step = self.protocol.steps[min(self._step_index, self.total - 1)].name
        self._status = (
            f"[{self._step_index + 1}/{self.total}] {step}  "
            f"process time {format_duration(now_s - self.start_s)}  "
            f"est. remaining {format_duration(self._remaining_h(self._step_index, now_s) * 3600)}"
        )
        self._write("\r\x1b[K" + self._status)

    def __call__(self, payload: rec.Payload, now_s: float) -> None:
        p = payload
        match p:
            case rec.RunStarted():
                self.start_s = now_s
                self._line(
                    f"{iso(now_s)}  start {self.protocol.name} {self.protocol.version}: "
                    f"{self.total} steps, est. {format_duration(self._remaining_h(0) * 3600)}"
                )
            case rec.StepStarted():
                self._step_index = p.index
                self._step_start_s = now_s
                elapsed = now_s - (self.start_s or now_s)
                remaining = self._remaining_h(self._step_index) * 3600
                self._line(
                    f"{iso(now_s)}  step {self._step_index + 1}/{self.total} "
                    f"{' / '.join(p.path)}  (t+{format_duration(elapsed)}, "
                    f"est. remaining {format_duration(remaining)})"
                )
            case rec.StepFailed():
                self._line(f"{iso(now_s)}  step {p.step} FAILED: {p.error}")
            case rec.Deviation():
                self._line(f"{iso(now_s)}  DEVIATION ({p.policy.value}): {p.description}")
            case rec.StateChange():
                self._line(f"{iso(now_s)}  state {p.from_state} -> {p.to_state}")
            case rec.Alarm():
                self._line(f"{iso(now_s)}  ALARM {p.severity}: {p.message}")
            case rec.RunEnded():
                self._status = ""
                if self.live:
                    self._write("\r\x1b[K")
        self._draw(now_s, force=isinstance(p, rec.StepStarted))
