"""cellauto: run GMP cell-therapy manufacturing on automated instruments.

Protocol authors import what they need from here::

    from cellauto import Field, Params, Protocol, Run, Spec
    from cellauto.instruments import Bioreactor, CellCounter
"""

from pydantic import Field

from cellauto.errors import CellautoError
from cellauto.protocols import (
    CheckPolicy,
    Command,
    MaterialInput,
    Params,
    Protocol,
    ResumePolicy,
    Run,
    Runner,
    Spec,
    State,
)

__version__ = "0.1.0"

__all__ = [
    "CellautoError",
    "CheckPolicy",
    "Command",
    "Field",
    "MaterialInput",
    "Params",
    "Protocol",
    "ResumePolicy",
    "Run",
    "Runner",
    "Spec",
    "State",
    "__version__",
]
