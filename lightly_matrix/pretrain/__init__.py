"""``lightly-matrix pretrain``: self-supervised pretraining with Lightly and PyTorch Lightning.

Examples::

    lightly-matrix pretrain --method matrix_ssl --data digits --out runs/demo
    lightly-matrix pretrain --method corinfomax --data /data/cifar10/train --preset cifar10_r18 \
        --devices 4 --out runs/cim
    lightly-matrix pretrain --resume runs/demo           # continue, e.g. after Ctrl-C or a kill

Settings resolve once into a frozen :class:`~lightly_matrix.pretrain.config.RunConfig`.
"""

from lightly_matrix.pretrain.args import PRECISIONS, add_arguments
from lightly_matrix.pretrain.run import run

__all__ = ["PRECISIONS", "add_arguments", "run"]
