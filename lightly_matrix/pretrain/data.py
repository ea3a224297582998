"""The data of a pretraining run: digits or an image folder, and the probes' split."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lightly_matrix.errors import UserError
from lightly_matrix.pretrain.config import RunConfig


def build_data(
    args: argparse.Namespace, config: RunConfig, out: Path | None = None
) -> tuple[Any, Any, Any, int, int]:
    """Builds (train set, validation set or None, probe data or None, num_classes, num_workers).

    What is read and how it is augmented come from ``config``; ``args`` sets the loading
    (workers, the probes' image cap). An image folder's check is kept in the run folder ``out``
    (:mod:`lightly_matrix.data.index`).
    """
    from lightly_matrix.data.transforms import build_eval_transform, build_train_transform
    from lightly_matrix.evaluation import ProbeData

    size = config.image_size
    views = config.views
    train_transform = build_train_transform(views, size)
    # The probes see the training views' normalisation (CIFAR statistics for CIFAR recipes).
    norm = {"mean": views[0].normalize_mean, "std": views[0].normalize_std}
    if config.data == "digits":
        from lightly_matrix.data.digits import NUM_CLASSES, DigitsDataset

        eval_transform = build_eval_transform(size, resize=False, **norm)
        # Tuning (--eval-split val) never sees the test split, nor the validation images' pixels.
        fit, held_out = (
            ("train_minus_val", "val") if config.eval_split == "val" else ("train", "test")
        )
        train: Any = DigitsDataset(fit, train_transform, image_size=size)
        test = DigitsDataset(held_out, eval_transform, image_size=size)
        probe = ProbeData(DigitsDataset(fit, eval_transform, image_size=size), test, NUM_CLASSES)
        workers = 0 if args.num_workers is None else args.num_workers
        return train, test, probe, NUM_CLASSES, workers

    from lightly_matrix.data.folder import ImageFolderDataset
    from lightly_matrix.data.module import default_num_workers

    workers = default_num_workers(config.devices) if args.num_workers is None else args.num_workers
    train = ImageFolderDataset(
        config.data, train_transform, skip_bad_images=config.skip_bad_images, index_dir=out
    )
    if train.checked is not None:
        print(f"{config.data}: {train.checked.summary()}", flush=True)
    if train.skipped:
        print(
            f"--skip-bad-images: left out {len(train.skipped)} unreadable file(s) of "
            f"{config.data}, "
            f"e.g. {train.skipped[0]}",
            flush=True,
        )
    eval_transform = build_eval_transform(size, **norm)
    num_classes = train.num_classes if train.num_classes > 1 else 0
    if config.no_eval or num_classes == 0:  # no held-out images needed
        return train, None, None, num_classes, workers
    if config.eval_data is not None:
        held_out = ImageFolderDataset(
            config.eval_data, skip_bad_images=config.skip_bad_images, index_dir=out
        )
        if held_out.classes != train.classes:
            raise UserError(
                f"--eval-data {config.eval_data!r} must have the same class sub-folders as --data"
            )
        probe_train = train.subset(_even_subset(len(train), args.eval_max_images), eval_transform)
        probe_test = held_out.subset(
            _even_subset(len(held_out), args.eval_max_images), eval_transform
        )
    else:
        train_idx, test_idx = _probe_split(train.labels, args.eval_max_images, config.seed)
        probe_train, probe_test = (
            train.subset(train_idx, eval_transform),
            train.subset(test_idx, eval_transform),
        )
    return train, probe_test, ProbeData(probe_train, probe_test, num_classes), num_classes, workers


def count_data(config: RunConfig) -> tuple[int, int]:
    """(training images, classes) of ``config.data``, checked as a run would, nothing written.

    For ``--dry-run``: digits are counted from their split, an image folder is scanned and its
    files checked (without keeping an index) but no probe set is built.
    """
    if config.data == "digits":
        from lightly_matrix.data.digits import NUM_CLASSES, split_indices

        fit = "train_minus_val" if config.eval_split == "val" else "train"
        return len(split_indices(fit)), NUM_CLASSES
    from lightly_matrix.data.folder import ImageFolderDataset

    train = ImageFolderDataset(config.data, skip_bad_images=config.skip_bad_images)
    return len(train), train.num_classes


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
