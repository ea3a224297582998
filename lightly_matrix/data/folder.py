"""A folder of images as a data set: ``PATH/<class>/**/<image>`` (labels, used only to evaluate)
or, with images directly in ``PATH``, unlabelled (label ``-1``). Every header is read up front, so
unreadable files are named (or skipped) before training; that check is kept in ``RUN/data_index/``
(a later start reads only new or changed files, other ranks wait for rank 0's: share ``--out``)."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from lightly_matrix.errors import UserError
from lightly_matrix.user_files import path_kind
from lightly_matrix.utils.io import atomic_write_text

#: torchvision's ``ImageFolder`` extensions, and GIF.
IMAGE_EXTENSIONS = (*IMG_EXTENSIONS, ".gif")
#: The folder of the index files inside a run folder.
INDEX_DIR = "data_index"
_FORMAT = 1
#: How long ranks other than 0 wait for rank 0's index before stopping with an error.
WAIT_S = 4 * 3600.0
#: Threads reading headers at once (reads wait on storage, so more threads than cores pay).
CHECK_THREADS = 16
_CHUNK = 256  # files per task: amortises the pool's overhead
READ_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)
BOMB = "too large for PIL's decompression-bomb guard"


def read_error(err: BaseException) -> str:
    """The reason an image cannot be read, as stored in the index and shown to the user."""
    if isinstance(err, Image.DecompressionBombError):
        return f"{BOMB} ({err})"
    return f"{type(err).__name__}: {err}"


def warn_large(path: str, pixels: int) -> None:
    """Names a file over PIL's decompression-bomb warning limit (PIL's own warning does not)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and pixels > limit:
        warnings.warn(
            f"image {path!r} is close to PIL's decompression-bomb limit ({pixels} pixels >"
            f" {limit}); consider resizing it; PIL.Image.MAX_IMAGE_PIXELS sets the limit",
            Image.DecompressionBombWarning,
            stacklevel=3,
        )


@dataclass
class FolderScan:
    """A folder's images (``sorted(rglob)`` order per class), labels, classes, sizes, mtimes."""

    paths: list[str]
    labels: list[int]
    classes: list[str]
    sizes: list[int]
    mtimes: list[int]


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _listing(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as err:
        raise UserError(
            f"cannot list {folder!r} ({err.strerror or err}); fix its permissions or remove it"
        ) from None


def _is(entry: os.DirEntry, kind: str) -> bool:
    """``entry.is_dir()`` / ``is_file()``; one line for a link that cannot be followed, a FIFO."""
    try:
        if kind == "file" and entry.is_symlink() and not os.path.exists(entry.path):
            raise OSError("its target does not exist")  # is_file() would just say False
        if kind == "dir" or entry.is_file() or entry.is_dir():
            return bool(entry.is_dir() if kind == "dir" else entry.is_file())
    except OSError as err:  # ELOOP: a link to itself, or links pointing at each other
        raise UserError(
            f"{entry.path!r} is a symbolic link that cannot be followed ({err.strerror or err});"
            " remove or fix that link"
        ) from None
    kind = path_kind(entry.path) or "a special file"
    raise UserError(f"{entry.path!r} is {kind}, not an image file; move it out of the data folder")


def _walk(folder: str, parents: frozenset[tuple[int, int]]) -> list[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` of the images under ``folder``, in ``sorted(rglob)`` order."""
    found: list[tuple[str, int, int]] = []
    for entry in _listing(folder):
        if entry.name.startswith("."):  # hidden (.git, .thumbnails, macOS ._ files): not data
            continue
        if _is(entry, "dir"):
            stat = entry.stat()
            if (stat.st_dev, stat.st_ino) in parents:
                raise UserError(
                    f"{entry.path!r} links back to a folder that contains it (a symbolic link"
                    " loop); remove or fix that link"
                )
            found += _walk(entry.path, parents | {(stat.st_dev, stat.st_ino)})
        elif _is_image_name(entry.name) and _is(entry, "file"):
            stat = entry.stat()
            found.append((entry.path, stat.st_size, stat.st_mtime_ns))
    return found


def scan_folder_stats(root: str | Path, threads: int = CHECK_THREADS) -> FolderScan:
    """Lists an image folder (module doc for the layouts), class folders in parallel threads.

    Raises:
        UserError: If the folder does not exist, is not a folder, or holds no image.
    """
    root = Path(root)
    if not root.is_dir():
        kind = path_kind(root)
        what = f"is {kind}, not a folder" if kind else "does not exist"
        raise UserError(
            f"data folder {str(root)!r} {what}; pass --data digits or a folder of images"
        )
    entries = _listing(str(root))
    has_top_images = any(_is_image_name(e.name) and _is(e, "file") for e in entries)
    class_dirs = [e for e in entries if not e.name.startswith(".") and _is(e, "dir")]
    top = frozenset({(root.stat().st_dev, root.stat().st_ino)})
    with ThreadPoolExecutor(max(1, threads)) as pool:
        listed = pool.map(lambda e: _walk(e.path, top), class_dirs)
        per_class = {e.name: files for e, files in zip(class_dirs, listed, strict=True) if files}
    if per_class and not has_top_images:
        classes = list(per_class)
        files = [f for name in classes for f in per_class[name]]
        labels = [i for i, name in enumerate(classes) for _ in per_class[name]]
    else:  # images at the top level: no trustworthy class structure
        classes, files = [], _walk(str(root), top)
        labels = [-1] * len(files)
    if not files:
        raise UserError(
            f"no images found in {str(root)!r} (looked for {', '.join(IMAGE_EXTENSIONS)}); "
            "put images in it, directly or in one sub-folder per class"
        )
    paths, sizes, mtimes = (list(column) for column in zip(*files, strict=True))
    return FolderScan(paths, labels, classes, sizes, mtimes)


def _check_chunk(
    paths: Sequence[str],
) -> tuple[list[tuple[int, str]], list[tuple[int, tuple[int, int]]]]:
    """(position, reason) of the unreadable files and (position, (width, height)) of the others."""
    bad, sizes = [], []
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:  # parsing the header is the check
                sizes.append((i, image.size))
        except READ_ERRORS as err:
            bad.append((i, read_error(err)))
    return bad, sizes


def find_unreadable(
    paths: Sequence[str | Path],
    threads: int = CHECK_THREADS,
    sizes: dict[int, tuple[int, int]] | None = None,
) -> dict[int, str]:
    """``{position in paths: reason}`` of the files PIL cannot open, from their headers only;
    files near the decompression-bomb limit get a warning; ``sizes`` gets the others' sizes."""
    names = [str(p) for p in paths]
    starts = range(0, len(names), _CHUNK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            results = list(pool.map(lambda s: _check_chunk(names[s : s + _CHUNK]), starts))
    bad: dict[int, str] = {}
    for start, (chunk_bad, chunk_sizes) in zip(starts, results, strict=True):
        bad.update((start + i, reason) for i, reason in chunk_bad)
        for i, (width, height) in chunk_sizes:
            warn_large(names[start + i], width * height)
            if sizes is not None:
                sizes[start + i] = (width, height)
    return bad


def index_file(index_dir: str | Path, root: str | Path) -> Path:
    """The index of the image folder ``root`` inside the run folder ``index_dir``."""
    digest = hashlib.sha1(os.fsencode(Path(root).resolve())).hexdigest()[:12]
    # Short enough for the atomic writer's temporary name within the 255-byte name limit.
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(root).resolve().name)
    return Path(index_dir) / INDEX_DIR / f"{name[:64] or 'root'}-{digest}.json"


def other_rank_from_env() -> str:
    """``""`` on global rank 0 (and outside distributed runs), else the variables naming the rank:
    ``RANK`` (torchrun), ``NODE_RANK``/``LOCAL_RANK`` (Lightning's launcher), then
    ``SLURM_PROCID`` (last: Lightning's own processes inherit a SLURM job's variables)."""
    env = os.environ
    launchers = (("RANK",), ("NODE_RANK", "LOCAL_RANK"))
    keys = next((ks for ks in launchers if any(env.get(k) for k in ks)), ("SLURM_PROCID",))
    if all(env.get(key, "0") in ("", "0") for key in keys):
        return ""
    return " ".join(f"{key}={env[key]}" for key in keys if key in env)


#: The per-file lists of an index, kept as columns rather than records to read and compare fast.
COLUMNS = ("paths", "labels", "sizes", "mtimes")


def _read(path: Path, root: Path) -> dict[str, Any] | None:
    """The index at ``path`` if it is one of ``root`` (a damaged or foreign file is ignored)."""
    try:
        data = json.loads(path.read_text())
        ours = data.get("format") == _FORMAT and data.get("root") == str(root.resolve())
        same = len({len(data[key]) for key in COLUMNS}) == 1
        return data if ours and same and isinstance(data["unreadable"], dict) else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _unchanged(index: dict[str, Any] | None, columns: dict[str, Any]) -> bool:
    return index is not None and all(index[k] == v for k, v in columns.items())


@dataclass(frozen=True)
class CheckedFolder:
    """What :func:`checked_folder` found; ``rank``: ``""`` on rank 0; ``checked``: headers read."""

    scan: FolderScan
    unreadable: dict[int, str]
    index: Path
    rank: str = ""
    checked: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the log: what was read, and where the index is."""
        if self.checked:
            what = f"read {self.checked} new or changed image headers in {self.seconds:.1f} s"
        elif self.rank:
            what = f"process {self.rank} took the checked files from rank 0's index"
        else:
            what = "no new or changed file, all headers known from the index"
        return f"{len(self.scan.paths)} images, {what} ({self.index})"


def checked_folder(
    root: str | Path, index_dir: str | Path, threads: int = CHECK_THREADS, wait_s: float = WAIT_S
) -> CheckedFolder:
    """Lists ``root`` and finds its unreadable files, reusing and updating a run folder's index.

    Raises:
        UserError: If the folder cannot be listed, or rank 0's index did not come in time.

    Examples:
        >>> import tempfile
        >>> data, run = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 8)).save(data / "a.png")
        >>> _ = (data / "b.png").write_text("not an image")
        >>> found = checked_folder(data, run)  # reads both headers, writes the index
        >>> found.checked, [Path(found.scan.paths[i]).name for i in found.unreadable]
        (2, ['b.png'])
        >>> checked_folder(data, run).checked  # nothing changed: no header read
        0
    """
    root = Path(root)
    scan = scan_folder_stats(root, threads)
    prefix = len(os.path.join(str(root), ""))
    rel = [p[prefix:] for p in scan.paths]
    columns = dict(zip(COLUMNS, (rel, scan.labels, scan.sizes, scan.mtimes), strict=True))
    path, rank = index_file(index_dir, root), other_rank_from_env()
    deadline = time.monotonic() + wait_s
    index = _read(path, root)
    while rank and not _unchanged(index, columns):  # other ranks take rank 0's, never check
        if time.monotonic() > deadline:
            raise UserError(
                f"process {rank} waited {wait_s:.0f} s for rank 0's index of {str(root)!r} "
                f"({path}); put --out on storage every node sees, and do not change the image "
                "folder while a run starts"
            )
        time.sleep(0.5)
        index = _read(path, root)
    unchanged = _unchanged(index, columns)
    recorded = index["unreadable"] if index is not None else {}
    old = zip(*(index[k] for k in ("paths", "sizes", "mtimes")), strict=True) if index else ()
    known = {r: (s, m) for r, s, m in old}
    stats = zip(rel, scan.sizes, scan.mtimes, strict=True)
    stale = [i for i, (r, s, m) in enumerate(stats) if known.get(r) != (s, m)]
    start = time.perf_counter()
    found = find_unreadable([scan.paths[i] for i in stale], threads)
    seconds = time.perf_counter() - start
    fresh = set(stale)
    bad = {i: recorded[r] for i, r in enumerate(rel) if r in recorded and i not in fresh}
    bad.update((stale[j], reason) for j, reason in found.items())
    if not unchanged:
        data = {"format": _FORMAT, "root": str(root.resolve()), "classes": scan.classes, **columns}
        data["unreadable"] = {rel[i]: why for i, why in sorted(bad.items())}
        atomic_write_text(path, json.dumps(data, separators=(",", ":")))
    return CheckedFolder(scan, dict(sorted(bad.items())), path, rank, len(stale), seconds)


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
    """Converts to 8-bit RGB, scaling 16-bit and float pixels (PIL's own conversion clips them to
    0..255): 16-bit / 257, [0, 1] floats * 255, other ranges min-max (NaN becomes 0)."""
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
        UnreadableImageError: Naming the file: truncated, not an image, or over PIL's bomb guard.
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
        skipped: The files skipped as unreadable (those found when decoding: in workers' copies).
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
