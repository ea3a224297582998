"""``lightly-matrix pretrain``: self-supervised pretraining with Lightly and PyTorch Lightning.

Examples::

    lightly-matrix pretrain --method matrix_ssl --data digits --out runs/demo
    lightly-matrix pretrain --method corinfomax --data /data/cifar10/train --preset cifar10_r18 \
        --devices 4 --out runs/cim
    lightly-matrix pretrain --resume runs/demo           # continue, e.g. after Ctrl-C or a kill

Settings are resolved as: command-line flags > ``--hp KEY=VALUE`` > ``--preset`` > the module's
defaults (the papers' ImageNet settings). ``--data digits`` uses the ``digits`` preset by default.

Settings are resolved once into a frozen :class:`~lightly_matrix.pretrain.config.RunConfig`
(batch sizes are global); ``--dry-run`` prints it as JSON.

Modules: :mod:`.args` (options and their checks), :mod:`.config` (the resolved run),
:mod:`.describe` (``--dry-run``), :mod:`.data` (data sets), :mod:`.resume` (``--resume``),
:mod:`.checkpoints` (atomic, regular checkpoints), :mod:`.guards` (signals, divergence),
:mod:`.trainer` (the Lightning Trainer), :mod:`.run` (orchestration).
"""

from lightly_matrix.pretrain.args import METHOD_NAMES, PRECISIONS, add_arguments
from lightly_matrix.pretrain.run import run

__all__ = ["METHOD_NAMES", "PRECISIONS", "add_arguments", "run"]
