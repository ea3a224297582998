"""Input pipeline of an image-folder run: start-up cost of the file check, and images/s.

Two measurements, on synthetic JPEG folders made under ``--work`` (kept for re-runs):

- **start-up**: what building the data set costs on a first start (every header read), on a
  second start (the run folder's index reused), for a large and a small folder, and the header
  check alone with 1 and with ``CHECK_THREADS`` threads, with the files in the page cache
  ("warm") and evicted from it ("cold", ``posix_fadvise(DONTNEED)``: as on a fresh node).
- **throughput**: images/s of one epoch of our loader (``ImageFolderDataset`` + the ``byol``
  two-view transform, through ``PretrainDataModule``'s own ``train_dataloader``) against
  torchvision's ``ImageFolder`` with Lightly's ``BYOLTransform``, on the same ImageNet-sized
  files (500 x 375 JPEGs) at 224 px, batch 32, with 1 and 2 workers. Worker start-up is included
  (our loader starts its workers every epoch). The best of ``--rounds`` alternating rounds.

    python benchmarks/bench_data.py                       # both, a few minutes on 2 cores
    python benchmarks/bench_data.py --skip-startup --workers 1 2 4 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_folder(root: Path, classes: int, per_class: int, size: tuple[int, int]) -> Path:
    """``classes`` folders of ``per_class`` JPEGs (smooth noise: compresses like a photo)."""
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c:04d}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)
            image.save(root / f"class{c:04d}" / f"{i:05d}.jpg", quality=90)
    done.touch()
    return root


def evict(paths: list[str]) -> None:
    """Drops the files from the page cache, so that the next read goes to the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def startup(work: Path, files: int, rounds: int) -> dict:
    from lightly_matrix.data.folder import (
        CHECK_THREADS,
        checked_folder,
        find_unreadable,
        scan_folder_stats,
    )

    large = make_folder(work / f"startup_{files}", 100, files // 100, (64, 64))
    small = make_folder(work / "startup_200", 100, 2, (64, 64))
    rows: dict[str, list[float]] = {}

    def timed(key: str, fn: Callable[..., object], *args: object) -> None:
        start = time.perf_counter()
        fn(*args)
        rows.setdefault(key, []).append(time.perf_counter() - start)

    paths = scan_folder_stats(large).paths
    for _ in range(rounds):
        for cache in ("cold", "warm"):
            for threads in (1, CHECK_THREADS):
                if cache == "cold":
                    evict(paths)
                timed(f"check {cache}, {threads} threads", find_unreadable, paths, threads)
        for name, folder in (("large", large), ("small", small)):
            with tempfile.TemporaryDirectory() as run:
                evict(scan_folder_stats(folder).paths)
                timed(f"{name}: first start (cold)", checked_folder, folder, run)
                timed(f"{name}: second start", checked_folder, folder, run)
    return {
        "files": {"large": len(paths), "small": 200},
        "seconds": {key: min(values) for key, values in rows.items()},
    }


def loader(name: str, folder: Path, workers: int, batch: int, index_dir: Path) -> Iterable:
    """Ours (through ``PretrainDataModule.train_dataloader``), or torchvision + Lightly's."""
    import torch
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform
    from torchvision.datasets import ImageFolder

    from lightly_matrix.data.folder import ImageFolderDataset
    from lightly_matrix.data.module import PretrainDataModule
    from lightly_matrix.data.transforms import build_train_transform

    if name == "ours":
        transform = build_train_transform("byol", 224, 2)
        dataset = ImageFolderDataset(folder, transform, index_dir=index_dir)
        module = PretrainDataModule(dataset, None, batch, workers, seed=0)
        # The loader reads only these of its trainer.
        module.trainer = SimpleNamespace(current_epoch=0, global_rank=0, world_size=1)  # type: ignore[assignment]
        return module.train_dataloader()
    views = BYOLView1Transform(input_size=224), BYOLView2Transform(input_size=224)
    return torch.utils.data.DataLoader(
        ImageFolder(str(folder), transform=BYOLTransform(*views)),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        generator=torch.Generator().manual_seed(0),
    )


def throughput(work: Path, images: int, workers: list[int], rounds: int, batch: int) -> dict:
    import torch

    torch.set_num_threads(1)
    folder = make_folder(work / f"imagenet_like_{images}", 10, images // 10, (500, 375))
    index_dir = work / "bench_run"
    results: dict[str, dict[int, float]] = {"ours": {}, "torchvision + lightly": {}}
    for _ in range(rounds):
        for w in workers:
            for name in results:
                start, seen = time.perf_counter(), 0
                for views, _ in loader(name, folder, w, batch, index_dir):
                    assert views[0].shape[-2:] == (224, 224) and len(views) == 2
                    seen += len(views[0])
                rate = seen / (time.perf_counter() - start)
                results[name][w] = max(results[name].get(w, 0.0), rate)
    return {"images": images, "batch": batch, "images_per_s": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_data")
    parser.add_argument("--files", type=int, default=20_000, help="files of the large folder")
    parser.add_argument("--images", type=int, default=640, help="images of the throughput set")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if min(args.workers) < 0 or args.files < 200 or args.images < args.batch or args.rounds < 1:
        parser.error("--workers >= 0, --files >= 200, --images >= --batch, --rounds >= 1")

    report: dict = {
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(),
    }
    if not args.skip_startup:
        report["startup"] = s = startup(args.work, args.files, args.rounds)
        n = s["files"]["large"]
        print(f"\nStart-up, {n} and 200 files ({report['cores']} cores):\n")
        print("| | seconds | per file (us) |\n|---|---|---|")
        for key, value in s["seconds"].items():
            files = 200 if key.startswith("small") else n
            print(f"| {key} | {value:.2f} | {value / files * 1e6:.0f} |")
    if not args.skip_throughput:
        report["throughput"] = t = throughput(
            args.work, args.images, args.workers, args.rounds, args.batch
        )
        print(f"\nImages/s, two views at 224 px, batch {args.batch}, {args.images} images:\n")
        print(
            "| workers | ours | torchvision ImageFolder + BYOLTransform | ratio |\n"
            "|---|---|---|---|"
        )
        ours, base = t["images_per_s"]["ours"], t["images_per_s"]["torchvision + lightly"]
        for w in args.workers:
            print(f"| {w} | {ours[w]:.1f} | {base[w]:.1f} | {ours[w] / base[w]:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"bench_data-cpu-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
