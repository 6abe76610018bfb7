"""The simulated printer prints a label's ZPL to a raster; the scanner decodes it with zxing."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cellauto.errors import InstrumentError
from cellauto.identity import ContainerPlan, identities
from cellauto.identity.label import Label, check_scan, label_for, to_zpl
from cellauto.identity.zpl import ZplError
from cellauto.sim.label_printer import (
    LabelImage,
    SimLabelPrinter,
    SimLabelScanner,
    _KeptLabel,
    decode_label,
    render_label,
)

BAGS = identities(
    "G123498654321",
    "W123426A1B2C3",
    [ContainerPlan(key="final product", container_type="final product", final=True, count=3)],
)


def bag_label(key: str) -> Label:
    return label_for(
        BAGS[key],
        product="CAR-T cells, autologous",
        expires=datetime(2027, 12, 20, 23, 59, tzinfo=UTC),
        volume_ml=70.0,
        cells="1.2e8 CAR+ viable T cells",
        facility="Cellauto Pilot Plant",
    )


def line() -> tuple[SimLabelPrinter, SimLabelScanner]:
    printer = SimLabelPrinter()
    return printer, SimLabelScanner(printer)


@pytest.mark.parametrize("dpi", [203, 300, 600])
def test_round_trip_every_symbol_decodes_to_what_was_printed(dpi: int) -> None:
    label = bag_label("final product 1")
    image = render_label(to_zpl(label, dpi=dpi))  # type: ignore[arg-type]
    assert image.pixels.shape == (round(406 * dpi / 203), round(812 * dpi / 203))
    decoded = decode_label(image.pixels)
    assert sorted(decoded) == sorted((s.symbology, s.data) for s in label.symbols())
    check = check_scan(label, decoded)
    assert check.matches, check.differences
    assert check.read is not None and check.read.identity == BAGS["final product 1"]


def test_each_bag_scans_as_its_own_identity() -> None:
    printer, scanner = line()
    for n in (1, 2, 3):
        key = f"final product {n}"
        job = printer.print_label(to_zpl(bag_label(key)), container=key)
        assert (job.job, job.container, job.symbols) == (n, key, 3)
    for key in ("final product 1", "final product 2", "final product 3"):
        check = check_scan(bag_label(key), scanner.scan(key))
        assert check.matches, check.differences


def test_label_printed_for_another_bag_decodes_to_another_identity() -> None:
    printer, scanner = line()
    printer.print_label(to_zpl(bag_label("final product 2")), container="final product 1")
    check = check_scan(bag_label("final product 1"), scanner.scan("final product 1"))
    assert not check.matches
    assert check.read is not None and check.read.identity == BAGS["final product 2"]
    assert any("the label identifies" in d for d in check.differences)


def test_misprinted_field_is_caught_by_the_decoder() -> None:
    printer, scanner = line()
    label = bag_label("final product 1")
    misprint = to_zpl(label).replace("^FD<S12341A0^FS", "^FD<S12341B0^FS")
    assert misprint != to_zpl(label)
    printer.print_label(misprint, container="final product 1")
    check = check_scan(label, scanner.scan("final product 1"))
    assert not check.matches
    assert any("product symbol" in d and "not read" in d for d in check.differences)
    assert any("'<S12341B0'" in d and "should not" in d for d in check.differences)


def test_smudged_data_matrix_does_not_decode() -> None:
    printer, scanner = line()
    label = bag_label("final product 1")
    printer.print_label(to_zpl(label), container="final product 1")
    printer.smudge("final product 1", (600, 20, 812, 200))
    decoded = scanner.scan("final product 1")
    assert [symbology for symbology, _ in decoded] == ["code128", "code128"]
    check = check_scan(label, decoded)
    assert not check.matches and check.read is None
    assert any("identity symbol (datamatrix)" in d for d in check.differences)


def test_the_printer_keeps_a_label_one_bit_a_dot_and_gives_it_back_dot_for_dot() -> None:
    """A thousand batches in one process each keep a bag label: 330 KB a raster as rendered,
    an eighth of that kept (bench/README.md, "memory per concurrent batch")."""
    printer, _ = line()
    zpl = to_zpl(bag_label("final product 1"))
    rendered = render_label(zpl).pixels
    printer.print_label(zpl, container="final product 1")
    kept = printer._labels["final product 1"]
    assert kept.packed and kept.dots.nbytes == -(-rendered.size // 8)
    again = printer.label_of("final product 1").pixels
    assert again.dtype == rendered.dtype and not again.flags.writeable
    assert np.array_equal(again, rendered)
    printer.smudge("final product 1", (600, 20, 812, 200))
    smudged = rendered.copy()
    smudged[20:200, 600:812] = 255
    assert printer._labels["final product 1"].packed
    assert np.array_equal(printer.label_of("final product 1").pixels, smudged)
    gray = LabelImage(pixels=np.full((8, 9), 128, dtype=np.uint8), printed=kept.printed)
    assert _KeptLabel.of(gray).image().pixels is gray.pixels  # with grays: kept as it is


def test_reprint_replaces_the_label() -> None:
    printer, scanner = line()
    printer.print_label(to_zpl(bag_label("final product 2")), container="final product 1")
    job = printer.print_label(to_zpl(bag_label("final product 1")), container="final product 1")
    assert job.job == 2
    assert check_scan(bag_label("final product 1"), scanner.scan("final product 1")).matches


def test_symbol_off_the_label_is_cut_and_unreadable(caplog: pytest.LogCaptureFixture) -> None:
    label = bag_label("final product 1")
    moved = to_zpl(label).replace("^FO600,20^BXN", "^FO780,20^BXN")
    image = render_label(moved)
    assert "runs off" in caplog.text
    assert [s for s, _ in decode_label(image.pixels)] == ["code128", "code128"]


def test_scanning_an_unlabelled_container_names_the_labelled_ones() -> None:
    printer, scanner = line()
    printer.print_label(to_zpl(bag_label("final product 1")), container="final product 1")
    with pytest.raises(
        InstrumentError, match=r"no label printed for 'QC sample'.*'final product 1'"
    ):
        scanner.scan("QC sample")


def test_printer_refuses_zpl_outside_the_subset_and_keeps_no_label() -> None:
    printer, scanner = line()
    with pytest.raises(ZplError, match="not a command"):
        printer.print_label("^XA^PW10^LL10^FO0,0^GB5,5,1^FS^XZ", container="bag")
    with pytest.raises(InstrumentError, match="labelled: none"):
        scanner.scan("bag")


def test_symbol_that_cannot_be_encoded_is_refused() -> None:
    zpl = f"^XA^PW400^LL200^FO0,0^BY2^BCN,50,N,N,N^FD{'7' * 300}^FS^XZ"  # Code 128 holds 256
    with pytest.raises(ValueError, match=r"cannot encode .*too long"):
        render_label(zpl)


def test_blank_label_decodes_nothing() -> None:
    assert decode_label(render_label("^XA^PW100^LL100^XZ").pixels) == ()
