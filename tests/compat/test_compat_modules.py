"""Each dependency's internals live in one compat module that refuses an untested version.

For asyncua, pyvisa-py and PyLabRobot (pinned exactly): the check passes on the pinned
version, and refuses loudly (UntestedDependencyError, at import too) when another
version is installed or an internal it uses is missing. Python is not pinned: an
untested Python warns, a missing event-loop internal refuses.
"""

from __future__ import annotations

import asyncio.base_events
import importlib
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from cellauto._compat import asyncio as asyncio_compat
from cellauto._compat import asyncua as asyncua_compat
from cellauto._compat import pylabrobot as plr_compat
from cellauto._compat import pyvisa_py as pyvisa_py_compat
from cellauto._compat._check import UntestedDependencyError, UntestedDependencyWarning
from cellauto._compat._check import internal as internal_at
from cellauto.errors import CellautoError

ROOT = Path(__file__).resolve().parents[2]

PINNED: dict[str, ModuleType] = {
    "asyncua": asyncua_compat,
    "pyvisa-py": pyvisa_py_compat,
    "pylabrobot": plr_compat,
}


def _pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {}
    for requirement in project["dependencies"]:
        name, sep, version = requirement.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    return pins


@pytest.mark.parametrize("package", sorted(PINNED))
def test_the_check_passes_on_the_pinned_version(package: str) -> None:
    module = PINNED[package]
    pinned = _pins()[package]
    assert importlib.metadata.version(package) == pinned
    assert pinned in module.TESTED  # the pin and the tested versions move together
    assert module.check() == pinned


@pytest.mark.parametrize("package", sorted(PINNED))
def test_another_installed_version_is_refused_naming_both_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    module = PINNED[package]
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "99.0.0" if name == package else real_version(name),
    )
    with pytest.raises(UntestedDependencyError) as refused:
        module.check()
    assert isinstance(refused.value, CellautoError) and isinstance(refused.value, ImportError)
    message = str(refused.value)
    assert f"{package} 99.0.0 is installed" in message
    assert f"tested with {package} {module.TESTED[0]}" in message
    assert f"pip install '{package}=={module.TESTED[-1]}'" in message
    assert f"cellauto/_compat/{module.__name__.rsplit('.', 1)[-1]}.py" in message


@pytest.mark.parametrize("package", sorted(PINNED))
def test_importing_with_another_version_installed_fails(package: str) -> None:
    module = PINNED[package].__name__
    code = (
        "import importlib.metadata as m\n"
        "real = m.version\n"
        f"m.version = lambda name: '99.0.0' if name == {package!r} else real(name)\n"
        f"import {module}\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "UntestedDependencyError" in result.stderr
    assert f"{package} 99.0.0 is installed" in result.stderr


class _Bare:
    """A class without any of the internals."""


@pytest.mark.parametrize(
    ("dependency", "attribute", "module", "internal"),
    [
        ("asyncua.client.client", "Client", asyncua_compat, "Client._stale_check_interval"),
        (
            "asyncua.server.uaprocessor",
            "UaProcessor",
            asyncua_compat,
            "UaProcessor._process_message",
        ),
        (
            "asyncua.server.internal_server",
            "InternalServer",
            asyncua_compat,
            "InternalServer._external_sessions",
        ),
        ("pylabrobot.resources", "TipTracker", plr_compat, "TipTracker._pending_tip"),
        (
            "pylabrobot.liquid_handling",
            "LiquidHandler",
            plr_compat,
            "LiquidHandler._blow_out_air_volume",
        ),
    ],
)
def test_a_missing_internal_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
    dependency: str,
    attribute: str,
    module: ModuleType,
    internal: str,
) -> None:
    # the dependency's class replaced by one without the internals (as a changed release)
    monkeypatch.setattr(importlib.import_module(dependency), attribute, _Bare)
    with pytest.raises(UntestedDependencyError, match=re.escape(internal)):
        module.check()


def test_an_internal_whose_module_or_class_is_gone_is_missing_not_an_error() -> None:
    assert internal_at("asyncua.server.uaprocessor.UaProcessor", "_process_message").present()
    assert internal_at(
        "asyncua.server.uaprocessor.UaProcessor", "_connection", instance=True
    ).present()
    for path in ("asyncua.no_such_module.Thing", "asyncua.server.uaprocessor.NoSuchClass"):
        gone = internal_at(path, "_process_message")
        assert gone.name == f"{path}._process_message"
        assert not gone.present()
    assert not internal_at("asyncua.server.uaprocessor.UaProcessor", "_nope").present()
    assert not internal_at(
        "asyncua.server.uaprocessor.UaProcessor", "_nope", instance=True
    ).present()


def test_pyvisa_py_without_its_read_buffer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyvisa_py.tcpip

    monkeypatch.setattr(pyvisa_py.tcpip, "TCPIPSocketSession", _Bare)
    with pytest.raises(UntestedDependencyError, match=r"TCPIPSocketSession\._pending_buffer"):
        pyvisa_py_compat.check()


def test_asyncua_without_asyncio_in_a_timed_module_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncua.server.uaprocessor

    monkeypatch.delattr(asyncua.server.uaprocessor, "asyncio")
    with pytest.raises(UntestedDependencyError, match=r"uaprocessor\.asyncio"):
        asyncua_compat.check()


def test_the_tested_python_passes_and_an_untested_one_warns_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert asyncio_compat.check() == asyncio_compat.python_version()
    with pytest.warns(UntestedDependencyWarning, match=r"python 3\.99 is installed"):
        assert asyncio_compat.check(installed="3.99") == "3.99"
    assert any("python 3.99 is installed" in r.getMessage() for r in caplog.records)


def test_an_event_loop_that_no_longer_selects_as_the_clocks_expect_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def _run_once(self: object) -> None:  # no selector, no timers
        pass

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "_run_once", _run_once)
    with pytest.raises(UntestedDependencyError, match=r"_run_once -> _selector"):
        asyncio_compat.check()


@pytest.mark.anyio
async def test_on_the_virtual_clock_asyncuas_timers_are_left_as_they_were() -> None:
    import asyncua.server.uaprocessor

    asyncua_compat.use_real_time_timers()
    assert asyncua_compat.real_time_timers_in_use()
    started = asyncio.get_running_loop().time()
    await asyncua.server.uaprocessor.asyncio.sleep(3600.0)  # jumped over, as before
    assert asyncio.get_running_loop().time() - started == 3600.0
