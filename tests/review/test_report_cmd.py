"""``cellauto report RUN_ID --out DIR``: the files it writes, and each refusal (exit 2,
naming the fix, nothing written)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cellauto.cli import main
from tests.raw_sql import nothing_written

from .conftest import Batch


def _report(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main(["report", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_writes_html_only_with_no_pdf(
    batch: Batch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "new" / "folder"
    code, out, err = _report(
        capsys,
        batch.run_id[:8],
        "--out",
        out_dir,
        "--db",
        batch.path,
        "--no-pdf",
        "--generated-at",
        "2026-02-01T09:00:00+01:00",
    )
    assert code == 0, err
    assert out.split() == [str(out_dir / "batch-record.html")]
    assert sorted(p.name for p in out_dir.iterdir()) == ["batch-record.html"]
    assert "2026-02-01 08:00:00 UTC" in (out_dir / "batch-record.html").read_text("utf-8")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown run", "no run id starts with 'ffff'"),
        ("out is a file", "is a file, not a folder"),
        ("no zone", "has no time zone"),
        ("not a time", "is not an ISO 8601 time"),
    ],
)
def test_refusals(
    batch: Batch, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, expected: str
) -> None:
    out_dir = tmp_path / "out"
    args: list[object] = [batch.run_id, "--out", out_dir, "--db", batch.path, "--no-pdf"]
    if case == "unknown run":
        args[0] = "ffff"
    elif case == "out is a file":
        out_dir.write_text("a file")
    elif case == "no zone":
        args += ["--generated-at", "2026-02-01T09:00:00"]
    else:
        args += ["--generated-at", "yesterday"]
    if case in ("no zone", "not a time"):
        with pytest.raises(SystemExit) as exited:
            _report(capsys, *args)
        code, err = int(str(exited.value.code)), capsys.readouterr().err
    else:
        code, _, err = _report(capsys, *args)
    assert code == 2
    assert expected in err
    assert not out_dir.is_dir()


def test_without_the_report_extra_it_names_the_install(
    batch: Batch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name in ("matplotlib", "reportlab") else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    out_dir = tmp_path / "out"
    code, _, err = _report(capsys, batch.run_id, "--out", out_dir, "--db", batch.path)
    assert code == 2
    assert "matplotlib and reportlab" in err and 'pip install "cellauto[report]"' in err
    assert nothing_written(out_dir)
