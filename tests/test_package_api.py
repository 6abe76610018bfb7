"""The public names of ``cellauto``: imported on first use, the same objects as their homes."""

from __future__ import annotations

import json
import subprocess
import sys

import pydantic
import pytest

import cellauto
import cellauto.protocols


def test_every_public_name_is_its_homes_object() -> None:
    for name in cellauto.__all__:
        home = pydantic if name == "Field" else cellauto.protocols
        if name in ("CellautoError", "__version__"):
            continue
        assert getattr(cellauto, name) is getattr(home, name), name
    assert set(cellauto.__all__) <= set(dir(cellauto))


def test_star_import_and_from_import() -> None:
    namespace: dict[str, object] = {}
    exec("from cellauto import *", namespace)
    from cellauto import Protocol, Run

    assert namespace["Protocol"] is Protocol and namespace["Run"] is Run
    assert set(cellauto.__all__) <= set(namespace)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        cellauto.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_package_imports_no_protocol_api() -> None:
    """``import cellauto.records`` or the CLI must not pay for the runner."""
    code = "import cellauto, json, sys; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(done.stdout)

    assert "pydantic" not in modules
    assert [m for m in modules if m.startswith("cellauto.")] == ["cellauto.errors"]
