"""`make demo` tells its own story: the transfer's mmdet output goes to a log file and the console
gets one short line per logged step and evaluation (tools/demo.sh, tools/demo_report.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import demo_report  # noqa: E402

MMENGINE_LOG = """\
12/06 01:00:00 - mmengine - INFO - Config:
model = dict(type='MaskRCNN', backbone=dict(type='ResNet', depth=18))
12/06 01:00:01 - mmengine - INFO - Hooks will be executed in the following order:
12/06 01:02:03 - mmengine - INFO - Epoch(train) [1][10/50]  base_lr: 2.0000e-02 lr: 3.8e-03  \
eta: 0:02:10  time: 0.9000  data_time: 0.0100  memory: 0  loss: 2.4567  loss_rpn_cls: 0.6000
12/06 01:05:03 - mmengine - INFO - Iter(train) [ 20/150]  eta: 0:01:00  loss: 1.2000
12/06 01:06:03 - mmengine - INFO - Epoch(val) [3][20/20]    coco/bbox_mAP: 0.1590  \
coco/bbox_mAP_50: 0.4000  coco/segm_mAP: 0.2340  data_time: 0.1000
"""


def test_progress_keeps_steps_and_evaluations_only():
    lines = list(demo_report.progress_lines(MMENGINE_LOG.splitlines()))
    assert lines == [
        "  epoch 1, iter 10/50  loss 2.4567  eta 0:02:10",
        "  iter 20/150  loss 1.2000  eta 0:01:00",
        "  evaluation (val): box AP 15.9, mask AP 23.4",
    ]


def test_progress_from_the_command_line():
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo_report.py"), "--progress"],
        input=MMENGINE_LOG, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "Config" not in run.stdout and run.stdout.count("\n") == 3


def test_demo_sends_the_transfer_output_to_its_log_and_names_it():
    script = (ROOT / "tools" / "demo.sh").read_text()
    subprocess.run(["bash", "-n", str(ROOT / "tools" / "demo.sh")], check=True)
    assert '| tee "$LOG" | "$PY" tools/demo_report.py --progress' in script
    assert 'LOG="$OUT/transfer.log"' in script and 'echo "logs: $LOG' in script
