"""cellauto: run GMP cell-therapy manufacturing on automated instruments.

Protocol authors import what they need from here::

    from cellauto import Field, Params, Protocol, Run, Spec
    from cellauto.instruments import Bioreactor, CellCounter

The protocol API is imported on first use (PEP 562), so that ``import cellauto.records``
or the ``cellauto`` command line does not pay for the runner, pydantic and the instrument
interfaces they do not need.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from cellauto.errors import CellautoError

if TYPE_CHECKING:
    from pydantic import Field

    from cellauto.protocols import (
        CheckPolicy,
        Command,
        Material,
        MaterialInput,
        Params,
        Protocol,
        ResumePolicy,
        Run,
        Runner,
        SimDefault,
        Spec,
        State,
        measured,
        per_batch,
        per_param,
    )

__version__ = "0.1.0"

__all__ = [
    "CellautoError",
    "CheckPolicy",
    "Command",
    "Field",
    "Material",
    "MaterialInput",
    "Params",
    "Protocol",
    "ResumePolicy",
    "Run",
    "Runner",
    "SimDefault",
    "Spec",
    "State",
    "__version__",
    "measured",
    "per_batch",
    "per_param",
]

_LAZY = {
    "Field": "pydantic",
    **dict.fromkeys(
        (
            "CheckPolicy",
            "Command",
            "Material",
            "MaterialInput",
            "Params",
            "Protocol",
            "ResumePolicy",
            "Run",
            "Runner",
            "SimDefault",
            "Spec",
            "State",
            "measured",
            "per_batch",
            "per_param",
        ),
        "cellauto.protocols",
    ),
}


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all attribute

    def __getattr__(name: str) -> object:
        """Import a public name of the protocol API on first use, then keep it here."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'cellauto' has no attribute {name!r}")
        value = getattr(import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
