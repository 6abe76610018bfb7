"""Review and release: deviations as a workflow, QC results, QA's disposition, the
batch record report, trends across batches and exports for analysis.

The acts (:mod:`~cellauto.review.deviations`, :mod:`~cellauto.review.qc`,
:mod:`~cellauto.review.disposition`) are site records, signed and journaled as every act
of a person; their projections (:mod:`~cellauto.site.projection_review`) are what the reads
(:mod:`~cellauto.review.read`) and ``cellauto verify`` compare.
"""
