"""Load a protocol from a Python file, refusing anything that is not one."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path

from cellauto.errors import ProtocolDefinitionError
from cellauto.protocols.definition import Protocol

__all__ = ["load_protocol"]


def load_protocol(path: str | Path) -> Protocol:
    """Import ``path`` and return its :class:`Protocol` (the module's ``protocol``)."""
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
    try:
        # run exactly the bytes that were hashed (the file could change in between)
        exec(compile(source, str(file), "exec"), module.__dict__)
    except ProtocolDefinitionError as exc:
        sys.modules.pop(module_name, None)
        raise ProtocolDefinitionError(f"{file}: {exc}") from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        raise ProtocolDefinitionError(
            f"protocol file {str(file)!r} failed to import: {type(exc).__name__}: {exc} "
            f"(at {Path(frame.filename).name}:{frame.lineno})"
        ) from None
    candidate = getattr(module, "protocol", None)
    if not isinstance(candidate, Protocol):
        found = [v for v in vars(module).values() if isinstance(v, Protocol)]
        if len(found) != 1:
            raise ProtocolDefinitionError(
                f"protocol file {str(file)!r} must define one Protocol object named 'protocol' "
                f"(found {len(found)} Protocol objects)"
            )
        candidate = found[0]
    if not candidate.steps:
        raise ProtocolDefinitionError(f"protocol {candidate.name!r} in {file} has no steps")
    candidate.source_file = str(file.resolve())
    candidate.source_sha256 = digest
    return candidate
