"""The report's figures, drawn with matplotlib (Agg; imported only here, lazily): SVG
inline in the HTML, PNG at 150 dpi in the PDF.

Output is deterministic: ``svg.hashsalt`` is fixed per figure, the SVG carries no date
and the PNG no software tag, and text is DejaVu Sans (shipped with matplotlib). Every
plot marks the run's deviations (a red line labelled with the id, whose SVG group has the
id ``marker-<DEV id>-<figure>``), alarms (orange lines), held intervals and connection
gaps (grey bands) that fall in its time range. An empty series says so on the plot.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cellauto.review.report.model import Series

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FIGURES", "PlotOutput", "draw_all", "figure_png", "figure_svg"]

_DAY_S = 86400.0
_MIN_S = 60.0
_COLORS = {"deviation": "#c0392b", "alarm": "#e67e22"}


@dataclass(frozen=True)
class PlotOutput:
    """One figure, rendered: its id, title, caption, inline SVG and PNG bytes."""

    key: str
    title: str
    caption: str
    svg: str
    png: bytes


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {
            "font.family": "DejaVu Sans",
            "font.size": 8,
            "svg.fonttype": "path",
            "path.simplify": True,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )
    from matplotlib import pyplot

    return pyplot


def _new(rows: int = 1) -> tuple[Figure, list[Axes]]:
    plt = _pyplot()
    fig, axes = plt.subplots(rows, 1, figsize=(7.0, 2.6 * rows), sharex=True, squeeze=False)
    return fig, [row[0] for row in axes]


def _mark(axes: Sequence[Axes], series: Series, key: str, origin: float, unit: float) -> None:
    """Draw the markers that fall in the axes' x range (x = (t - origin) / unit)."""
    low, high = axes[0].get_xlim()
    for marker in series.markers:
        start = (marker.start_s - origin) / unit
        end = None if marker.end_s is None else (marker.end_s - origin) / unit
        if (end if end is not None else start) < low or start > high:
            continue
        for n, ax in enumerate(axes):
            if marker.kind in ("held", "gap"):
                band = ax.axvspan(start, end if end is not None else start, color="0.6", alpha=0.3)
                band.set_gid(f"{marker.kind}-{key}-{n}-{start:.4f}")
                continue
            line = ax.axvline(start, color=_COLORS[marker.kind], linewidth=1.2)
            if marker.kind == "deviation" and n == 0:
                line.set_gid(f"marker-{marker.label}-{key}")
                ax.annotate(
                    marker.label,
                    (start, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -10),
                    textcoords="offset points",
                    color=_COLORS["deviation"],
                    fontsize=7,
                )
        axes[0].set_xlim(low, high)


def _limits(ax: Axes, limits: tuple[float | None, float | None] | None, band: bool = False) -> None:
    if limits is None:
        return
    low, high = limits
    if band and low is not None and high is not None:
        ax.axhspan(low, high, color="#2e86c1", alpha=0.08)
    for value in (low, high):
        if value is not None:
            ax.axhline(value, color="#2e86c1", linestyle=":", linewidth=1.0)


def _empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} recorded", ha="center", va="center", transform=ax.transAxes)


def _days(ts: Sequence[float], origin: float) -> list[float]:
    return [(t - origin) / _DAY_S for t in ts]


def _growth(s: Series) -> Figure:
    fig, (ax,) = _new()
    if not s.counts_t:
        _empty(ax, "culture cell counts")
        return fig
    x = _days(s.counts_t, s.start_s)
    ax.plot(x, [v / 1e6 for v in s.viable_cells_per_ml], "o-", color="#1f618d", markersize=3)
    ax.set_ylabel("viable cells (1e6/mL)")
    right = ax.twinx()
    right.plot(x, s.viability_pct, "s--", color="#117a65", markersize=3)
    right.set_ylabel("viability (%)")
    _limits(right, s.specs.get("viability_pct"))
    ax.set_xlabel("days since the run started")
    _mark([ax], s, "growth", s.start_s, _DAY_S)
    return fig


def _metabolites(s: Series) -> Figure:
    fig, (ax,) = _new()
    if not s.culture_t:
        _empty(ax, "culture readings")
        return fig
    x = _days(s.culture_t, s.start_s)
    ax.plot(x, s.glucose_mmol_per_l, color="#1f618d", linewidth=1, label="glucose")
    ax.plot(x, s.lactate_mmol_per_l, color="#a04000", linewidth=1, label="lactate")
    ax.set_ylabel("mmol/L")
    ax.legend(loc="upper right")
    _limits(ax, s.specs.get("glucose"))
    ax.set_xlabel("days since the run started")
    _mark([ax], s, "metabolites", s.start_s, _DAY_S)
    return fig


def _conditions(s: Series) -> Figure:
    fig, axes = _new(3)
    if not s.culture_t:
        _empty(axes[0], "culture readings")
        return fig
    x = _days(s.culture_t, s.start_s)
    sx = _days(s.setpoints_t, s.start_s)
    rows = (
        ("temperature (°C)", s.temperature_c, s.setpoint_temperature_c, "temperature_c"),
        ("pH", s.ph, s.setpoint_ph, "ph"),
        ("DO (%)", s.dissolved_oxygen_pct, s.setpoint_do_pct, "dissolved_oxygen_pct"),
    )
    for ax, (label, values, setpoints, quantity) in zip(axes, rows, strict=True):
        ax.plot(x, values, color="#1f618d", linewidth=0.8)
        if sx:
            ax.step(
                [*sx, x[-1]],
                [*setpoints, setpoints[-1]],
                where="post",
                color="0.3",
                linestyle="--",
                linewidth=0.8,
            )
        _limits(ax, s.specs.get(quantity), band=True)
        ax.set_ylabel(label)
    axes[-1].set_xlabel("days since the run started")
    _mark(axes, s, "conditions", s.start_s, _DAY_S)
    return fig


def _freeze(s: Series) -> Figure:
    fig, (ax,) = _new()
    if not s.freeze_t:
        _empty(ax, "freezer temperatures")
        return fig
    origin = s.profile_t[0] if s.profile_t else s.freeze_t[0]
    x = [(t - origin) / _MIN_S for t in s.freeze_t]
    ax.plot(x, s.chamber_c, color="#1f618d", linewidth=1, label="chamber")
    ax.plot(x, s.sample_c, color="#a04000", linewidth=1, label="sample")
    if s.profile_t:
        px = [(t - origin) / _MIN_S for t in s.profile_t]
        ax.plot(px, s.profile_c, color="0.3", linestyle="--", linewidth=1, label="profile")
    if s.phase_change_s is not None:
        ax.axvline((s.phase_change_s - origin) / _MIN_S, color="#7d3c98", linestyle=":")
    ax.set_ylabel("°C")
    ax.set_xlabel("minutes since the profile started")
    ax.legend(loc="upper right")
    _mark([ax], s, "freeze", origin, _MIN_S)
    return fig


def _storage(s: Series) -> Figure:
    fig, (ax,) = _new()
    if not s.storage_t:
        _empty(ax, "storage temperature")
        return fig
    x = _days(s.storage_t, s.start_s)
    ax.plot(x, s.storage_c, "o-", color="#1f618d", markersize=3)
    if len(x) == 1:
        ax.set_xlim(x[0] - 0.1, x[0] + 0.1)
    _limits(ax, s.specs.get("storage_c"))
    ax.set_ylabel("°C")
    ax.set_xlabel("days since the run started")
    _mark([ax], s, "storage", s.start_s, _DAY_S)
    return fig


FIGURES: tuple[tuple[str, str, str, Callable[[Series], Figure]], ...] = (
    (
        "growth",
        "Viable cell density and viability",
        "cell counter counts of samples the bioreactor drew; dotted: the viability limit",
        _growth,
    ),
    (
        "metabolites",
        "Glucose and lactate",
        "bioreactor process values; dotted: the glucose limit",
        _metabolites,
    ),
    (
        "conditions",
        "Temperature, pH and dissolved oxygen",
        "bioreactor process values; dashed: setpoints; shaded: the check's specification",
        _conditions,
    ),
    (
        "freeze",
        "Freeze curve against its profile",
        "controlled-rate freezer chamber and sample temperatures; dashed: the loaded profile;"
        " purple: the phase change",
        _freeze,
    ),
    (
        "storage",
        "Storage temperature",
        "LN2 storage conditions; dotted: the storage limit",
        _storage,
    ),
)
"""Each figure: (id, title, caption, how it is drawn)."""

_ID = re.compile(r'\b(id="|xlink:href="#|href="#|url\(#)(?!marker-)')


def figure_svg(fig: Figure, key: str) -> str:
    """The figure as SVG for inlining: no XML prolog, no date, and its ids prefixed with
    ``key`` so that several figures in one page never share one (marker ids excepted)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"cellauto-{key}"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    return _ID.sub(lambda m: f"{m.group(1)}{key}-", text)


def figure_png(fig: Figure, dpi: int = 150) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def draw_all(series: Series, *, svg: bool = True, png: bool = True) -> list[PlotOutput]:
    """Every figure of the report, rendered as asked."""
    plt = _pyplot()
    out: list[PlotOutput] = []
    for key, title, caption, draw in FIGURES:
        fig = draw(series)
        fig.tight_layout()
        try:
            out.append(
                PlotOutput(
                    key=key,
                    title=title,
                    caption=caption,
                    svg=figure_svg(fig, key) if svg else "",
                    png=figure_png(fig) if png else b"",
                )
            )
        finally:
            plt.close(fig)
    return out
