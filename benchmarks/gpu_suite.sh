#!/usr/bin/env bash
# The GPU benchmark suite: install, gpu tests, loss cost, pretraining throughput and stability,
# Mask R-CNN speed. Results (JSON + Markdown, with device/driver/torch/CUDA versions) go to
# benchmarks/results/gpu_suite/; summary.md there holds the goals with pass/fail.
#
#   benchmarks/gpu_suite.sh                 # every stage to completion (30-40 min on one H100)
#   benchmarks/gpu_suite.sh loss            # one stage; each fits a 10-minute call
#   benchmarks/gpu_suite.sh report          # summary.md: the goals with pass/fail, all tables
#   benchmarks/gpu_suite.sh all --dry-run --out /tmp/suite   # CPU-sized check (CI, ~1 min)
#
# Stages: install gpu-tests loss loss-compile pretrain stability mmdet report (all: every one,
# in this order, each re-run until it completes). Each named stage gets one time budget; a stage
# keeps its finished rows, so running it again after a budget stop or a crash continues it.
# Options: --dry-run, --out DIR, --fresh (start over; old files are kept with a timestamp),
#          --budget-s S (seconds per stage call before it stops starting new rows; default 540).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${VENV:-$ROOT/.venv}/bin/python"
ALL=(install gpu-tests loss loss-compile pretrain stability mmdet report)

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { printf 'gpu_suite: error: %s\n' "$*" >&2; exit 2; }

STAGES=()
OPTS=()
DRY=0
BUDGET=540
UNTIL=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --dry-run) DRY=1; OPTS+=(--dry-run) ;;
        --fresh) OPTS+=(--fresh) ;;
        --out|--budget-s)
            [[ $# -ge 2 ]] || die "$1 needs a value"
            [[ $1 == --budget-s ]] && BUDGET="${2%.*}"
            OPTS+=("$1" "$2"); shift ;;
        all) STAGES+=("${ALL[@]}"); OPTS+=(--until-complete); UNTIL=1 ;;
        install|gpu-tests|loss|loss-compile|pretrain|stability|mmdet|report|env) STAGES+=("$1") ;;
        *) die "unknown stage or option '$1' (stages: ${ALL[*]} all; see --help)" ;;
    esac
    shift
done
[[ ${#STAGES[@]} -gt 0 ]] || { STAGES=("${ALL[@]}"); OPTS+=(--until-complete); UNTIL=1; }

install_stage() {
    if [[ $DRY == 1 ]]; then
        [[ -x "$PY" ]] || die "no virtual environment at $PY; run tools/install.sh first"
        echo "[install] dry run: not installing; using $PY"
        return
    fi
    # tools/install.sh builds mmcv's CUDA ops when torch sees a GPU and nvcc matches torch's CUDA
    # (the first time: minutes; the wheel is then cached outside the checkout). It runs detached,
    # so a call stopped by a time limit does not stop it: the next call waits for the same run.
    local state="$ROOT/work_dirs/gpu_suite_install"
    local pid_file="$state/pid" rc_file="$state/rc" log="$state/install.log"
    mkdir -p "$state"
    if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null && [[ ! -f $rc_file ]]; then
        echo "[install] waiting for the install started earlier (log: $log)"
    else
        rm -f "$rc_file"
        setsid nohup bash -c 'bash tools/install.sh; echo $? > "$0"' "$rc_file" \
            > "$log" 2>&1 < /dev/null &
        echo $! > "$pid_file"
        echo "[install] tools/install.sh started (log: $log)"
    fi
    local waited=0
    while [[ ! -f $rc_file ]]; do
        if (( waited >= BUDGET )) && [[ $UNTIL == 0 ]]; then
            echo "[install] still running after ${BUDGET} s; run the install stage again to wait on"
            exit 3
        fi
        sleep 5
        waited=$((waited + 5))
    done
    tail -n 3 "$log"
    [[ "$(cat "$rc_file")" == 0 ]] || die "tools/install.sh failed; see $log"
    "$PY" - <<'PY'
import torch
from mmcv.ops import get_compiling_cuda_version
if not torch.cuda.is_available():
    raise SystemExit("[install] torch sees no CUDA device: the GPU stages will refuse to run")
cuda_ops = get_compiling_cuda_version()
print(f"[install] torch {torch.__version__} (CUDA {torch.version.cuda}) on "
      f"{torch.cuda.get_device_name(0)}; mmcv ops compiled for CUDA: {cuda_ops}")
if cuda_ops in ("", "not available"):
    print("[install] warning: mmcv ops are CPU-only (nvcc missing or not matching torch's CUDA);"
          " the mmdet stage cannot run")
PY
    "$PY" -m benchmarks.gpu env "${OPTS[@]}"
}

PY_STAGES=()
for stage in "${STAGES[@]}"; do
    [[ $stage == install ]] || PY_STAGES+=("$stage")
done
if [[ " ${STAGES[*]} " == *" install "* ]]; then
    echo "=== gpu_suite: install ($(date +%H:%M:%S)) ==="
    install_stage
fi
[[ ${#PY_STAGES[@]} -gt 0 ]] || exit 0
[[ -x "$PY" ]] || die "no virtual environment at $PY; run: benchmarks/gpu_suite.sh install"
# One process for the remaining stages, each with its own time budget; `all` re-runs a stage
# whose budget ran out until it completes. Status 3: a stage is unfinished, run it again.
exec "$PY" -m benchmarks.gpu "${PY_STAGES[@]}" "${OPTS[@]}"
