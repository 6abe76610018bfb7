"""Import a library of an optional extra, or refuse naming the extra to install."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from cellauto.errors import BadInputError

__all__ = ["analysis_module"]


def analysis_module(name: str) -> Any:
    """Import ``name`` (pyarrow, pandas, matplotlib...), a library of ``cellauto[analysis]``.

    Typed Any: these libraries are imported lazily, so a controller on the line never
    needs them, and their stubs are not a dependency of type checking.
    """
    try:
        return import_module(name)
    except ImportError as exc:
        raise BadInputError(
            f"{name} is not installed: it comes with the analysis extra; "
            "install it with: pip install 'cellauto[analysis]'"
        ) from exc
