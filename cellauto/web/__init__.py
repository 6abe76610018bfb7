"""The operator and QA web app (``cellauto serve``): an ASGI app (Starlette on uvicorn)
over the same journal the controllers write. It reads the journal and writes site records
only, through the functions the CLI faces call; it never runs steps.

Starlette, uvicorn and jinja2 are the ``[web]`` extra, imported only here: a controller on
the line runs without them, and ``cellauto serve`` then says to install ``cellauto[web]``.
"""

from __future__ import annotations

import importlib.util

from cellauto.errors import BadInputError

__all__ = ["require_web_extra"]

_MODULES = ("starlette", "uvicorn", "jinja2")


def require_web_extra() -> None:
    """BadInputError naming the install when a module of the ``[web]`` extra is missing."""
    missing = [name for name in _MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise BadInputError(f"the web app needs {', '.join(missing)}: pip install 'cellauto[web]'")
