"""The GPU suite: the gpu-marked tests, then every table, as JSON + Markdown in one folder.

    python -m benchmarks.gpu                          # on a CUDA machine (make bench-gpu)
    python -m benchmarks.gpu --dry-run --out /tmp/s   # CPU, tiny sizes (CI)

In order: ``env.txt`` (``python -m torch.utils.collect_env``), ``gpu_tests`` (``pytest -m gpu``),
``bench_losses-cuda`` (loss cost, fp32 and bf16), ``train_step-resnet50`` (matrix_ssl, byol,
corinfomax, barlowtwins), ``train_step-vit_base_patch16_224`` (mmae against mae) and
``maskrcnn`` (R50-FPN iteration time with an exported backbone). A table that fails does not
stop the others; the exit status is 1 if any did. About 10 minutes on one H100.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable

from benchmarks import bench_losses
from benchmarks.gpu import maskrcnn, train_step
from benchmarks.gpu.common import ROOT, markdown_table, parser, resolve, write


def gpu_tests(args: argparse.Namespace, device: str) -> int:
    """``pytest -m gpu`` on the files that use the mark; the counts come from its JUnit XML."""
    files = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "tests").rglob("test_*.py"))
        if re.search(r"pytest\.mark\.gpu\b", p.read_text())
    ]
    xml = args.out / "gpu_tests.xml"
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    rc = subprocess.call([*command, f"--junitxml={xml}", *files], cwd=ROOT)
    suite = ET.parse(xml).getroot().find("testsuite")
    keys = ("tests", "failures", "errors", "skipped")
    row = {"exit_code": rc, **{k: int(suite.get(k, 0)) if suite is not None else 0 for k in keys}}
    columns = [(k, k) for k in ("tests", "failures", "errors", "skipped", "exit_code")]
    write(args, "gpu_tests", "pytest -m gpu", [row], markdown_table(columns, [row]), device)
    return 0 if rc == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    device = resolve(args)
    from torch.utils.collect_env import get_pretty_env_info

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "env.txt").write_text(get_pretty_env_info() + "\n")
    common = ["--out", str(args.out), *(["--dry-run"] if args.dry_run else [])]
    sizes = ["256x2048", "1024x2048", "4096x8192"]
    tables: list[tuple[str, Callable[[], int]]] = [
        ("gpu tests", lambda: gpu_tests(args, device)),
        (
            "loss cost",
            lambda: bench_losses.main(
                [
                    *common,
                    "--device",
                    "cuda",
                    "--precision",
                    "fp32",
                    "bf16",
                    "--sizes",
                    *sizes,
                    "--dense-max-d",
                    "8192",
                ]
            ),
        ),
        (
            "ResNet-50 step",
            lambda: train_step.main(
                [*common, "--methods", "matrix_ssl", "byol", "corinfomax", "barlowtwins"]
            ),
        ),
        (
            "ViT-B/16 step",
            lambda: train_step.main(
                [*common, "--backbone", "vit_base_patch16_224", "--methods", "mmae", "mae"]
            ),
        ),
        ("Mask R-CNN", lambda: maskrcnn.main(common)),
    ]
    failed = []
    for name, run in tables:
        print(f"=== {name} ===", flush=True)
        try:
            status = run()
        except (Exception, SystemExit) as err:  # one table's failure does not stop the others
            print(f"{name}: {type(err).__name__}: {err}", file=sys.stderr)
            status = 1
        if status:
            failed.append(name)
    print(f"results in {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
