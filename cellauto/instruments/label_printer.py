"""LabelPrinter: prints a ZPL II label onto a container (a Zebra-class printer).

The label's ZPL is built by :func:`cellauto.identity.label.to_zpl`; the printer takes it
whole. A plant's printer is reached over raw TCP 9100
(:class:`cellauto.instruments.tcp.TcpLabelPrinter`, docs/label-printer.md); the
simulated line's printer renders the symbols, so its scanner reads what was printed.
"""

from __future__ import annotations

from abc import abstractmethod

from pydantic import BaseModel, ConfigDict, Field

from cellauto.instruments.base import Instrument, command

__all__ = ["LabelPrinter", "PrintJob"]


class PrintJob(BaseModel):
    """One label printed: the printer's job number, the container it is on, its symbols."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: int = Field(ge=1)
    container: str
    symbols: int = Field(ge=0)


class LabelPrinter(Instrument):
    interface_name = "LabelPrinter"

    @command
    @abstractmethod
    async def print_label(self, zpl: str, container: str) -> PrintJob:
        """Print ``zpl`` and apply the label to ``container`` (a reprint replaces it)."""
