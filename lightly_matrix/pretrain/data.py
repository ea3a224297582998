"""The data of a pretraining run: digits or an image folder, and the probes' split."""

from __future__ import annotations

import argparse
import os
from typing import Any

from lightly_matrix.cli import UserError
from lightly_matrix.pretrain.config import RunConfig


def build_data(args: argparse.Namespace, config: RunConfig) -> tuple[Any, Any, Any, int, int]:
    """Builds (train set, validation set or None, probe data or None, num_classes, num_workers).

    What is read and how it is augmented come from ``config``; ``args`` sets the loading
    (workers, the probes' image cap).
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

    workers = min(8, os.cpu_count() or 1) if args.num_workers is None else args.num_workers
    train = ImageFolderDataset(config.data, train_transform, skip_bad_images=config.skip_bad_images)
    if train.skipped:
        print(
            f"--skip-bad-images: left out {len(train.skipped)} unreadable file(s) of "
            f"{config.data}, "
            f"e.g. {train.skipped[0]}",
            flush=True,
        )
    eval_transform = build_eval_transform(size, **norm)
    num_classes = train.num_classes
    if config.eval_data is not None:
        held_out = ImageFolderDataset(config.eval_data, skip_bad_images=config.skip_bad_images)
        if held_out.classes != train.classes:
            raise UserError(
                f"--eval-data {config.eval_data!r} must have the same class sub-folders as --data"
            )
        probe_train = train.subset(_even_subset(len(train), args.eval_max_images), eval_transform)
        probe_test = held_out.subset(
            _even_subset(len(held_out), args.eval_max_images), eval_transform
        )
    elif num_classes > 1:
        train_idx, test_idx = _probe_split(train.labels, args.eval_max_images, config.seed)
        probe_train, probe_test = (
            train.subset(train_idx, eval_transform),
            train.subset(test_idx, eval_transform),
        )
    else:
        return train, None, None, 0, workers
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
    """A fixed 70/30 split (stratified if possible) of at most ``limit`` images."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    if len(index) > limit:
        index = np.random.default_rng(seed).choice(index, size=limit, replace=False)
    counts = np.bincount(labels[index])
    stratify = labels[index] if counts[counts > 0].min() >= 2 else None
    train_idx, test_idx = train_test_split(
        index, test_size=0.3, random_state=seed, stratify=stratify
    )
    return sorted(train_idx.tolist()), sorted(test_idx.tolist())
