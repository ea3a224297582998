#!/usr/bin/env bash
# Fine-tune Mask R-CNN from a pretrained backbone and evaluate on COCO (or the generated demo data).
#
#   tools/transfer_coco.sh CHECKPOINT [--config NAME] [--coco-root DIR] [--gpus N] [--work-dir DIR]
#                          [--max-iters N] [--demo] [... see --help]
#   tools/transfer_coco.sh --demo                       # random-init baseline on coloured shapes
#   tools/transfer_coco.sh runs/x/last.ckpt --demo      # the same from a pretrained backbone
#   tools/transfer_coco.sh runs/x/last.ckpt --coco-root data/coco --gpus 8
#   NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT: multi-node, passed on to torchrun.
#
# A thin wrapper: the logic is the lightly_matrix.transfer package (also `lightly-matrix transfer`),
# which checks every option, data and weights before writing anything, exports the checkpoint, then
# launches torchrun itself for --gpus N > 1 (torchrun --nproc_per_node N -m lightly_matrix.transfer
# ... --launcher pytorch). Configs: `lightly-matrix configs`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="python"
if [[ -x "$ROOT/.venv/bin/python" ]]; then
    PYTHON="$ROOT/.venv/bin/python"
fi
EXTRA=()
[[ -n "${NNODES:-}" ]] && EXTRA+=(--nnodes "$NNODES")
[[ -n "${NODE_RANK:-}" ]] && EXTRA+=(--node-rank "$NODE_RANK")
[[ -n "${MASTER_ADDR:-}" ]] && EXTRA+=(--master-addr "$MASTER_ADDR")
[[ -n "${MASTER_PORT:-}" ]] && EXTRA+=(--master-port "$MASTER_PORT")
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m lightly_matrix.transfer "$@" ${EXTRA[@]+"${EXTRA[@]}"}
