"""Any folder of images as a pretraining data set.

Two layouts are accepted:

- ``PATH/<class>/**/<image>``: one sub-folder per class; labels are available (used only to
evaluate).
- ``PATH/**/<image>`` with images directly in ``PATH``: unlabelled (label ``-1``).

Every file's header is read once when the folder is indexed, so an unreadable file is reported
before training starts instead of crashing a run hours later; data that is damaged behind a valid
header (a truncated file) is found when the image is decoded. Either way the error names the file,
or, with ``skip_bad_images=True``, the file is skipped and listed in ``dataset.skipped``.

16-bit and 32-bit integer images (PIL modes ``I;16*`` and ``I``) and float images (mode ``F``) are
scaled to 0..255 before the RGB conversion, which would otherwise saturate or zero them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lightly_matrix.cli import UserError

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)


class UnreadableImageError(UserError):
    """An image file that PIL cannot open or decode.

    Attributes:
        path: The file.
        reason: What went wrong, without the advice.
    """

    def __init__(self, path: Path, err: BaseException) -> None:
        self.path = Path(path)
        if isinstance(err, Image.DecompressionBombError):
            self.reason = f"too large for PIL's decompression-bomb guard ({err})"
            advice = (
                "resize the file, or if you trust it raise the limit before loading with "
                "PIL.Image.MAX_IMAGE_PIXELS = <pixels> (None disables the check)"
            )
        else:
            self.reason = f"{type(err).__name__}: {err}"
            advice = (
                "the file is corrupt, truncated or not an image: remove or replace it, or skip "
                "unreadable files (skip_bad_images=True; --skip-bad-images in lightly-matrix "
                "pretrain)"
            )
        super().__init__(f"cannot read image {str(path)!r} ({self.reason}); {advice}")

    def __reduce__(self) -> tuple:
        # __init__ takes (path, err): rebuild from the message so that pickling round-trips.
        return (_rebuild_error, (str(self), self.path, self.reason))


def _rebuild_error(message: str, path: Path, reason: str) -> UnreadableImageError:
    err = UnreadableImageError.__new__(UnreadableImageError)
    UserError.__init__(err, message)
    err.path, err.reason = path, reason
    return err


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_image(p))


def scan_folder(root: str | Path) -> tuple[list[Path], list[int], list[str]]:
    """Indexes an image folder.

    Args:
        root: The folder.

    Returns:
        The image paths, their labels (``-1`` everywhere when there are no class sub-folders) and
        the class names (empty when unlabelled).

    Raises:
        UserError: If the folder does not exist, is not a folder, or holds no image.
    """
    root = Path(root)
    if not root.exists():
        raise UserError(
            f"data folder {str(root)!r} does not exist; pass --data digits or a folder of images"
        )
    if not root.is_dir():
        raise UserError(
            f"--data {str(root)!r} is not a folder; pass --data digits or a folder of images"
        )
    top_images = [p for p in sorted(root.iterdir()) if _is_image(p)]
    class_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    class_images = {d.name: _images_under(d) for d in class_dirs}
    class_images = {name: paths for name, paths in class_images.items() if paths}
    if class_images and not top_images:
        classes = sorted(class_images)
        paths = [p for name in classes for p in class_images[name]]
        labels = [i for i, name in enumerate(classes) for _ in class_images[name]]
    else:
        # Images at the top level (or nothing but images): no trustworthy class structure.
        classes = []
        paths = _images_under(root)
        labels = [-1] * len(paths)
    if not paths:
        raise UserError(
            f"no images found in {str(root)!r} (looked for {', '.join(IMAGE_EXTENSIONS)}); "
            "put images in it, directly or in one sub-folder per class"
        )
    return paths, labels, classes


def _bomb_warnings_named(path: Path, caught: list[warnings.WarningMessage]) -> None:
    """Re-issues PIL's decompression-bomb warnings with the file's name and a hint."""
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            warnings.warn(
                f"image {str(path)!r} is close to PIL's decompression-bomb limit ({w.message}); "
                "consider resizing it; PIL.Image.MAX_IMAGE_PIXELS sets the limit",
                Image.DecompressionBombWarning,
                stacklevel=3,
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


_READ_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


def check_images(paths: Sequence[Path], skip_bad_images: bool = False) -> list[Path]:
    """Opens every file's header (cheap: no decoding) to find unreadable files.

    Args:
        paths: The files.
        skip_bad_images: Return the unreadable files instead of raising on the first one.

    Returns:
        The unreadable files (always empty when ``skip_bad_images`` is False).

    Raises:
        UnreadableImageError: Naming the first unreadable file and how to fix it, unless
            ``skip_bad_images``.
    """
    bad = []
    for path in paths:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    image.size  # noqa: B018 - parsing the header is the check
            _bomb_warnings_named(path, caught)
        except _READ_ERRORS as err:
            if not skip_bad_images:
                raise UnreadableImageError(path, err) from None
            bad.append(path)
    return bad


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts to 8-bit RGB, scaling high-bit-depth and float grey images to 0..255 first.

    PIL's own conversion clips ``I;16``/``I``/``F`` values to 0..255, which saturates 16-bit
    images and turns float images in [0, 1] black. Here 16-bit values are divided by 257
    (65535 -> 255), ``I`` images in 0..65535 are treated as 16-bit and other ranges are
    min-max scaled, float images in [0, 1] are multiplied by 255 and other float ranges are
    min-max scaled (NaN becomes 0).
    """
    mode = image.mode
    if not (mode.startswith("I;16") or mode in ("I", "F")):
        return image.convert("RGB")
    values = np.asarray(image).astype(np.float64)
    finite = np.isfinite(values)
    low = float(values[finite].min()) if finite.any() else 0.0
    high = float(values[finite].max()) if finite.any() else 0.0
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0.0
    scaled = np.where(finite, scaled, 0.0)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def load_image(path: Path) -> Image.Image:
    """Decodes one image as 8-bit RGB (see :func:`to_rgb`).

    Raises:
        UnreadableImageError: Naming the file, if it is truncated, not an image, or trips PIL's
            decompression-bomb guard.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                rgb = to_rgb(image)
        _bomb_warnings_named(path, caught)
        return rgb
    except _READ_ERRORS as err:
        raise UnreadableImageError(path, err) from None


class ImageFolderDataset(Dataset):
    """A folder of images as ``(transform(image), label)`` pairs; label ``-1`` when unlabelled.

    Args:
        root: The image folder (see the module docstring for the layouts).
        transform: Applied to each RGB PIL image.
        check: Read every file's header now so unreadable files fail fast.
        paths: Use these files instead of scanning ``root`` (with ``labels``; for splits).
        labels: Labels of ``paths``.
        classes: Class names of ``paths``.
        skip_bad_images: Skip unreadable files instead of raising. The headers are then read
            when scanning ``root`` (even with ``check=False``) and the bad files left out;
            a file that fails later, when decoded, is replaced by the next readable image with
            a warning naming it.

    Attributes:
        skipped: The files skipped as unreadable, in the order found. Those found when
            decoding are added by the process that decodes them: with DataLoader workers the
            main process's list holds only the ones found when scanning (the warnings name all).
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[Image.Image], Any] | None = None,
        check: bool = True,
        paths: Sequence[Path] | None = None,
        labels: Sequence[int] | None = None,
        classes: Sequence[str] | None = None,
        skip_bad_images: bool = False,
    ) -> None:
        self.root = Path(root)
        self.skip_bad_images = skip_bad_images
        self.skipped: list[Path] = []
        if paths is None:
            paths, labels, classes = scan_folder(self.root)
            if check or skip_bad_images:
                self.skipped = check_images(paths, skip_bad_images=skip_bad_images)
            if self.skipped:
                bad = set(self.skipped)
                kept = [(p, y) for p, y in zip(paths, labels, strict=True) if p not in bad]
                if not kept:
                    raise UserError(
                        f"none of the {len(paths)} images in {str(self.root)!r} can be read "
                        f"(first: {str(self.skipped[0])!r}); check the files"
                    )
                paths, labels = [p for p, _ in kept], [y for _, y in kept]
        self.paths = list(paths)
        self.labels = np.asarray(
            labels if labels is not None else [-1] * len(self.paths), dtype=np.int64
        )
        self.classes = list(classes or [])
        self.transform = transform
        self._skipped_set = set(self.skipped)

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
            paths=[self.paths[i] for i in indices],
            labels=self.labels[list(indices)].tolist(),
            classes=self.classes,
            skip_bad_images=self.skip_bad_images,
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            if self.skip_bad_images and self.paths[i] in self._skipped_set:
                continue
            try:
                image = load_image(self.paths[i])
            except UnreadableImageError as err:
                if not self.skip_bad_images:
                    raise
                self.skipped.append(self.paths[i])
                self._skipped_set.add(self.paths[i])
                warnings.warn(
                    f"skipping unreadable image {str(err.path)!r} ({err.reason}); "
                    "skip_bad_images=True",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            return (self.transform(image) if self.transform else image), int(self.labels[i])
        raise UserError(
            f"none of the {len(self.paths)} images of the data set can be decoded "
            f"(first: {str(self.paths[index])!r}); check the files"
        )
