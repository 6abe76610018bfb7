"""The package is typed for protocol authors: py.typed, and Protocol/Run generic in params.

What the type checker makes of ``Run[CarTParams]`` is checked by CI's mypy step over
the shipped protocols (a mypy run per test would be too slow for the suite).
"""

from __future__ import annotations

from pathlib import Path
from typing import get_origin

import cellauto
from cellauto import Params, Protocol, Run


class DoseParams(Params):
    dose_ml: float = 1.0


def test_the_package_ships_its_py_typed_marker() -> None:
    assert (Path(cellauto.__file__).parent / "py.typed").is_file()


def test_protocol_and_run_are_subscriptable_at_run_time() -> None:
    assert get_origin(Run[DoseParams]) is Run
    protocol: Protocol[DoseParams] = Protocol("p", version="1", params=DoseParams)
    assert protocol.params is DoseParams
