"""Load a protocol from a Python file, refusing anything that is not one."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cellauto.errors import ProtocolDefinitionError
from cellauto.protocols.definition import Protocol

__all__ = ["load_protocol"]


#: Seconds a protocol file may take to import (env ``CELLAUTO_IMPORT_TIMEOUT_S``).
DEFAULT_IMPORT_TIMEOUT_S = 30.0


class _ImportTimedOut(BaseException):
    """Raised into a protocol file's import that did not finish in time."""


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after ``seconds`` of real time (main thread, POSIX; else none)."""
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise _ImportTimedOut()

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _import_timeout_s() -> float:
    text = os.environ.get("CELLAUTO_IMPORT_TIMEOUT_S", "")
    try:
        return float(text) if text else DEFAULT_IMPORT_TIMEOUT_S
    except ValueError:
        raise ProtocolDefinitionError(
            f"CELLAUTO_IMPORT_TIMEOUT_S is {text!r}; give a number of seconds"
        ) from None


def load_protocol(path: str | Path, *, import_timeout_s: float | None = None) -> Protocol:
    """Import ``path`` and return its :class:`Protocol` (the module's ``protocol``).

    An import that takes longer than ``import_timeout_s`` (default
    ``$CELLAUTO_IMPORT_TIMEOUT_S``, else 30 s) of real time is interrupted and refused:
    a protocol file defines steps, it does not run them.
    """
    file = Path(path)
    if not file.is_file():
        raise ProtocolDefinitionError(
            f"protocol file {str(file)!r} does not exist (give the path to a .py file, "
            f"e.g. protocols/demo_expansion.py)"
        )
    if file.suffix != ".py":
        raise ProtocolDefinitionError(f"protocol file {str(file)!r} is not a .py file")
    source = file.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    module_name = f"cellauto_protocol_{file.stem}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ProtocolDefinitionError(f"protocol file {str(file)!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    limit_s = _import_timeout_s() if import_timeout_s is None else import_timeout_s
    try:
        # run exactly the bytes that were hashed (the file could change in between)
        with _time_limit(limit_s):
            exec(compile(source, str(file), "exec"), module.__dict__)
    except _ImportTimedOut as exc:
        sys.modules.pop(module_name, None)
        raise ProtocolDefinitionError(
            f"protocol file {str(file)!r} did not finish importing within {limit_s:g} s "
            f"(interrupted at {_where(exc, file)}); a protocol file defines its steps and runs "
            "nothing at import (set CELLAUTO_IMPORT_TIMEOUT_S if it truly needs longer)"
        ) from None
    except ProtocolDefinitionError as exc:
        sys.modules.pop(module_name, None)
        raise ProtocolDefinitionError(f"{file}: {exc}") from None
    except SystemExit as exc:  # the file ended the process: it would exit 0, silently
        sys.modules.pop(module_name, None)
        raise ProtocolDefinitionError(
            f"protocol file {str(file)!r} called sys.exit({exc.code!r}) while it was imported "
            f"(at {_where(exc)}); a protocol file defines its Protocol and runs nothing"
        ) from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ProtocolDefinitionError(
            f"protocol file {str(file)!r} failed to import: {type(exc).__name__}: {exc} "
            f"(at {_where(exc)})"
        ) from None
    return _finish(file, _the_protocol(file, module.__dict__), digest)


def _where(exc: BaseException, file: Path | None = None) -> str:
    """file:line of the exception: the last frame in ``file`` if it has one, else the last."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if file is not None and f.filename == str(file)]
    frame = (own or frames)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _the_protocol(file: Path, namespace: dict[str, object]) -> Protocol:
    """The one Protocol object the file defines; refused if there are none or several."""
    names: dict[int, list[str]] = {}
    objects: dict[int, Protocol] = {}
    for name, value in namespace.items():
        if isinstance(value, Protocol):
            names.setdefault(id(value), []).append(name)
            objects[id(value)] = value
    if len(objects) != 1:
        listed = ", ".join(repr(n) for group in names.values() for n in group) or "none"
        raise ProtocolDefinitionError(
            f"protocol file {str(file)!r} must define one Protocol object named 'protocol' "
            f"(found {len(objects)} Protocol objects: {listed}); one file holds one protocol"
        )
    return next(iter(objects.values()))


def _finish(file: Path, candidate: Protocol, digest: str) -> Protocol:
    """Refuse a protocol without steps; note where it came from."""
    if not candidate.steps:
        raise ProtocolDefinitionError(f"protocol {candidate.name!r} in {file} has no steps")
    candidate.source_file = str(file.resolve())
    candidate.source_sha256 = digest
    return candidate
