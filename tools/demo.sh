#!/usr/bin/env bash
# The whole main job on embedded data, on the CPU: pretrain Matrix-SSL on scikit-learn's digits,
# export the backbone, fine-tune Mask R-CNN (ResNet-18 FPN) on generated COCO-format shapes, and
# print the results. Everything goes under a fresh directory (default runs/demo-<timestamp>).
#
#   tools/demo.sh [OUT_DIR]      (make demo calls this after tools/install.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-runs/demo-$(date +%Y%m%d-%H%M%S)}"
if [[ -e "$OUT" ]]; then
    echo "demo: $OUT already exists; pass a new directory (make demo DEMO_DIR=...)" >&2
    exit 2
fi
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY=python
EPOCHS="${DEMO_EPOCHS:-10}"

echo "== 1/3 pretrain Matrix-SSL (ResNet-18) on digits, $EPOCHS epochs -> $OUT/pretrain"
"$PY" -m lightly_matrix pretrain --method matrix_ssl --data digits --backbone resnet18 \
    --epochs "$EPOCHS" --batch-size 64 --out "$OUT/pretrain"

echo "== 2/3 export the online backbone for mmdet -> $OUT/backbone.pth"
"$PY" -m lightly_matrix export "$OUT/pretrain/last.ckpt" --out "$OUT/backbone.pth"

echo "== 3/3 Mask R-CNN transfer on generated COCO shapes -> $OUT/transfer"
bash tools/transfer_coco.sh "$OUT/backbone.pth" --demo --work-dir "$OUT/transfer"

echo
echo "== results ($OUT)"
"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

from lightly_matrix.transfer import markdown_table

out = Path(sys.argv[1])
print(f"pretraining metrics: {out / 'pretrain' / 'metrics.json'} (table printed above)")
results = json.loads((out / "transfer" / "results.json").read_text())
print("Mask R-CNN R18-FPN on generated COCO shapes (val split):")
print(markdown_table([results["markdown_row"]]))
PY
