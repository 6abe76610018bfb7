"""A label raster is decoded once however often it is scanned; a changed pixel is not
served from what was decoded before."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cellauto.identity.containers import ContainerIdentity
from cellauto.identity.label import label_for, to_zpl
from cellauto.sim import label_printer
from cellauto.sim.label_printer import decode_label, render_label

IDENTITY = ContainerIdentity(
    din="G123426123456", flag="01", product_code="S1234VA0", coi="W123426A1B2C3"
)


def _pixels() -> label_printer.Pixels:
    label = label_for(
        IDENTITY, product="CAR-T cells, autologous", expires=datetime(2027, 12, 10, tzinfo=UTC),
        volume_ml=70.0, cells="1.2e8 CAR+ viable T cells", facility="cellauto demo plant",
    )  # fmt: skip
    return render_label(to_zpl(label)).pixels


def test_the_same_raster_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(label_printer, "_DECODED", label_printer.OrderedDict())
    calls: list[int] = []
    real = label_printer._decode
    monkeypatch.setattr(label_printer, "_decode", lambda p: calls.append(1) or real(p))
    pixels = _pixels()
    first = decode_label(pixels)
    assert len(first) == 3
    assert decode_label(pixels) == first
    assert decode_label(pixels.copy()) == first  # equal content, another array
    assert len(calls) == 1


def test_a_changed_raster_is_decoded_anew() -> None:
    pixels = _pixels()
    whole = decode_label(pixels)
    smudged = pixels.copy()
    smudged[:, :] = 255  # wiped clean: nothing left to read
    assert decode_label(smudged) == ()
    assert decode_label(pixels) == whole


def test_the_kept_decodes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(label_printer, "_DECODED", label_printer.OrderedDict())
    monkeypatch.setattr(label_printer, "_DECODED_KEPT", 2)
    blank = render_label("^XA^PW100^LL100^XZ").pixels
    for shade in (250, 251, 252, 253):
        decode_label(blank.copy() * 0 + shade)
    assert len(label_printer._DECODED) == 2
