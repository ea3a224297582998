#!/usr/bin/env bash
# Install lightly-matrix from its wheel into fresh virtual environments and use it from a
# directory outside the checkout, as a user would (CI runs this through
# tests/test_install_outside.py, part of `make test`).
#
#   tools/check_install_outside.sh [WORK_DIR]      (default: a new temporary directory, removed
#                                                   afterwards unless KEEP=1)
#
#   1. wheel: `pip wheel --no-deps` of a copy of the sources (the checkout gets no build/ folder);
#   2. core: a new venv (no --system-site-packages) with only the wheel, pinned by
#      requirements.lock: no mmcv, mmdet or mmengine. Losses and heads work, a 1-epoch digits
#      pretraining and `export` run, and `transfer` fails with one line naming the [mmdet] extra;
#   3. [mmdet]: the extra added to the same venv (mmcv from the wheel tools/install.sh compiled
#      and cached, so nothing is compiled here). `transfer` finds its config in the installed
#      package and writes results.json (2 iterations on tiny generated COCO data);
#   4. stock mmdet: mmdet's own tools/train.py (shipped in the mmdet wheel) trains 2 iterations of
#      a config written by `lightly-matrix configs NAME --out FILE`, the export given only with
#      --cfg-options ...init_cfg.checkpoint=FILE; the saved detector must hold exactly the
#      exported backbone (and res5, the C4 shared head) weights (lr 0, frozen BN statistics).
#
# Needs: python3.11 (PYTHON=...), the package registries (pip's index), and the mmcv wheel that
# tools/install.sh caches in $LIGHTLY_MATRIX_CACHE (default ~/.cache/lightly_matrix).
#
# torch: unpacking torch and its CUDA libraries (~5 GB) into a new venv takes minutes on two
# cores, so the new venv is first seeded with hard links to the files of torch, torchvision and
# their dependencies from an installed environment (SEED_PYTHON, default the checkout's .venv,
# used when it holds the versions requirements.lock pins); pip then finds them installed and
# installs everything else itself, from this package's metadata. SEED_PYTHON= (empty), or no
# usable seed, installs torch with pip as well, like tools/install.sh (minutes more).
# Prints one "[outside] ..." line per step with its time; exits non-zero at the first failure.
set -euo pipefail
unset PYTHONPATH PYTHONHOME  # nothing of the checkout may leak in

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY_BIN="${PYTHON:-$(command -v python3.11 || command -v python3)}"
CACHE="${LIGHTLY_MATRIX_CACHE:-$HOME/.cache/lightly_matrix}"
LOCK="$ROOT/requirements.lock"
C4_CONFIG="${C4_CONFIG:-mask-rcnn_r18-c4_ms-1x_coco}"
DEMO_CONFIG=mask-rcnn_r18_fpn_demo_coco-shapes
SEED_PYTHON="${SEED_PYTHON-$ROOT/.venv/bin/python}"
[[ -z "$SEED_PYTHON" || -x "$SEED_PYTHON" ]] || SEED_PYTHON=""

T0=$SECONDS
log() { printf '[outside] %4ds %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf '[outside] FAILED: %s\n' "$*" >&2; exit 1; }
trap 'die "line $LINENO: $BASH_COMMAND"' ERR

if [[ -n "${1:-}" ]]; then
    W="$(mkdir -p "$1" && cd "$1" && pwd)"
    [[ -z "$(ls -A "$W")" ]] || die "$W is not empty; pass a new or empty directory"
else
    W="$(mktemp -d "${TMPDIR:-/tmp}/lightly-matrix-outside.XXXXXX")"
    [[ -n "${KEEP:-}" ]] || trap 'rm -rf "$W"' EXIT
fi
log "work dir $W"

# --- 1. the wheel, built from a copy of the sources -------------------------------------------
mkdir -p "$W/src" "$W/dist" "$W/run"
cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$W/src/"
[[ -f "$ROOT/LICENSE" ]] && cp "$ROOT/LICENSE" "$W/src/"
for d in lightly_matrix mmdet_configs; do
    (cd "$ROOT" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - "$d") | tar -xf - -C "$W/src"
done
"$PY_BIN" -m venv "$W/venv"
PY="$W/venv/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)
if [[ -n "$SEED_PYTHON" && -x "$SEED_PYTHON" ]]; then
    # The seed environment has the build backend (setuptools, wheel) already: no download.
    "$SEED_PYTHON" -m pip --disable-pip-version-check -q wheel --no-deps --no-build-isolation \
        -w "$W/dist" "$W/src" >"$W/wheel.log" 2>&1
else
    "${PIP[@]}" wheel --no-deps -w "$W/dist" "$W/src" >"$W/wheel.log" 2>&1
fi || { tail -n 30 "$W/wheel.log" >&2; die "pip wheel failed"; }
WHEEL="$(ls "$W"/dist/lightly_matrix-*.whl)"
log "built $(basename "$WHEEL")"

# --- torch: hard links from the seed environment (see above) ---------------------------------
if [[ -n "$SEED_PYTHON" ]]; then
    SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    seeded=0
    "$SEED_PYTHON" - "$SITE" "$LOCK" <<'PY' || seeded=$?
import importlib.metadata as md
import os
import re
import shutil
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

site, lock = Path(sys.argv[1]), Path(sys.argv[2])
pins = dict(
    (canonicalize_name(n), v)
    for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock.read_text(), re.MULTILINE)
)
# torch, torchvision and everything they require here (markers evaluated, requested extras
# followed: torch needs cuda-toolkit[cublas,cufft,...]).
todo, closure, seen = [("torch", ""), ("torchvision", "")], {}, set()
while todo:
    name, extra = todo.pop()
    name = canonicalize_name(name)
    if (name, extra) in seen:
        continue
    seen.add((name, extra))
    dist = md.distribution(name)
    closure[name] = dist
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": extra}):
            todo += [(req.name, "")] + [(req.name, e) for e in req.extras]
differ = [
    f"{n} {d.version} (lock: {pins[n]})"
    for n, d in closure.items()
    if n in pins and pins[n].split("+")[0] != d.version.split("+")[0]
]
if differ:
    print(f"[outside] not seeding, the seed differs from the lock: {', '.join(differ)}", file=sys.stderr)
    sys.exit(3)
count = 0
for dist in closure.values():
    base = Path(dist.locate_file("")).resolve()
    for rel in dist.files or []:
        src = Path(dist.locate_file(rel)).resolve()
        if base not in src.parents or not src.is_file():
            continue  # console scripts in bin/ (they name the seed's python) and the like
        dst = site / src.relative_to(base)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:  # another file system (e.g. a tmpfs /tmp): copy instead
            shutil.copy2(src, dst)
        count += 1
print(f"[outside] seeded {len(closure)} distributions ({count} files, hard links): "
      + ", ".join(sorted(closure)), file=sys.stderr)
PY
    [[ $seeded -eq 0 || $seeded -eq 3 ]] || die "could not seed torch from $SEED_PYTHON"
else
    log "no seed environment: pip installs torch too"
fi

# --- 2. core only ---------------------------------------------------------------------------
"${PIP[@]}" install -c "$LOCK" "$WHEEL" 2>&1 | grep -v '^WARNING: Location' >&2 || true
"$PY" -c 'import lightly_matrix' 2>/dev/null || die "the core install failed (see pip's output above)"
"$PY" -m pip --disable-pip-version-check check >&2 || die "pip check: broken requirements in the core venv"
log "core installed (torch $("$PY" -c 'import torch; print(torch.__version__)'))"
cd "$W/run"  # nothing of the checkout on sys.path from here on
"$PY" - "$ROOT" <<'PY'
import importlib.util, sys
from pathlib import Path

import lightly_matrix
import torch
from lightly_matrix.loss import CorInfoMaxLoss, MatrixEntropyLoss, MatrixSSLLoss, UMAELoss
from lightly_matrix.models.modules import MatrixSSLPredictionHead, MatrixSSLProjectionHead

root = Path(sys.argv[1])
assert root not in Path(lightly_matrix.__file__).parents, f"imported from the checkout: {lightly_matrix.__file__}"
missing = [m for m in ("mmcv", "mmdet", "mmengine") if importlib.util.find_spec(m) is not None]
assert not missing, f"the core install pulled in {missing}"
torch.manual_seed(0)
head = MatrixSSLProjectionHead(16, 32, 8)
z1, z2 = head(torch.randn(12, 16)), head(torch.randn(12, 16))
p = MatrixSSLPredictionHead(8, 16, 8)(z1)
losses = [MatrixSSLLoss()(p, z2), CorInfoMaxLoss(dim=8)(z1, z2), MatrixEntropyLoss()(z1), UMAELoss()(z1)]
assert all(torch.isfinite(x) for x in losses), losses
sum(losses).backward()
print(f"[outside] core ok: {Path(lightly_matrix.__file__).parent}", file=sys.stderr)
PY
LM="$W/venv/bin/lightly-matrix"
"$LM" --version >/dev/null
"$LM" pretrain --method matrix_ssl --data digits --backbone resnet18 --epochs 1 --batch-size 32 \
    --limit-train-batches 2 --no-eval --no-progress --num-workers 0 --out pretrain >pretrain.log 2>&1 \
    || { tail -n 30 pretrain.log >&2; die "pretrain failed"; }
[[ -f pretrain/last.ckpt ]] || die "pretrain wrote no last.ckpt"
grep -q 'lightly-matrix\[report\]' pretrain.log || die "no one-line report hint without matplotlib"
log "core: 1-epoch digits pretraining -> pretrain/last.ckpt"
"$LM" export pretrain/last.ckpt --out backbone.pth >export.log 2>&1 \
    || { cat export.log >&2; die "export without mmdet failed"; }
log "core: export without mmdet -> backbone.pth"
code=0
"$LM" transfer --demo >transfer.out 2>transfer.err || code=$?
[[ $code -eq 2 ]] || { cat transfer.err >&2; die "transfer without mmdet exited $code, not 2"; }
[[ "$(wc -l <transfer.err)" -eq 1 ]] || { cat transfer.err >&2; die "transfer's error is not one line"; }
grep -q 'lightly-matrix\[mmdet\]' transfer.err || die "transfer's error names no [mmdet] extra: $(cat transfer.err)"
log "core: transfer refuses in one line: $(cat transfer.err)"

# --- 3. the [mmdet] extra -------------------------------------------------------------------
TORCH_TAG="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
MMCV_DIR="$(ls -d "$CACHE"/wheels/mmcv-*-torch"$TORCH_TAG"-cpu 2>/dev/null | head -n 1 || true)"
[[ -n "$MMCV_DIR" ]] && ls "$MMCV_DIR"/mmcv-*.whl >/dev/null 2>&1 \
    || die "no cached mmcv wheel for torch $TORCH_TAG in $CACHE/wheels; run tools/install.sh first (it compiles mmcv once)"
"${PIP[@]}" install -c "$LOCK" --only-binary mmcv --find-links "$MMCV_DIR" "$WHEEL[mmdet]" 2>&1 \
    | grep -v '^WARNING: Location' >&2 || true
"$PY" -c 'from mmcv.ops import nms, RoIAlign; import mmdet, mmengine' \
    || die "the [mmdet] extra did not install (see pip's output above)"
log "[mmdet] extra installed (mmcv from $MMCV_DIR)"
"$PY" -c 'from lightly_matrix.data.coco_shapes import make_coco_shapes as m; m("shapes", num_train=4, num_val=2, image_size=64)'
"$LM" transfer backbone.pth --config "$DEMO_CONFIG" --coco-root shapes --work-dir transfer \
    --max-iters 2 --batch-size 2 --cfg-options default_hooks.visualization.draw=False \
    >transfer.log 2>&1 || { tail -n 40 transfer.log >&2; die "transfer with the extra failed"; }
"$PY" - <<'PY'
import json, sys
results = json.load(open("transfer/results.json"))
assert set(results["bbox"]) >= {"mAP", "AP50"} and set(results["segm"]) >= {"mAP", "AP50"}, results
assert results["schedule"] == {"type": "IterBasedTrainLoop", "max_iters": 2}, results["schedule"]
print(f"[outside] transfer wrote results.json: {results['markdown_row']}", file=sys.stderr)
PY
log "[mmdet]: transfer found $DEMO_CONFIG in the installed package"

# --- 4. mmdet's own tools/train.py ----------------------------------------------------------
TRAIN_PY="$("$PY" -c 'import mmdet, pathlib; print(pathlib.Path(mmdet.__file__).parent / ".mim" / "tools" / "train.py")')"
[[ -f "$TRAIN_PY" ]] || die "mmdet ships no $TRAIN_PY"
"$LM" configs "$C4_CONFIG" --out c4.py >/dev/null
CKPT="$W/run/backbone.pth"
SHAPES="$W/run/shapes/"
# Only the two init_cfg checkpoints load weights; the rest shrinks the run: the tiny data (and its
# class names) at a small scale, 2 iterations, no validation, and lr 0 with frozen BN statistics
# (no PreciseBN pass either), so that the saved detector must still hold the exported weights bit
# for bit. (mmdet's RoI ResLayer freezes only nn.BatchNorm2d under norm_eval, not the SyncBN ->
# _BatchNormXd that mmengine swaps in without distributed training: plain BN in the shared head.)
"$PY" "$TRAIN_PY" c4.py --work-dir stock --cfg-options \
    "model.backbone.init_cfg.checkpoint=$CKPT" \
    "model.roi_head.shared_head.init_cfg.checkpoint=$CKPT" \
    "train_dataloader.dataset.data_root=$SHAPES" \
    "train_dataloader.dataset.metainfo.classes=(rectangle,ellipse,triangle)" \
    "train_dataloader.dataset.pipeline.2.scales=[(128,64)]" \
    train_dataloader.batch_size=2 train_dataloader.num_workers=0 \
    train_dataloader.persistent_workers=False \
    train_cfg._delete_=True train_cfg.type=IterBasedTrainLoop train_cfg.max_iters=2 \
    default_hooks.checkpoint.by_epoch=False default_hooks.checkpoint.interval=2 \
    val_cfg=None val_dataloader=None val_evaluator=None \
    test_cfg=None test_dataloader=None test_evaluator=None \
    optim_wrapper.optimizer.lr=0.0 "custom_hooks=[]" \
    model.backbone.norm_eval=True model.roi_head.shared_head.norm_eval=True \
    model.roi_head.shared_head.norm_cfg.type=BN \
    >stock.log 2>&1 || { tail -n 40 stock.log >&2; die "mmdet's tools/train.py failed"; }
"$PY" - <<'PY'
import sys
from pathlib import Path

import torch

export = torch.load("backbone.pth", map_location="cpu", weights_only=True)["state_dict"]
(saved,) = Path("stock").glob("iter_2.pth")
detector = torch.load(saved, map_location="cpu", weights_only=False)["state_dict"]
# The exported ResNet's layer4 is res5, which the C4 config keeps in the RoI shared head.
where = {k: k if k in detector else k.replace("backbone.", "roi_head.shared_head.", 1) for k in export}
missing = [k for k, d in where.items() if d not in detector]
assert not missing, f"exported tensors absent from the detector: {missing[:5]}"
differ = [k for k, d in where.items() if not torch.equal(export[k], detector[d])]
assert not differ, f"detector tensors differ from the export: {differ[:5]}"
res5 = sum(d.startswith("roi_head.shared_head.") for d in where.values())
assert res5 > 0, "no res5 weights were compared"
print(f"[outside] stock train.py: {len(export)} exported tensors equal in {saved} "
      f"({res5} of them res5 in the shared head)", file=sys.stderr)
PY
log "all checks passed"
