"""Any folder of images as a pretraining data set.

Two layouts are accepted:

- ``PATH/<class>/**/<image>``: one sub-folder per class; labels are available (used only to
evaluate).
- ``PATH/**/<image>`` with images directly in ``PATH``: unlabelled (label ``-1``).

Every file's header is read (in parallel threads) when the folder is indexed, so an unreadable file
is reported before training starts instead of crashing a run hours later; with ``index_dir`` the
result is kept in a run folder and reused by later starts and other ranks
(:mod:`lightly_matrix.data.index`). Data that is damaged behind a valid header (a truncated file,
or a file changed after the check) is found when the image is decoded. Either way the error names
the file, or, with ``skip_bad_images=True``, the file is skipped and listed in ``dataset.skipped``.

16-bit and 32-bit integer images (PIL modes ``I;16*`` and ``I``) and float images (mode ``F``) are
scaled to 0..255 before the RGB conversion, which would otherwise saturate or zero them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lightly_matrix.errors import UserError

if TYPE_CHECKING:
    from lightly_matrix.data.index import CheckedFolder

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

    def __init__(self, path: str | Path, err: BaseException | str) -> None:
        self.path = Path(path)
        # A string is a reason recorded earlier (the run folder's index of checked files).
        self.reason = err if isinstance(err, str) else _reason(err)
        if self.reason.startswith(_BOMB):
            advice = (
                "resize the file, or if you trust it raise the limit before loading with "
                "PIL.Image.MAX_IMAGE_PIXELS = <pixels> (None disables the check)"
            )
        else:
            advice = (
                "the file is corrupt, truncated or not an image: remove or replace it, or skip "
                "unreadable files (skip_bad_images=True; --skip-bad-images in lightly-matrix "
                "pretrain)"
            )
        super().__init__(f"cannot read image {str(path)!r} ({self.reason}); {advice}")

    def __reduce__(self) -> tuple:
        # Rebuilt from (path, reason), so that the error crosses process boundaries intact.
        return (UnreadableImageError, (self.path, self.reason))


_BOMB = "too large for PIL's decompression-bomb guard"


def _reason(err: BaseException) -> str:
    if isinstance(err, Image.DecompressionBombError):
        return f"{_BOMB} ({err})"
    return f"{type(err).__name__}: {err}"


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


@dataclass
class FolderScan:
    """The image files of a folder, in a fixed order, with what tells whether one changed.

    Attributes:
        paths: The files (as strings: fast to build for millions), sorted as
            ``sorted(Path.rglob(...))`` sorts them within each class.
        labels: Their labels (``-1`` everywhere when there are no class sub-folders).
        classes: The class names (empty when unlabelled).
        sizes: File sizes in bytes.
        mtimes: Modification times in nanoseconds.
    """

    paths: list[str]
    labels: list[int]
    classes: list[str]
    sizes: list[int] = field(default_factory=list)
    mtimes: list[int] = field(default_factory=list)


def _walk(folder: str) -> list[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` of the images under ``folder``, depth first in name order.

    Depth first with each folder's entries sorted by name is the order of sorting the paths by
    their parts, so this matches ``sorted(Path(folder).rglob("*"))``. ``os.scandir`` gets the file
    types from the directory listing; only images are ``stat``-ed (symbolic links are followed).
    """
    found: list[tuple[str, int, int]] = []
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir():
            found += _walk(entry.path)
        elif _is_image_name(entry.name) and entry.is_file():
            stat = entry.stat()
            found.append((entry.path, stat.st_size, stat.st_mtime_ns))
    return found


def scan_folder_stats(root: str | Path, threads: int = 16) -> FolderScan:
    """Indexes an image folder (see the module docstring for the layouts), with file stats.

    Class sub-folders are listed in parallel threads (listing is I/O, slow on network storage).

    Args:
        root: The folder.
        threads: Threads listing sub-folders at once.

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
    with os.scandir(root) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    has_top_images = any(_is_image_name(e.name) and e.is_file() for e in entries)
    class_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        listed = pool.map(lambda e: _walk(e.path), class_dirs)
        per_class = {e.name: files for e, files in zip(class_dirs, listed, strict=True) if files}
    if per_class and not has_top_images:
        classes = list(per_class)  # already in name order
        files = [f for name in classes for f in per_class[name]]
        labels = [i for i, name in enumerate(classes) for _ in per_class[name]]
    else:
        # Images at the top level (or nothing but images): no trustworthy class structure.
        classes = []
        files = _walk(str(root))
        labels = [-1] * len(files)
    if not files:
        raise UserError(
            f"no images found in {str(root)!r} (looked for {', '.join(IMAGE_EXTENSIONS)}); "
            "put images in it, directly or in one sub-folder per class"
        )
    return FolderScan(
        paths=[f[0] for f in files],
        labels=labels,
        classes=classes,
        sizes=[f[1] for f in files],
        mtimes=[f[2] for f in files],
    )


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
    scan = scan_folder_stats(root)
    return [Path(p) for p in scan.paths], scan.labels, scan.classes


def _bomb_warnings_named(path: str | Path, caught: list[warnings.WarningMessage]) -> None:
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


#: Threads reading headers at once: header reads wait on storage (a network filesystem answers
#: in ~1 ms), so more threads than cores pay off there; the parsing itself holds the GIL.
CHECK_THREADS = 16
_CHUNK = 256  # files per task: amortises the pool's overhead


def _check_chunk(paths: Sequence[str]) -> tuple[list[tuple[int, str]], list[tuple[int, int]]]:
    """(position, reason) of the unreadable files and (position, pixels) of very large ones."""
    bad, large = [], []
    limit = Image.MAX_IMAGE_PIXELS
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                width, height = image.size  # parsing the header is the check
        except _READ_ERRORS as err:
            bad.append((i, _reason(err)))
            continue
        if limit is not None and width * height > limit:
            large.append((i, width * height))
    return bad, large


def find_unreadable(paths: Sequence[str | Path], threads: int = CHECK_THREADS) -> dict[int, str]:
    """Opens every file's header (cheap: no decoding), in parallel threads.

    Files near PIL's decompression-bomb limit are named in a ``DecompressionBombWarning``.

    Args:
        paths: The files.
        threads: Threads reading at once.

    Returns:
        ``{position in paths: reason}`` of the files PIL cannot open.
    """
    names = [str(p) for p in paths]
    starts = range(0, len(names), _CHUNK)
    with warnings.catch_warnings():
        # PIL's own warning does not name the file; the one below does.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            results = list(pool.map(lambda s: _check_chunk(names[s : s + _CHUNK]), starts))
    bad: dict[int, str] = {}
    for start, (chunk_bad, chunk_large) in zip(starts, results, strict=True):
        bad.update((start + i, reason) for i, reason in chunk_bad)
        for i, pixels in chunk_large:
            warnings.warn(
                f"image {names[start + i]!r} is close to PIL's decompression-bomb limit "
                f"({pixels} pixels > {Image.MAX_IMAGE_PIXELS}); consider resizing it; "
                "PIL.Image.MAX_IMAGE_PIXELS sets the limit",
                Image.DecompressionBombWarning,
                stacklevel=2,
            )
    return bad


def check_images(
    paths: Sequence[Path], skip_bad_images: bool = False, threads: int = CHECK_THREADS
) -> list[Path]:
    """Opens every file's header in parallel to find unreadable files (see :func:`find_unreadable`).

    Args:
        paths: The files.
        skip_bad_images: Return the unreadable files instead of raising.
        threads: Threads reading at once.

    Returns:
        The unreadable files in the order of ``paths`` (always empty when ``skip_bad_images`` is
        False).

    Raises:
        UnreadableImageError: Naming the first unreadable file and how to fix it, unless
            ``skip_bad_images``.
    """
    bad = find_unreadable(paths, threads)
    if bad and not skip_bad_images:
        first = min(bad)
        raise UnreadableImageError(paths[first], bad[first])
    return [Path(paths[i]) for i in sorted(bad)]


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


def load_image(path: str | Path) -> Image.Image:
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
        index_dir: Keep the result of the check in this run folder and reuse it for files that
            have not changed since (see :mod:`lightly_matrix.data.index`; implies ``check``).

    Attributes:
        skipped: The files skipped as unreadable, in the order found. Those found when
            decoding are added by the process that decodes them: with DataLoader workers the
            main process's list holds only the ones found when scanning (the warnings name all).
        files: The image files as strings (``paths`` as :class:`~pathlib.Path` objects).
        checked: What the check with ``index_dir`` did, or ``None`` (for the log).
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
        index_dir: str | Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.skip_bad_images = skip_bad_images
        self.skipped: list[Path] = []
        self.checked: CheckedFolder | None = None
        if paths is None:
            if index_dir is not None:
                from lightly_matrix.data.index import checked_folder

                self.checked = checked_folder(self.root, index_dir)
                scan, bad = self.checked.scan, self.checked.unreadable
            else:
                scan = scan_folder_stats(self.root)
                check = check or skip_bad_images
                bad = find_unreadable(scan.paths) if check else {}
            paths, labels, classes = scan.paths, scan.labels, scan.classes
            if bad and not skip_bad_images:
                first = min(bad)
                raise UnreadableImageError(paths[first], bad[first])
            self.skipped = [Path(paths[i]) for i in sorted(bad)]
            if self.skipped:
                if len(self.skipped) == len(paths):
                    raise UserError(
                        f"none of the {len(paths)} images in {str(self.root)!r} can be read "
                        f"(first: {str(self.skipped[0])!r}); check the files"
                    )
                paths = [p for i, p in enumerate(paths) if i not in bad]
                labels = [y for i, y in enumerate(labels) if i not in bad]
        # Strings, not Paths: a Path costs ~10 us to build, a minute for ImageNet's 1.28 M files.
        self.files = [str(p) for p in paths]
        self.labels = np.asarray(
            labels if labels is not None else [-1] * len(self.files), dtype=np.int64
        )
        self.classes = list(classes or [])
        self.transform = transform
        self._skipped_set = {str(p) for p in self.skipped}

    @property
    def paths(self) -> list[Path]:
        """The image files (built on each access; :attr:`files` holds them as strings)."""
        return [Path(f) for f in self.files]

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
            if self.skip_bad_images and self.files[i] in self._skipped_set:
                continue
            try:
                image = load_image(self.files[i])
            except UnreadableImageError as err:
                if not self.skip_bad_images:
                    raise
                self.skipped.append(Path(self.files[i]))
                self._skipped_set.add(self.files[i])
                warnings.warn(
                    f"skipping unreadable image {str(err.path)!r} ({err.reason}); "
                    "skip_bad_images=True",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            return (self.transform(image) if self.transform else image), int(self.labels[i])
        raise UserError(
            f"none of the {len(self.files)} images of the data set can be decoded "
            f"(first: {self.files[index]!r}); check the files"
        )
