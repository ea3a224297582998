"""``lightly-matrix report RUN``: one self-contained ``report.html`` of what a run saved.

A pretraining run: probes, the feature spectrum at random init and after training, training
curves. A transfer work dir: COCO AP by size and category, mmdet's losses, detections drawn on
validation images. A folder with ``pretrain/`` and ``transfer/`` (``make demo``) gets both; what a
run did not save is listed as not available.
"""

from lightly_matrix.report.cli import (
    REPORT_FILE,
    add_arguments,
    report_after_run,
    run,
    write_report,
)

__all__ = ["REPORT_FILE", "add_arguments", "report_after_run", "run", "write_report"]
