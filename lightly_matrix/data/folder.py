"""Any folder of images as a pretraining data set.

Two layouts are accepted:

- ``PATH/<class>/**/<image>``: one sub-folder per class; labels are available (used only to
evaluate).
- ``PATH/**/<image>`` with images directly in ``PATH``: unlabelled (label ``-1``).

Every file's header is read once when the folder is indexed, so an unreadable file is reported
before training starts instead of crashing a run hours later.
"""

from __future__ import annotations

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
    """An image file that PIL cannot open or decode."""


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


def check_images(paths: Sequence[Path]) -> None:
    """Opens every file's header (cheap: no decoding) and raises on the first unreadable one.

    Raises:
        UnreadableImageError: Naming the file, and how to fix it.
    """
    for path in paths:
        try:
            with Image.open(path) as image:
                image.size  # noqa: B018 - parsing the header is the check
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise UnreadableImageError(
                f"cannot read image {str(path)!r} ({type(err).__name__}); remove or replace the "
                f"file"
            ) from None


def load_image(path: Path) -> Image.Image:
    """Decodes one image as RGB.

    Raises:
        UnreadableImageError: If the file is truncated or not an image.
    """
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise UnreadableImageError(
            f"cannot read image {str(path)!r} ({type(err).__name__}: {err}); remove or replace "
            f"the file"
        ) from None


class ImageFolderDataset(Dataset):
    """A folder of images as ``(transform(image), label)`` pairs; label ``-1`` when unlabelled.

    Args:
        root: The image folder (see the module docstring for the layouts).
        transform: Applied to each RGB PIL image.
        check: Read every file's header now so unreadable files fail fast.
        paths: Use these files instead of scanning ``root`` (with ``labels``; for splits).
        labels: Labels of ``paths``.
        classes: Class names of ``paths``.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[Image.Image], Any] | None = None,
        check: bool = True,
        paths: Sequence[Path] | None = None,
        labels: Sequence[int] | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        if paths is None:
            paths, labels, classes = scan_folder(self.root)
            if check:
                check_images(paths)
        self.paths = list(paths)
        self.labels = np.asarray(
            labels if labels is not None else [-1] * len(self.paths), dtype=np.int64
        )
        self.classes = list(classes or [])
        self.transform = transform

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
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = load_image(self.paths[index])
        return (self.transform(image) if self.transform else image), int(self.labels[index])
