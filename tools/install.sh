#!/usr/bin/env bash
# Install the whole lightly_matrix stack into ./.venv (idempotent).
#
#   tools/install.sh            # create/refresh .venv; seconds when nothing changed
#   FORCE=1 tools/install.sh    # reinstall even if the stamp says it is up to date
#
# What it does (see ../shared/docs/install.md for why each step exists):
#   1. python3.11 -m venv .venv
#   2. torch 2.14.1 + torchvision 0.29.1 (pip takes them from this machine's disk)
#   3. mmcv 2.1.0 with compiled ops: PyPI has only its source, so it is compiled once against the
#      installed torch (C++20 instead of its -std=c++17, no build isolation) into a wheel cache
#      OUTSIDE the checkout ($LIGHTLY_MATRIX_CACHE, default ~/.cache/lightly_matrix) and reused.
#   4. everything else, pinned by requirements.lock, and this package in editable mode with the
#      [dev,mmdet,report] extras (the core alone installs without mmcv; the tests and demo need all).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
CACHE="${LIGHTLY_MATRIX_CACHE:-$HOME/.cache/lightly_matrix}"
PY_BIN="${PYTHON:-$(command -v python3.11 || command -v python3)}"
LOCK="$ROOT/requirements.lock"
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
BUILD_PINS=("setuptools>=77.0.3,<81" ninja wheel)
MMCV_VERSION=2.1.0

log() { printf '[install] %s\n' "$*" >&2; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'die "step failed at line $LINENO (command: $BASH_COMMAND). Fix the cause above and re-run tools/install.sh."' ERR

# The stamp records everything that decides the installed set; unchanged stamp => nothing to do.
stamp_value() {
    cat "$ROOT/pyproject.toml" "$LOCK" "$ROOT/tools/install.sh" 2>/dev/null | sha256sum | cut -d' ' -f1
}
STAMP="$VENV/.lightly_matrix_stamp"
if [[ -z "${FORCE:-}" && -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_value)" ]] \
    && "$VENV/bin/python" -c "import lightly_matrix, mmcv.ops, mmdet, lightly" 2>/dev/null; then
    log "up to date ($VENV); FORCE=1 to reinstall"
    exit 0
fi

"$PY_BIN" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null \
    || die "Python 3.11 is required (found $("$PY_BIN" --version 2>&1) at $PY_BIN); set PYTHON=/path/to/python3.11"

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $PY_BIN"
    "$PY_BIN" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
PYV="$VENV/bin/python"

log "torch and build tools"
"${PIP[@]}" install -q "${TORCH_PINS[@]}" "${BUILD_PINS[@]}" \
    || die "could not install ${TORCH_PINS[*]}; on these machines pip takes them from local disk (do not use uv/poetry)"

# --- mmcv: build once per (torch, cuda variant), cache the wheel outside the checkout -------------
TORCH_TAG="$("$PYV" -c 'import torch; print(torch.__version__.split("+")[0])')"
TORCH_CUDA="$("$PYV" -c 'import torch; print(torch.version.cuda or "")')"
VARIANT=cpu
if [[ -n "$TORCH_CUDA" ]] && command -v nvcc >/dev/null 2>&1 && "$PYV" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    NVCC_CUDA="$(nvcc --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')"
    if [[ "$NVCC_CUDA" == "$TORCH_CUDA" ]]; then
        VARIANT="cu${TORCH_CUDA/./}"
    else
        log "nvcc $NVCC_CUDA does not match torch's CUDA $TORCH_CUDA: building mmcv's CPU ops only"
    fi
fi
WHEELS="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_TAG-$VARIANT"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    log "compiling mmcv $MMCV_VERSION ($VARIANT ops) into $WHEELS: ~9 min on 2 cores, once"
    WORK="$(mktemp -d)"
    "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary mmcv "mmcv==$MMCV_VERSION" -d "$WORK" \
        || die "could not download the mmcv $MMCV_VERSION source from PyPI"
    tar -xzf "$WORK"/mmcv-"$MMCV_VERSION".tar.gz -C "$WORK"
    SRC="$WORK/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes C++17 (not overridable by CFLAGS).
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    grep -q 'c++20' "$SRC/setup.py" || die "mmcv setup.py patch did not apply"
    if [[ "$VARIANT" == cpu ]]; then
        export CUDA_VISIBLE_DEVICES="" FORCE_CUDA=0
    else
        export FORCE_CUDA=1
    fi
    # CFLAGS replaces Python's default flags: pass the whole optimised set (-O3, no debug info).
    (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        CFLAGS="-O3 -g0 -DNDEBUG -fwrapv" CXXFLAGS="-O3 -g0 -DNDEBUG -fwrapv" \
        "${PIP[@]}" wheel -q --no-build-isolation --no-deps . -w "$WHEELS" > "$WORK/build.log" 2>&1) \
        || { tail -n 40 "$WORK/build.log" >&2; die "mmcv compile failed (full log: $WORK/build.log)"; }
    unset CUDA_VISIBLE_DEVICES FORCE_CUDA
    rm -rf "$SRC"
    log "mmcv wheel cached: $(ls "$WHEELS")"
else
    log "mmcv wheel from cache: $(ls "$WHEELS")"
fi
# Always --only-binary: a plain `pip install mmcv` would fall back to the unpatched source and fail.
"${PIP[@]}" install -q --only-binary mmcv --find-links "$WHEELS" "mmcv==$MMCV_VERSION"

log "the rest of the stack and lightly_matrix (editable, [dev,mmdet,report])"
CONSTRAINTS=()
[[ -f "$LOCK" ]] && CONSTRAINTS=(-c "$LOCK")
"${PIP[@]}" install -q --only-binary mmcv --find-links "$WHEELS" "${CONSTRAINTS[@]}" -e "$ROOT[dev,mmdet,report,docs]" \
    || die "pip could not install the pinned stack; see the resolver message above"

"$PYV" - <<'PY' || die "the installed stack does not import"
import mmcv, mmdet, mmengine, lightly, torch, timm, pytorch_lightning, pycocotools
from mmcv.ops import nms, RoIAlign  # compiled ops
import lightly_matrix
print(f"[install] ok: torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, "
      f"mmengine {mmengine.__version__}, lightly {lightly.__version__}, timm {timm.__version__}, "
      f"lightning {pytorch_lightning.__version__}, lightly_matrix {lightly_matrix.__version__}")
PY
stamp_value > "$STAMP"
log "done"
