"""Training data: the manifest, the paper's balanced epochs, and a dataset of augmented model inputs.

The manifest is the CSV that ``gmic synth`` writes (one row per image)::

    exam_id,view,file,split,benign,malignant[,mask_benign,mask_malignant,lesions,...]

``file`` and the masks are relative to the manifest's folder (or absolute); ``benign``/``malignant``
are the labels of the breast the view shows; ``split`` is train, val or test; ``lesions`` names the
breast's findings, ``;`` separated (evaluation reports per kind). Images may be DICOM or
published-format 16-bit PNGs (stored as published: R views facing left).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gmic_core.config import GMICConfig
from gmic_core.errors import ExamError
from gmic_core.imaging import read_dicom
from gmic_core.imaging.views import PUBLISHED_VIEW_ORDER, Laterality, View
from gmic_core.parallel import process_map
from gmic_core.preprocess import CropMetadata, CroppedBreast, WindowNoise, crop_and_orient, window_input

REQUIRED_COLUMNS = ("exam_id", "view", "file", "split", "benign", "malignant")


@dataclass(frozen=True)
class ManifestImage:
    exam_id: str
    view: View
    path: Path
    split: str
    benign: int
    malignant: int
    mask_benign: Path | None = None
    mask_malignant: Path | None = None
    lesions: tuple[str, ...] = ()  # the breast's findings, e.g. "mass:spiculated" (optional column)

    @property
    def labels(self) -> tuple[int, int]:
        return self.benign, self.malignant


@dataclass(frozen=True)
class ManifestExam:
    exam_id: str
    split: str
    images: dict[View, ManifestImage]

    @property
    def has_finding(self) -> bool:
        """A benign or malignant finding in either breast (paper section 3.2's positive exams)."""
        return any(image.benign or image.malignant for image in self.images.values())

    def breast_labels(self, side: Laterality) -> tuple[int, int] | None:
        image = self._breast_image(side)
        return image.labels if image else None

    def breast_lesions(self, side: Laterality) -> tuple[str, ...]:
        image = self._breast_image(side)
        return image.lesions if image else ()

    def _breast_image(self, side: Laterality) -> ManifestImage | None:
        """One view of the breast: its labels and findings are the breast's."""
        return next((image for view, image in self.images.items() if view.laterality is side), None)


def read_manifest(path: str | Path) -> list[ManifestExam]:
    """The manifest's exams, in the order they first appear. Raises ExamError naming the row."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ExamError(f"{path}: cannot read the manifest ({error})") from error
    if not rows:
        raise ExamError(f"{path}: the manifest has no rows")
    missing = [column for column in REQUIRED_COLUMNS if column not in rows[0]]
    if missing:
        raise ExamError(f"{path}: the manifest lacks the column(s) {', '.join(missing)}")
    exams: dict[str, dict[View, ManifestImage]] = defaultdict(dict)
    splits: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        try:
            image = ManifestImage(
                exam_id=row["exam_id"],
                view=View(row["view"]),
                path=_resolve(path.parent, row["file"]),
                split=row["split"],
                benign=_label(row["benign"]),
                malignant=_label(row["malignant"]),
                mask_benign=_optional_path(path.parent, row.get("mask_benign")),
                mask_malignant=_optional_path(path.parent, row.get("mask_malignant")),
                lesions=tuple(kind for kind in (row.get("lesions") or "").split(";") if kind),
            )
        except ValueError as error:
            raise ExamError(f"{path}, line {number}: {error}") from error
        if image.view in exams[image.exam_id]:
            raise ExamError(f"{path}, line {number}: exam {image.exam_id} lists {image.view.value} twice")
        if splits.setdefault(image.exam_id, image.split) != image.split:
            raise ExamError(f"{path}, line {number}: exam {image.exam_id} is in two splits")
        exams[image.exam_id][image.view] = image
    return [ManifestExam(exam_id, splits[exam_id], images) for exam_id, images in exams.items()]


def read_manifests(paths: Sequence[str | Path]) -> list[ManifestExam]:
    """The exams of several manifests (each resolving its files against its own folder), in order, so
    that a run can combine datasets without copying them. Raises ExamError for an exam listed twice."""
    exams: list[ManifestExam] = []
    source: dict[str, Path] = {}
    for path in map(Path, paths):
        for exam in read_manifest(path):
            if exam.exam_id in source:
                raise ExamError(f"{path}: exam {exam.exam_id} is listed in {source[exam.exam_id]} too")
            source[exam.exam_id] = path
            exams.append(exam)
    return exams


def _label(value: str) -> int:
    if value.strip() not in ("0", "1"):
        raise ValueError(f"labels are 0 or 1, got {value!r}")
    return int(value)


def _resolve(folder: Path, name: str) -> Path:
    candidate = Path(name)
    return candidate if candidate.is_absolute() else folder / candidate


def _optional_path(folder: Path, name: str | None) -> Path | None:
    return _resolve(folder, name) if name else None


def read_pixels(image: ManifestImage) -> np.ndarray:
    """The stored pixels of a manifest image (DICOM oriented to the convention, or a PNG as is)."""
    if image.path.suffix.lower() == ".png":
        return np.asarray(Image.open(image.path))
    return read_dicom(image.path).pixels


def read_mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 0


def balanced_epoch(exams: Sequence[ManifestExam], epoch: int, seed: int) -> list[ManifestExam]:
    """Paper section 3.2: every exam with a benign or malignant finding plus as many randomly drawn
    negative exams (all of them if there are fewer), shuffled; deterministic for (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    positives = [exam for exam in exams if exam.has_finding]
    negatives = [exam for exam in exams if not exam.has_finding]
    drawn = rng.choice(len(negatives), size=min(len(positives), len(negatives)), replace=False)
    chosen = positives + [negatives[index] for index in sorted(drawn)]
    return [chosen[index] for index in rng.permutation(len(chosen))]


def epoch_images(exams: Sequence[ManifestExam]) -> list[ManifestImage]:
    return [exam.images[view] for exam in exams for view in PUBLISHED_VIEW_ORDER if view in exam.images]


class CropCache:
    """The crop-and-orient half of preprocessing, computed once per image and kept on disk (or in
    memory without a folder): decoding a full-size DICOM and cropping it costs more than a training
    step's augmentation."""

    def __init__(self, config: GMICConfig, folder: Path | None = None) -> None:
        self.config = config
        self.folder = folder
        self.memory: dict[Path, CroppedBreast] = {}
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def get(self, image: ManifestImage) -> CroppedBreast:
        if image.path in self.memory:
            return self.memory[image.path]
        cached = self.file(image)
        if cached is not None and cached.exists():
            with np.load(cached) as stored:
                breast = _unpack(stored)
        else:
            horizontal_flip = (
                False  # DICOM is oriented by the reader; manifest PNGs follow the published data
            )
            breast = crop_and_orient(
                read_pixels(image), image.view.laterality.value, self.config, horizontal_flip
            )
            if cached is not None:
                _pack(cached, breast)
        if cached is None:
            self.memory[image.path] = breast
        return breast

    def file(self, image: ManifestImage) -> Path | None:
        """The image's entry in the on-disk cache (None for an in-memory cache)."""
        if self.folder is None:
            return None
        stat = image.path.stat()
        key = f"{image.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.config.input_scale}"
        return self.folder / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"


def fill_cache(images: Sequence[ManifestImage], cache: CropCache, workers: int) -> int:
    """Compute the missing on-disk cache entries of ``images`` in ``workers`` processes, so that several
    runs (a hyperparameter search) share one preparation; returns how many were computed."""
    if cache.folder is None:
        raise ValueError("only an on-disk crop cache (cache_dir) can be filled ahead of training")
    missing = [image for image in images if not cache.file(image).exists()]  # type: ignore[union-attr]
    process_map(cache.get, missing, workers, chunksize=4)
    return len(missing)


def _pack(path: Path, breast: CroppedBreast) -> None:
    crop = breast.crop
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
    np.savez(
        partial,
        pixels=np.round(breast.pixels).astype(np.uint16),
        window_location=crop.window_location,
        rightmost=(*crop.rightmost_points[0], crop.rightmost_points[1]),
        bottommost=(crop.bottommost_points[0], *crop.bottommost_points[1]),
        distance=crop.distance_from_starting_side,
        flipped=breast.flipped,
        stored_shape=breast.stored_shape,
    )
    os.replace(partial, path)  # concurrent runs sharing the folder never read a half-written entry


def _unpack(stored: np.lib.npyio.NpzFile) -> CroppedBreast:

    rightmost, bottommost = stored["rightmost"].tolist(), stored["bottommost"].tolist()
    crop = CropMetadata(
        window_location=tuple(stored["window_location"].tolist()),
        rightmost_points=((rightmost[0], rightmost[1]), rightmost[2]),
        bottommost_points=(bottommost[0], (bottommost[1], bottommost[2])),
        distance_from_starting_side=int(stored["distance"]),
    )
    return CroppedBreast(
        stored["pixels"], crop, bool(stored["flipped"]), tuple(stored["stored_shape"].tolist())
    )


class GMICDataset(torch.utils.data.Dataset):
    """Items are ``(image index, augmentation seed)``; a seed of -1 means the deterministic test-time
    window. Returns ``(input [1, H, W], labels [2] float, image index)``."""

    def __init__(
        self, images: Sequence[ManifestImage], cache: CropCache, noise: WindowNoise | None = None
    ) -> None:
        self.images = list(images)
        self.cache = cache
        self.noise = noise

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, seed = key
        image = self.images[index]
        augment = self.noise is not None and seed >= 0
        prepared = window_input(
            self.cache.get(image),
            image.view.is_mlo,
            self.cache.config,
            noise=self.noise if augment else None,
            rng=np.random.RandomState(seed) if augment else None,
        )
        return prepared.tensor, torch.tensor(image.labels, dtype=torch.float32), index


class SeededOrder(torch.utils.data.Sampler):
    """Yields ``(index, seed)`` keys in a fixed order, from ``start`` on (to resume mid-epoch)."""

    def __init__(self, keys: Sequence[tuple[int, int]], start: int = 0) -> None:
        self.keys = list(keys)[start:]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)
