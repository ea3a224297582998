"""Fine-tune Mask R-CNN from a pretrained backbone, evaluate on COCO: ``lightly-matrix transfer``.

    lightly-matrix transfer runs/matrix_ssl/last.ckpt --coco-root data/coco --gpus 8
    lightly-matrix transfer --demo                 # random-init baseline on generated shapes

It exports the checkpoint (ours, Lightly/torchvision ResNets, timm ViTs, or an exported file),
picks the ``--protocol``'s config for its architecture (default ``matrix_ssl``: Mask R-CNN R50-C4
1x, MoCo's recipe) unless ``--config`` names one, checks the weights against that config and the
data (:mod:`~lightly_matrix.transfer.coco_check`), trains and tests with mmengine's ``Runner``,
and writes ``WORK_DIR/results.json`` with a Markdown row beside the protocol's published numbers.
"""

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
from lightly_matrix.transfer.launch import add_arguments, run
from lightly_matrix.transfer.results import markdown_row, markdown_table, summarise

# fmt: off
__all__ = [
    "DEFAULT_CONFIGS", "DEFAULT_PROTOCOL", "DEMO_CONFIG", "PROTOCOLS", "add_arguments",
    "available_configs", "config_dir", "config_protocol", "default_config",
    "markdown_row", "markdown_table", "resolve_config", "run", "summarise",
]
# fmt: on
