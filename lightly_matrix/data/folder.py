"""Any folder of images as a pretraining data set: ``PATH/<class>/**/<image>`` (labels, used only
to evaluate) or ``PATH/**/<image>`` with images directly in ``PATH`` (unlabelled, label ``-1``).

Every file's header is read when the folder is listed (:mod:`lightly_matrix.data.index`), so an
unreadable file is named before training starts; damage behind a valid header is found when the
image is decoded. Either way the error names the file, or with ``skip_bad_images=True`` the file
is skipped and listed in ``dataset.skipped``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from lightly_matrix.data.index import (
    BOMB,
    READ_ERRORS,
    CheckedFolder,
    checked_folder,
    find_unreadable,
    read_error,
    scan_folder_stats,
    warn_large,
)
from lightly_matrix.errors import UserError


class UnreadableImageError(UserError):
    """An image file that PIL cannot open or decode.

    Attributes:
        path: The file.
        reason: What went wrong, without the advice.
    """

    def __init__(self, path: str | Path, err: BaseException | str) -> None:
        self.path = Path(path)
        self.reason = err if isinstance(err, str) else read_error(err)
        advice = (
            "resize the file, or if you trust it raise the limit before loading with "
            "PIL.Image.MAX_IMAGE_PIXELS = <pixels> (None disables the check)"
            if self.reason.startswith(BOMB)
            else "the file is corrupt, truncated or not an image: remove or replace it, or skip "
            "unreadable files (skip_bad_images=True; --skip-bad-images in lightly-matrix pretrain)"
        )
        super().__init__(f"cannot read image {str(path)!r} ({self.reason}); {advice}")

    def __reduce__(self) -> tuple:  # crosses from DataLoader workers intact
        return (UnreadableImageError, (self.path, self.reason))


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts to 8-bit RGB. PIL's own conversion clips ``I;16``/``I``/``F`` values to 0..255
    (16-bit images saturate, float ones in [0, 1] turn black); here 16-bit values (``I`` in
    0..65535 too) are divided by 257, floats in [0, 1] multiplied by 255, other ranges min-max
    scaled (NaN becomes 0)."""
    mode = image.mode
    if not (mode.startswith("I;16") or mode in ("I", "F")):
        return image.convert("RGB")
    values = np.asarray(image).astype(np.float64)
    finite = np.isfinite(values)
    low, high = (float(f(values[finite])) if finite.any() else 0.0 for f in (np.min, np.max))
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0.0
    grey = np.clip(np.rint(np.where(finite, scaled, 0.0)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Decodes one image as 8-bit RGB (see :func:`to_rgb`).

    Raises:
        UnreadableImageError: Naming the file, if it is truncated, not an image, or trips PIL's
            decompression-bomb guard.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # warn_large names it
            with Image.open(path) as image:
                rgb = to_rgb(image)
    except READ_ERRORS as err:
        raise UnreadableImageError(path, err) from None
    warn_large(str(path), rgb.width * rgb.height)
    return rgb


class ImageFolderDataset(Dataset):
    """A folder of images as ``(transform(image), label)`` pairs; label ``-1`` when unlabelled.

    Args:
        root: The image folder (see the module docstring for the layouts).
        transform: Applied to each RGB PIL image.
        check: Read every file's header now so unreadable files fail fast.
        paths: Use these files, ``labels`` and ``classes`` instead of scanning ``root``.
        labels: Labels of ``paths``.
        classes: Class names of ``paths``.
        skip_bad_images: Leave unreadable files out instead of raising; a file that fails when
            decoded is replaced by the next readable image, with a warning naming it.
        index_dir: Keep the check in this run folder's index (implies ``check``).

    Attributes:
        skipped: The files skipped as unreadable (in DataLoader workers' copies those found when
            decoding; the warnings name all).
        files: The image files as strings.
        checked: What the check with ``index_dir`` did, or ``None``.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[..., Any] | None = None,
        check: bool = True,
        paths: Sequence[Path | str] | None = None,
        labels: Sequence[int] | None = None,
        classes: Sequence[str] | None = None,
        skip_bad_images: bool = False,
        index_dir: str | Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.skip_bad_images = skip_bad_images
        self.skipped: list[Path] = []
        self.checked: CheckedFolder | None = None
        if paths is None:
            if index_dir is not None:
                self.checked = checked_folder(self.root, index_dir)
                scan, bad = self.checked.scan, self.checked.unreadable
            else:
                scan = scan_folder_stats(self.root)
                bad = find_unreadable(scan.paths) if check or skip_bad_images else {}
            paths, labels, classes = scan.paths, scan.labels, scan.classes
            if bad and not skip_bad_images:
                first = min(bad)
                raise UnreadableImageError(paths[first], bad[first])
            self.skipped = [Path(paths[i]) for i in sorted(bad)]
            if len(self.skipped) == len(paths):
                raise UserError(
                    f"none of the {len(paths)} images in {str(self.root)!r} can be read "
                    f"(first: {str(self.skipped[0])!r}); check the files"
                )
            kept = [i for i in range(len(paths)) if i not in bad]
            paths, labels = [paths[i] for i in kept], [labels[i] for i in kept]
        # Strings, not Paths: a Path costs ~10 us to build, a minute for ImageNet's 1.28 M files.
        self.files = [str(p) for p in paths]
        self.labels = np.asarray(labels if labels is not None else [-1] * len(self.files), np.int64)
        self.classes = list(classes or [])
        self.transform = transform
        self._skipped_set = {str(p) for p in self.skipped}

    @property
    def num_classes(self) -> int:
        """Number of classes, 0 when the folder is unlabelled."""
        return len(self.classes)

    def subset(
        self, indices: Sequence[int], transform: Callable[[Image.Image], Any] | None
    ) -> ImageFolderDataset:
        """The images at ``indices`` with another transform (for evaluation splits)."""
        return ImageFolderDataset(
            self.root,
            transform,
            paths=[self.files[i] for i in indices],
            labels=self.labels[list(indices)].tolist(),
            classes=self.classes,
            skip_bad_images=self.skip_bad_images,
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        for offset in range(len(self.files)):
            i = (index + offset) % len(self.files)
            if self.files[i] in self._skipped_set:
                continue
            try:
                image = load_image(self.files[i])
            except UnreadableImageError as err:
                if not self.skip_bad_images:
                    raise
                self.skipped.append(Path(self.files[i]))
                self._skipped_set.add(self.files[i])
                message = f"skipping unreadable image {str(err.path)!r} ({err.reason})"
                warnings.warn(f"{message}; skip_bad_images=True", UserWarning, stacklevel=2)
                continue
            return (self.transform(image) if self.transform else image), int(self.labels[i])
        raise UserError(
            f"none of the {len(self.files)} images of the data set can be decoded "
            f"(first: {self.files[index]!r}); check the files"
        )
