"""The version and internals check every compatibility module runs at import."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cellauto.errors import CellautoError

__all__ = [
    "Internal",
    "UntestedDependencyError",
    "UntestedDependencyWarning",
    "assigned_in",
    "check_dependency",
    "has",
    "internal",
]

log = logging.getLogger(__name__)


class UntestedDependencyError(CellautoError, ImportError):
    """A dependency whose private internals cellauto uses is not a tested version, or
    lacks one of those internals."""


class UntestedDependencyWarning(UserWarning):
    """A dependency (Python itself) is not a version cellauto was tested with."""


@dataclass(frozen=True)
class Internal:
    """One private internal of a dependency: where it is, and how to tell it is there."""

    name: str  # e.g. "asyncua.server.uaprocessor.UaProcessor._watchdog_interval"
    present: Callable[[], bool]


def has(owner: Callable[[], object], attribute: str) -> Callable[[], bool]:
    """The check that ``owner()`` (a module or class, looked up at check time) has
    ``attribute``."""
    return lambda: hasattr(owner(), attribute)


def assigned_in(cls_path: Callable[[], type], attribute: str) -> Callable[[], bool]:
    """The check that a method of the class assigns or reads ``self.<attribute>``
    (an instance attribute, which the class itself does not show)."""

    def present() -> bool:
        cls = cls_path()
        for klass in inspect.getmro(cls):
            for member in vars(klass).values():
                code = (
                    getattr(inspect.unwrap(member), "__code__", None) if callable(member) else None
                )
                if code is not None and attribute in code.co_names:
                    return True
        return False

    return present


def internal(path: str, attribute: str, *, instance: bool = False) -> Internal:
    """The internal ``<path>.<attribute>``, named so: ``path`` a module or class by dotted
    name, looked up (imported) at check time; an absent one is a missing internal.
    ``instance``: an attribute its methods assign or read (:func:`assigned_in`), not
    one the class or module itself has (:func:`has`)."""

    def present() -> bool:
        try:
            owner = _lookup(path)
        except (ImportError, AttributeError):
            return False
        check = assigned_in if instance else has
        return check(lambda: owner, attribute)()

    return Internal(f"{path}.{attribute}", present)


def _lookup(path: str) -> Any:
    """The module, class or attribute at a dotted ``path``, importing modules on the way."""
    parts = path.split(".")
    found: Any = importlib.import_module(parts[0])
    for end, part in enumerate(parts[1:], start=2):
        if not hasattr(found, part):  # a submodule not imported yet
            importlib.import_module(".".join(parts[:end]))
        found = getattr(found, part)
    return found


def _short(name: str) -> str:
    """``a.b.Class._attr`` -> ``Class._attr``; ``a.b.module.asyncio`` -> ``module.asyncio``."""
    return ".".join(name.split(" ")[0].split(".")[-2:])


def check_dependency(
    package: str,
    tested: Sequence[str],
    internals: Sequence[Internal],
    *,
    module: str,
    installed: str | None = None,
    on_untested: Literal["raise", "warn"] = "raise",
) -> str:
    """Refuse (or warn about) an untested ``package`` version; refuse a missing internal.

    ``installed`` defaults to ``importlib.metadata.version(package)``, looked up now.
    Returns the installed version.
    """
    version = installed if installed is not None else importlib.metadata.version(package)
    where = f"cellauto/_compat/{module}.py"
    if version not in tested:
        message = (
            f"{package} {version} is installed, but cellauto was tested with {package} "
            f"{' / '.join(tested)} only, and it uses {package}'s private internals "
            f"({', '.join(dict.fromkeys(_short(i.name) for i in internals)) or 'none'}), which "
            f"may have changed. Install a tested version (pip install '{package}=={tested[-1]}')"
            f"; to adopt {version}, run cellauto's tests against it and add it to TESTED in "
            f"{where} once they pass"
        )
        if on_untested == "raise":
            raise UntestedDependencyError(message)
        log.error("%s", message)
        warnings.warn(message, UntestedDependencyWarning, stacklevel=2)
    missing = [i.name for i in internals if not i.present()]
    if missing:
        raise UntestedDependencyError(
            f"{package} {version} lacks {', '.join(missing)}, which cellauto uses "
            f"({where}); install a tested version: {package} {' / '.join(tested)}"
        )
    return version
