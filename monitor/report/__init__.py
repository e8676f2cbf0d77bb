"""Report: a window's stored predictions and the version's reference in, an HTML page out.

The page is Evidently's data-drift and data-summary report over a bounded random
sample of one scoring window's predictions, against a bounded sample of the version's
newest reference revision, under a header that says what was compared. Evidently is
the ``reports`` extra and is imported on first use (the import takes seconds); its
HTML embeds its scripts, styles and fonts, so the page works offline and can be saved
as a file.
"""

from monitor.report.build import DriftReport, build_report

__all__ = ["DriftReport", "build_report"]
