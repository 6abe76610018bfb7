"""QA: deviations, QC results, the batch record and the release decision.

Each family has its module (:mod:`.qa_deviations`, :mod:`.qa_qc`, :mod:`.qa_report`,
:mod:`.qa_release`); this one gathers their routes for the route table.
"""

from __future__ import annotations

from cellauto.web.routes import qa_deviations, qa_qc, qa_release, qa_report
from cellauto.web.routes_table import RouteSpec

__all__ = ["ROUTES"]

ROUTES: tuple[RouteSpec, ...] = (
    *qa_deviations.ROUTES,
    *qa_qc.ROUTES,
    *qa_report.ROUTES,
    *qa_release.ROUTES,
)
