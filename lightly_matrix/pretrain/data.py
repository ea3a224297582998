"""The data of a pretraining run: digits or an image folder, and the probes' split."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lightly_matrix.cli import UserError


def build_data(
    args: argparse.Namespace, run: dict[str, Any], num_views: int, out: Path | None = None
) -> tuple[Any, Any, Any, int, int]:
    """Builds (train set, validation set or None, probe data or None, num_classes, num_workers).

    An image folder's check is kept in the run folder ``out`` (:mod:`lightly_matrix.data.index`).
    """
    from lightly_matrix.data.transforms import build_eval_transform, build_train_transform
    from lightly_matrix.evaluation import ProbeData

    size = run["image_size"]
    train_transform = build_train_transform(run["transform"], size, num_views)
    if args.data == "digits":
        from lightly_matrix.data.digits import NUM_CLASSES, DigitsDataset

        eval_transform = build_eval_transform(size, resize=False)
        # Tuning (--eval-split val) never sees the test split, nor the validation images' pixels.
        fit, held_out = (
            ("train_minus_val", "val") if args.eval_split == "val" else ("train", "test")
        )
        train: Any = DigitsDataset(fit, train_transform, image_size=size)
        test = DigitsDataset(held_out, eval_transform, image_size=size)
        probe = ProbeData(DigitsDataset(fit, eval_transform, image_size=size), test, NUM_CLASSES)
        workers = 0 if args.num_workers is None else args.num_workers
        return train, test, probe, NUM_CLASSES, workers

    from lightly_matrix.data.folder import ImageFolderDataset
    from lightly_matrix.data.module import default_num_workers

    workers = default_num_workers(args.devices) if args.num_workers is None else args.num_workers
    train = ImageFolderDataset(
        args.data, train_transform, skip_bad_images=args.skip_bad_images, index_dir=out
    )
    if train.checked is not None:
        print(f"{args.data}: {train.checked.summary()}", flush=True)
    if train.skipped:
        print(
            f"--skip-bad-images: left out {len(train.skipped)} unreadable file(s) of {args.data}, "
            f"e.g. {train.skipped[0]}",
            flush=True,
        )
    eval_transform = build_eval_transform(size)
    num_classes = train.num_classes if train.num_classes > 1 else 0
    if args.no_eval or num_classes == 0:  # no held-out images needed
        return train, None, None, num_classes, workers
    if args.eval_data is not None:
        held_out = ImageFolderDataset(
            args.eval_data, skip_bad_images=args.skip_bad_images, index_dir=out
        )
        if held_out.classes != train.classes:
            raise UserError(
                f"--eval-data {args.eval_data!r} must have the same class sub-folders as --data"
            )
        probe_train = train.subset(_even_subset(len(train), args.eval_max_images), eval_transform)
        probe_test = held_out.subset(
            _even_subset(len(held_out), args.eval_max_images), eval_transform
        )
    else:
        train_idx, test_idx = _probe_split(train.labels, args.eval_max_images, args.seed)
        probe_train, probe_test = (
            train.subset(train_idx, eval_transform),
            train.subset(test_idx, eval_transform),
        )
    return train, probe_test, ProbeData(probe_train, probe_test, num_classes), num_classes, workers


def _even_subset(n: int, limit: int) -> list[int]:
    step = max(1, n // max(1, limit))
    return list(range(0, n, step))[:limit]


def _probe_split(labels: Any, limit: int, seed: int) -> tuple[list[int], list[int]]:
    """A fixed split of at most ``limit`` images: 30% of each class is held out.

    Every class with two or more of the chosen images has at least one on each side, so classes
    of any size fit; a class with a single image stays on the fitting side.

    Raises:
        UserError: If no class has two images among the chosen ones (nothing to score on).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    index = np.arange(len(labels))
    if len(index) > limit:
        index = rng.choice(index, size=limit, replace=False)
    fit: list[int] = []
    held_out: list[int] = []
    for c in np.unique(labels[index]):
        members = rng.permutation(index[labels[index] == c]).tolist()
        n_out = min(len(members) - 1, max(1, round(0.3 * len(members))))
        held_out += members[:n_out]
        fit += members[n_out:]
    if not held_out:
        raise UserError(
            f"no class has two images among the {len(index)} used by the probes (one to fit, one "
            "to score); pass a labelled --eval-data folder, raise --eval-max-images, or --no-eval"
        )
    return sorted(fit), sorted(held_out)
