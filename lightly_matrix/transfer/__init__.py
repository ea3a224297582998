"""Fine-tune Mask R-CNN from a pretrained backbone, evaluate on COCO: ``lightly-matrix transfer``.

One command runs the whole transfer protocol with mmengine's ``Runner``::

    lightly-matrix transfer runs/matrix_ssl/last.ckpt --coco-root data/coco --gpus 8
    lightly-matrix transfer --demo                 # random-init baseline on generated shapes
    tools/transfer_coco.sh runs/matrix_ssl/last.ckpt --demo

It exports the checkpoint (our Lightning checkpoints, Lightly/torchvision ResNets, timm ViTs, or
a file already exported), picks the config of the ``--protocol`` (default ``matrix_ssl``, Mask
R-CNN R50-C4 1x in MoCo's Detectron2 recipe) for the backbone's architecture unless ``--config``
names one, checks the exported weights against that very config, trains, tests, and writes
``WORK_DIR/results.json`` plus a Markdown table row, followed by the published numbers of the same
protocol. Without a checkpoint the backbone is randomly initialised (the baseline row).

Modules: :mod:`~lightly_matrix.transfer.args` (options), :mod:`~lightly_matrix.transfer.configs`
(which config), :mod:`~lightly_matrix.transfer.build` (the run's config),
:mod:`~lightly_matrix.transfer.references` (published numbers beside ours),
:mod:`~lightly_matrix.transfer.checks` (inputs and outputs, checked first),
:mod:`~lightly_matrix.transfer.launch` (export, train, test, torchrun) and
:mod:`~lightly_matrix.transfer.results` (metrics and the table row).
"""

from lightly_matrix.transfer.args import add_arguments, main
from lightly_matrix.transfer.configs import (
    DEFAULT_CONFIGS,
    DEFAULT_PROTOCOL,
    DEMO_CONFIG,
    PROTOCOLS,
    available_configs,
    config_dir,
    config_protocol,
    default_config,
    resolve_config,
)
from lightly_matrix.transfer.launch import run
from lightly_matrix.transfer.results import markdown_row, markdown_table, summarise

__all__ = [
    "DEFAULT_CONFIGS",
    "DEFAULT_PROTOCOL",
    "DEMO_CONFIG",
    "PROTOCOLS",
    "add_arguments",
    "available_configs",
    "config_dir",
    "config_protocol",
    "default_config",
    "main",
    "markdown_row",
    "markdown_table",
    "resolve_config",
    "run",
    "summarise",
]
