"""Training data: the paper's balanced epochs and a dataset of augmented model inputs, over the exams
of a labelled manifest (:mod:`gmic_core.dataset`, which reads and writes it; ``read_manifest``,
``read_manifests`` and the manifest's types are re-exported here for the training and evaluation
code)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gmic_core.config import GMICConfig
from gmic_core.dataset import ManifestExam, ManifestImage
from gmic_core.dataset import read_manifest as read_manifest
from gmic_core.dataset import read_manifests as read_manifests
from gmic_core.errors import UsageError
from gmic_core.imaging import PixelGrid, read_dicom
from gmic_core.imaging.decoders import FULL_SIZE_CPU, Decoding
from gmic_core.imaging.views import PUBLISHED_VIEW_ORDER
from gmic_core.parallel import process_map
from gmic_core.preprocess import CropMetadata, CroppedBreast, WindowNoise, crop_and_orient, window_input


def read_pixels(image: ManifestImage) -> np.ndarray:
    """The stored pixels of a manifest image (DICOM oriented to the convention, read with the row's
    view as hints; a PNG as is)."""
    return read_stored(image)[0]


def read_stored(
    image: ManifestImage, decoding: Decoding = FULL_SIZE_CPU
) -> tuple[np.ndarray, PixelGrid | None]:
    """:func:`read_pixels` decoded as a model asks (:attr:`Predictor.decoding`), with where the
    pixels lie on the stored image when a DICOM image was read at a reduced resolution level (a PNG
    is always read whole)."""
    if image.path.suffix.lower() == ".png":
        return np.asarray(Image.open(image.path)), None
    mammogram = read_dicom(image.path, image.hints, decoding)
    return mammogram.pixels, mammogram.grid


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
        raise UsageError("only an on-disk crop cache (cache_dir) can be filled ahead of training")
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
