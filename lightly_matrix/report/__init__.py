"""``lightly-matrix report RUN``: one self-contained ``report.html`` of what a run did.

For a pretraining run: the probe table and chart, the eigenvalue spectrum of the backbone
features at random init and after training (effective rank marked), and the training curves; for
a transfer work dir: COCO AP by size and category, mmdet's loss curves and validation images with
the predictions; a folder holding ``pretrain/`` and ``transfer/`` (``make demo``) gets both. Every
figure is drawn from files the run saved, so the report can be made again at any time, for a
finished, interrupted or older run; what a run did not save is listed as not available.

Modules: :mod:`~lightly_matrix.report.data` (reading), :mod:`~lightly_matrix.report.figures`
(matplotlib), :mod:`~lightly_matrix.report.html` (the page), :mod:`~lightly_matrix.report.pretrain`,
:mod:`~lightly_matrix.report.spectrum` and :mod:`~lightly_matrix.report.transfer` (what is shown),
:mod:`~lightly_matrix.report.cli` (the command, and the hook at the end of runs).
"""

from lightly_matrix.report.cli import (
    REPORT_FILE,
    add_arguments,
    report_after_run,
    run,
    write_report,
)

__all__ = ["REPORT_FILE", "add_arguments", "report_after_run", "run", "write_report"]
