"""``lightly-matrix report RUN``: one self-contained ``report.html`` of what a run saved."""

from lightly_matrix.report.cli import (
    REPORT_FILE,
    add_arguments,
    report_after_run,
    run,
    write_report,
)

__all__ = ["REPORT_FILE", "add_arguments", "report_after_run", "run", "write_report"]
