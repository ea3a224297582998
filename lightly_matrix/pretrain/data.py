"""The data of a pretraining run: digits or an image folder, and the probes' split."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightly_matrix.errors import UserError
from lightly_matrix.pretrain.config import RunConfig
from lightly_matrix.pretrain.outdir import SPLIT_FILE
from lightly_matrix.utils.io import write_json_atomic

if TYPE_CHECKING:
    from lightly_matrix.data.folder import ImageFolderDataset


def build_data(
    args: argparse.Namespace, config: RunConfig, out: Path | None = None
) -> tuple[Any, Any, Any, int, int]:
    """Builds (train set, validation set or None, probe data or None, num_classes, num_workers);
    ``args`` sets the loading, ``out`` keeps an image folder's check and the probes' split."""
    from lightly_matrix.data.transforms import build_eval_transform, build_train_transform
    from lightly_matrix.evaluation import ProbeData

    size, views = config.image_size, config.views
    train_transform = build_train_transform(views, size)
    # The probes see the training views' normalisation (CIFAR statistics for CIFAR recipes).
    norm = {"mean": views[0].normalize_mean, "std": views[0].normalize_std}
    if config.data == "digits":
        from lightly_matrix.data.digits import NUM_CLASSES, DigitsDataset

        eval_transform = build_eval_transform(size, resize=False, **norm)
        # Tuning (--eval-split val) never sees the test split, nor the validation images' pixels.
        fitted, scored = (
            ("train_minus_val", "val") if config.eval_split == "val" else ("train", "test")
        )
        train: Any = DigitsDataset(fitted, train_transform, image_size=size)
        test = DigitsDataset(scored, eval_transform, image_size=size)
        probe = ProbeData(DigitsDataset(fitted, eval_transform, image_size=size), test, NUM_CLASSES)
        return train, test, probe, NUM_CLASSES, args.num_workers or 0

    from lightly_matrix.data.module import default_num_workers

    workers = default_num_workers(config.devices) if args.num_workers is None else args.num_workers
    skip = config.skip_bad_images
    train = _image_folder(
        "--data", config.data, train_transform, skip_bad_images=skip, index_dir=out
    )
    if train.checked is not None:
        print(f"{config.data}: {train.checked.summary()}", flush=True)
    if train.skipped:
        print(
            f"--skip-bad-images: left out {len(train.skipped)} unreadable file(s) of "
            f"{config.data}, e.g. {train.skipped[0]}",
            flush=True,
        )
    num_classes = train.num_classes if train.num_classes > 1 else 0
    if config.no_eval:
        return train, None, None, num_classes, workers
    tested = train
    if config.eval_data is not None:
        tested = _image_folder("--eval-data", config.eval_data, skip_bad_images=skip, index_dir=out)
        if num_classes and tested.classes != train.classes:
            raise UserError(
                f"--eval-data {config.eval_data!r} must have the same class sub-folders as --data"
            )
    if tested.num_classes < 2:
        print(
            f"note: no evaluation: {tested.root} has {tested.num_classes} class sub-folders and"
            " the probes need 2 or more (images directly in a folder make all of it unlabelled);"
            " pass a labelled --eval-data folder, or --no-eval",
            flush=True,
        )
        return train, None, None, num_classes, workers
    # Unlabelled training images: the probes fit and score on the --eval-data folder alone.
    fitted = train if num_classes else tested
    fit_ids, test_ids = _kept_split(out, fitted, tested, args, config.seed)
    fewest = min(Counter(fitted.labels[fit_ids].tolist()).values())
    if fewest < 10:  # else the column's name would claim labels it does not have
        note = f"its smallest class has {fewest} probe training image(s)"
        print(f"note: the '10 labels/class' probe fits on fewer: {note}", flush=True)
    eval_transform = build_eval_transform(size, **norm)
    probe_test = tested.subset(test_ids, eval_transform)
    probe = ProbeData(fitted.subset(fit_ids, eval_transform), probe_test, tested.num_classes)
    # The module's online probe learns from the training images' labels: none, no validation.
    return train, probe_test if num_classes else None, probe, num_classes, workers


def _image_folder(flag: str, root: str, *args: Any, **kwargs: Any) -> ImageFolderDataset:
    """The ``ImageFolderDataset`` of ``flag``; its errors name the folder only, so add the flag."""
    from lightly_matrix.data.folder import ImageFolderDataset

    try:
        return ImageFolderDataset(root, *args, **kwargs)
    except UserError as err:
        raise UserError(f"{flag}: {err}") from None


def _kept_split(
    out: Path | None, fitted: Any, tested: Any, args: argparse.Namespace, seed: int
) -> tuple[list[int], list[int]]:
    """The probes' (fit, test) images, kept in ``out`` by relative path for a resumed run."""
    limit, sets = args.eval_max_images, (fitted, tested)
    key = {"seed": seed, "max": limit}
    names = [[f[len(os.path.join(str(d.root), "")) :] for f in d.files] for d in sets]
    path = out / SPLIT_FILE if out is not None else None
    if path is not None and getattr(args, "resume", None) and path.is_file():
        kept = json.loads(path.read_text())
        if kept["key"] == key:
            where = [{f: i for i, f in enumerate(side)} for side in names]
            gone = [
                f for side, files in enumerate(kept["split"]) for f in files if f not in where[side]
            ]
            if gone:
                raise UserError(
                    f"--resume: {len(gone)} of the run's probe images are gone from the data"
                    f" (e.g. {gone[0]!r}); its table would mix scores on different test sets:"
                    " put them back, or start a new run with another --out"
                )
            fit, test = (
                [where[side][f] for f in files] for side, files in enumerate(kept["split"])
            )
            return fit, test
    if tested is fitted:
        fit, test = _probe_split(tested.labels, limit, seed)
    else:  # at most ``limit`` images of each folder, evenly spread
        fit, test = (list(range(0, n, max(1, n // max(1, limit))))[:limit] for n in map(len, sets))
        for flag, data, ids in zip(("--data", "--eval-data"), sets, (fit, test), strict=True):
            _check_two_classes(data.labels, ids, limit, f" of {flag}")
    if path is not None:
        split = [[side[i] for i in ids] for side, ids in zip(names, (fit, test), strict=True)]
        write_json_atomic(path, {"key": key, "split": split})
    return fit, test


def count_data(config: RunConfig) -> tuple[int, int]:
    """(training images, classes) of ``config.data`` for ``--dry-run``, nothing written."""
    if config.data == "digits":
        from lightly_matrix.data.digits import NUM_CLASSES, split_indices

        fit = "train_minus_val" if config.eval_split == "val" else "train"
        return len(split_indices(fit)), NUM_CLASSES
    train = _image_folder("--data", config.data, skip_bad_images=config.skip_bad_images)
    return len(train), train.num_classes


def _probe_split(labels: Any, limit: int, seed: int) -> tuple[list[int], list[int]]:
    """A fixed split of at most ``limit`` images: 30% of each class held out, at least one of each
    class of two or more; refuses images with no class of two, or of one class."""
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
    _check_two_classes(labels, index, limit, "")  # every drawn class is on the fit side
    return sorted(fit), sorted(held_out)


def _check_two_classes(labels: Any, ids: Any, limit: int, of: str) -> None:
    """Refuses probe images ``ids`` of one class: the logistic-regression probe needs two."""
    import numpy as np

    if len(np.unique(labels[ids])) < 2:
        raise UserError(
            f"the {len(ids)} images{of} drawn for the probes (--eval-max-images {limit})"
            f" hold one of the {len(np.unique(labels))} classes; raise --eval-max-images, add"
            " images to the small classes, or --no-eval"
        )
