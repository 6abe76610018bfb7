"""The ZPL subset: what the writer writes, the parser reads back; anything else is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellauto.identity.zpl import ZplError, ZplWriter, parse_zpl


def test_round_trip_of_every_field_kind() -> None:
    zpl = ZplWriter(812, 406)
    zpl.code128(20, 20, "=G12349865432177", module=2, height=60)
    zpl.datamatrix(600, 20, "a|b", module=5)
    zpl.text(20, 170, "Store at or below -150 °C", size=22)
    printed = parse_zpl(zpl.zpl())
    assert (printed.width, printed.length) == (812, 406)
    c128, dm = printed.symbols
    assert (c128.symbology, c128.x, c128.y, c128.module, c128.height, c128.data) == (
        "code128",
        20,
        20,
        2,
        60,
        "=G12349865432177",
    )
    assert (dm.symbology, dm.x, dm.module, dm.data) == ("datamatrix", 600, 5, "a|b")
    assert [(t.x, t.y, t.size, t.text) for t in printed.texts] == [
        (20, 170, 22, "Store at or below -150 °C")
    ]


@given(st.text(min_size=1, max_size=60))
def test_any_text_survives_escaping(text: str) -> None:
    zpl = ZplWriter(100, 100)
    zpl.text(0, 0, text)
    written = zpl.zpl()
    assert written.count("^FD") == 1 and "~" not in written
    assert parse_zpl(written).texts[0].text == text


def test_control_characters_cannot_inject_commands() -> None:
    zpl = ZplWriter(100, 100)
    zpl.text(0, 0, "x^FS^FO0,0^BXN,5,200^FDevil")
    printed = parse_zpl(zpl.zpl())
    assert printed.symbols == ()
    assert printed.texts[0].text == "x^FS^FO0,0^BXN,5,200^FDevil"


@pytest.mark.parametrize(
    ("zpl", "match"),
    [
        ("^XA^PW10^LL10^FO0,0^GB10,10,1^FS^XZ", r"\^GB10,10,1: not a command"),
        ("^PW10^LL10", r"\^XA \.\.\. \^XZ"),
        ("^XA^PW10^LL10~HS^XZ", "~ commands"),
        ("^XA^PW10^LL10^FO0,0^FDx^FS^XZ", "without a field type"),
        ("^XA^PW10^LL10^FO0,0^A0N,20,20^FDx^XZ", "not ended by"),
        ("^XA^LL10^XZ", "width"),
        ("^XA^PW10^LL10^FO0,0^BXN,0,200^FDx^FS^XZ", r"field at \(0, 0\)"),
        ("^XA^PW10^LL10^FOa,0^XZ", "integer"),
        ("^XA^PW10^LL10^FO0,0^A0N,9,9^FH_^FD_ZZ^FS^XZ", r"bad \^FH escape"),
    ],
)
def test_outside_the_subset_is_refused(zpl: str, match: str) -> None:
    with pytest.raises(ZplError, match=match):
        parse_zpl(zpl)
