"""One connect path: the four OPC UA adapters take the same options, checked the same way.

Nothing here reaches a server: ``DeviceLink.open`` is replaced by a stub that keeps
what it was given, or the options are refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from cellauto.clock import Clock
from cellauto.instruments.opcua import (
    ConnectOptions,
    LinkOptions,
    OpcUaBioreactor,
    OpcUaCellProcessor,
    OpcUaCryoStorage,
    OpcUaFlowCytometer,
)
from cellauto.instruments.opcua.link import DeviceLink, OpcUaAdapter

pytestmark = pytest.mark.anyio

ADAPTERS = [OpcUaBioreactor, OpcUaCellProcessor, OpcUaFlowCytometer, OpcUaCryoStorage]
URL = "opc.tcp://127.0.0.1:9/nothing-listens"  # never reached: refused or stubbed first


class _Opened(Exception):
    """Raised by the stub in place of a connection."""


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    async def fake_open(
        cls: type[DeviceLink],
        interface_name: str,
        unit_paths: Mapping[str, str],
        options: LinkOptions,
        *,
        clock: Clock | None = None,
        on_gap: object = None,
    ) -> DeviceLink:
        calls.append(
            {"interface": interface_name, "options": options, "clock": clock, "on_gap": on_gap}
        )
        raise _Opened

    monkeypatch.setattr(DeviceLink, "open", classmethod(fake_open))
    return calls


def test_connect_options_are_the_link_options_with_clock_and_on_gap() -> None:
    link_fields = set(LinkOptions.model_fields) - {"url"}
    assert ConnectOptions.__optional_keys__ == link_fields | {"clock", "on_gap"}


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
def test_every_adapter_shares_the_base(adapter: type[OpcUaAdapter]) -> None:
    assert issubclass(adapter, OpcUaAdapter)
    for member in ("__aenter__", "__aexit__", "gaps"):
        assert getattr(adapter, member) is getattr(OpcUaAdapter, member)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
async def test_options_reach_the_link_converted_and_defaults_kept(
    adapter: Any, opened: list[dict[str, Any]]
) -> None:
    clock = Clock()

    def on_gap(started_s: float, ended_s: float, reason: str) -> None:
        pass

    with pytest.raises(_Opened):
        await adapter.connect(
            URL, password="pw", certificate="pki/runner.der", user="runner", timeout_s=2.5,
            clock=clock, on_gap=on_gap, device="Bioreactor-1",
        )  # fmt: skip
    (call,) = opened
    options = call["options"]
    assert call["interface"] == adapter.interface_name
    assert call["clock"] is clock and call["on_gap"] is on_gap
    assert isinstance(options.password, SecretStr)
    assert options.password.get_secret_value() == "pw"
    assert options.certificate == Path("pki/runner.der")
    assert options == LinkOptions(
        url=URL, password=SecretStr("pw"), certificate=Path("pki/runner.der"),
        user="runner", timeout_s=2.5, device="Bioreactor-1",
    )  # fmt: skip
    assert (options.security, options.poll_interval_s, options.outage_limit_s) == (
        "none",
        60.0,
        3600.0,
    )


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
async def test_without_options_clock_and_on_gap_are_none(
    adapter: Any, opened: list[dict[str, Any]]
) -> None:
    with pytest.raises(_Opened):
        await adapter.connect(URL)
    (call,) = opened
    assert call["clock"] is None and call["on_gap"] is None
    assert call["options"] == LinkOptions(url=URL)


@pytest.mark.parametrize(
    ("adapter", "keyword"),
    [(adapter, "timeout_ms") for adapter in ADAPTERS]  # nobody's
    + [(OpcUaFlowCytometer, "max_age_s"), (OpcUaCryoStorage, "supervisory_job_id")],  # others'
    ids=lambda value: getattr(value, "__name__", value),
)
async def test_an_unknown_keyword_is_a_type_error_before_connecting(
    adapter: Any, keyword: str, opened: list[dict[str, Any]]
) -> None:
    with pytest.raises(TypeError, match=keyword):
        await adapter.connect(URL, **{keyword: 0.0})
    assert opened == []


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
async def test_a_bad_value_is_refused_before_connecting(
    adapter: Any, opened: list[dict[str, Any]]
) -> None:
    with pytest.raises(ValidationError, match="timeout_s"):
        await adapter.connect(URL, timeout_s=0.0)
    with pytest.raises(ValidationError, match="url"):
        await adapter.connect("http://127.0.0.1:9/")
    assert opened == []
