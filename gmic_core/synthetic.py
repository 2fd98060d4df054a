"""Synthetic four-view screening exams with lesions and pixel masks, for tests, the demo and training.

Each exam is deterministic for ``(seed, exam index)``: :func:`generate_exam` builds one in memory
(pixels, masks, labels), :func:`write_dataset` writes many as DICOM plus a ground-truth manifest
(``gmic synth OUT_DIR --exams N --seed S``).

The model, per breast (shared by its CC and MLO view, so the two are consistent):

* outline: a rounded cone attached to the chest wall, nipple in profile; MLO views add the axillary
  tail and the pectoral muscle triangle in the upper chest-wall corner;
* thickness falloff toward the skin (the rounded, uncompressed rim of the compressed breast) and a
  thin skin line;
* fibroglandular tissue: power-law noise (spectrum 1/f^3, Burgess et al., Med Phys 2001) warped to
  run toward the nipple, thresholded by the breast density (BI-RADS a-d) inside a retroareolar
  envelope, over fat; vessels;
* quantum noise whose variance follows the signal;
* lesions, each seen in both views: masses (benign: round or oval, circumscribed; malignant:
  irregular or spiculated) and calcification clusters (benign: coarse round; malignant: fine
  pleomorphic or fine linear branching). They differ by morphology and density, not by the image's
  brightest pixels: a benign mass is of equal density to glandular tissue, a malignant one of high
  density (it shows through glandular tissue, which hides much of a benign one), and calcifications
  are never the brightest pixels (coarse benign ones are brighter than malignant ones). Unlabelled
  look-alikes (vascular calcifications, islands of glandular tissue), and density, size and
  brightness varying between exams, keep trivial statistics (maximum, mean, blob counts) from
  telling the classes apart.

Images are written as MG For Presentation (12 or 14 bits, LINEAR windows NORMAL/HARDER/SOFTER, imager
pixel spacing and magnification, laterality, view codes, PatientOrientation, deterministic UIDs) in
the published convention: right views face left, left views face right.

``OUT_DIR/manifest.csv``, one row per image (the training manifest of issue 4/7)::

    exam_id,view,file,split,benign,malignant,mask_benign,mask_malignant,density,lesions

* ``exam_id``: the StudyInstanceUID (what :func:`gmic_core.imaging.load_exam` calls the exam);
* ``view``: R-CC, L-CC, R-MLO or L-MLO; ``file``: the DICOM file, relative to OUT_DIR;
* ``split``: train, val or test, per exam (70/15/15, deterministic for the seed);
* ``benign``, ``malignant``: 0/1 labels of the breast the view shows (as the published per-image
  labels);
* ``mask_benign``, ``mask_malignant``: 8-bit PNG masks (255 = lesion) relative to OUT_DIR, in the
  stored frame of the DICOM file (equal to the reader's frame: files are written unmirrored); empty
  when the breast has no such lesion. A mass's mask is its outline (with its spicules); a
  calcification cluster's is the convex hull of its calcifications, 1 mm wide of them, as a reader
  outlines a cluster;
* ``density``: BI-RADS density a-d; ``lesions``: ``kind:morphology`` of the breast's lesions, ``;``
  separated.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
)
from scipy import ndimage
from scipy.spatial import ConvexHull, Delaunay

from gmic_core.dataset import MANIFEST_NAME, ManifestImage, manifest_columns, write_manifest
from gmic_core.errors import UsageError
from gmic_core.imaging.exam import BreastLabels
from gmic_core.imaging.views import Laterality, View, ViewPosition
from gmic_core.parallel import process_map
from gmic_core.synthetic_config import (
    BENIGN_LESIONS,
    BITS_STORED,
    FULL_SIZE,
    MALIGNANT_CHOICES,
    PHOTOMETRICS,
    TRANSFER_SYNTAX_NAMES,
    Lesion,
    SynthesisConfig,
    spacing_mm,
)

MAGNIFICATION = 1.07  # a typical Estimated Radiographic Magnification Factor for contact mammograms
WORK_SCALE = 4  # smooth fields (outline distance, tissue) are computed at 1/4 resolution
MANIFEST_COLUMNS = manifest_columns(extra=("density",))
SPLITS = (("train", 0.70), ("val", 0.15), ("test", 0.15))
DENSITY_CATEGORIES = "abcd"  # BI-RADS 5th edition breast composition
# DICOM PatientOrientation (PS3.3 C.7.6.1.1.1) of each view in the published convention: rows run
# toward posterior (P) in right views, anterior (A) in left views; columns toward the feet (F) in MLO.
PATIENT_ORIENTATION = {
    View.R_CC: ("P", "L"),
    View.L_CC: ("A", "R"),
    View.R_MLO: ("P", "FL"),
    View.L_MLO: ("A", "FR"),
}
# View Code Sequence items, PS3.16 CID 4014.
VIEW_CODE = {
    ViewPosition.CC: ("399162004", "cranio-caudal"),
    ViewPosition.MLO: ("399368009", "medio-lateral oblique"),
}
UID_ROOT = "2.25."  # PS3.5 B.2: UIDs derived from a UUID


@dataclass(frozen=True)
class PlacedLesion:
    """A lesion and where it sits in the breast: ``depth`` from the chest wall (0) to the nipple (1),
    ``across_cc`` and ``across_mlo`` from the breast's axis toward its lateral (CC) or upper (MLO)
    edge, as fractions of the local half-width; ``size_mm`` its diameter (mass) or cluster diameter."""

    kind: Lesion
    depth: float
    across_cc: float
    across_mlo: float
    size_mm: float
    seed: int


@dataclass(frozen=True)
class BreastSpec:
    """One breast: shared by its CC and MLO views."""

    laterality: Laterality
    density: float  # glandular fraction of the envelope, 0..1
    size: float  # nipple depth as a fraction of the image width
    lesions: tuple[PlacedLesion, ...]
    vascular_calcifications: bool
    seed: int

    @property
    def labels(self) -> tuple[int, int]:
        """(benign, malignant)."""
        return (
            int(any(not lesion.kind.malignant for lesion in self.lesions)),
            int(any(lesion.kind.malignant for lesion in self.lesions)),
        )


@dataclass(frozen=True, eq=False)
class SyntheticView:
    """One rendered view in the stored frame: uint16 pixels (MONOCHROME2, background 0), and the
    benign and malignant lesion masks (bool, None where the view has no such lesion)."""

    view: View
    pixels: np.ndarray = field(repr=False)
    mask_benign: np.ndarray | None = field(repr=False)
    mask_malignant: np.ndarray | None = field(repr=False)


@dataclass(frozen=True, eq=False)
class SyntheticExam:
    index: int
    seed: int
    exam_id: str  # StudyInstanceUID
    split: str
    density: str  # BI-RADS a-d
    breasts: dict[Laterality, BreastSpec]
    views: dict[View, SyntheticView]
    bits_stored: int

    @property
    def labels(self) -> BreastLabels:
        left, right = self.breasts[Laterality.LEFT].labels, self.breasts[Laterality.RIGHT].labels
        return BreastLabels(left[0], left[1], right[0], right[1])


def generate_exam(seed: int, index: int, config: SynthesisConfig = SynthesisConfig()) -> SyntheticExam:
    """Exam ``index`` of the dataset of ``seed``, in memory; the same arguments give the same exam."""
    exam_seq, *view_seqs = np.random.SeedSequence([seed, index]).spawn(5)
    rng = np.random.default_rng(exam_seq)
    category = int(rng.choice(4, p=(0.1, 0.4, 0.4, 0.1)))  # BI-RADS a-d in a screening population
    size = rng.uniform(0.5, 0.82)
    breasts = {
        laterality: _breast(rng, laterality, category, size, config)
        for laterality in (Laterality.RIGHT, Laterality.LEFT)
    }
    gain = float(rng.uniform(0.8, 1.1))
    noise = float(rng.uniform(0.007, 0.013))
    views = {
        view: _render_view(
            view, breasts[view.laterality], config, gain, noise, np.random.default_rng(view_seq)
        )
        for view, view_seq in zip(View, view_seqs, strict=True)
    }
    return SyntheticExam(
        index=index,
        seed=seed,
        exam_id=_uid(seed, index, "study"),
        split=_split(seed, index),
        density=DENSITY_CATEGORIES[category],
        breasts=breasts,
        views=views,
        bits_stored=config.bits_stored,
    )


def _breast(
    rng: np.random.Generator, laterality: Laterality, category: int, size: float, config: SynthesisConfig
) -> BreastSpec:
    density = float(np.clip(rng.uniform(0.25 * category, 0.25 * (category + 1)), 0.04, 0.96))
    kinds: list[Lesion] = []
    for fraction, every in (
        (config.malignant_fraction, MALIGNANT_CHOICES),
        (config.benign_fraction, BENIGN_LESIONS),
    ):
        choices = [kind for kind in every if kind in config.lesions]
        if rng.random() < fraction and choices:
            kinds.append(choices[int(rng.integers(len(choices)))])
    lesions = tuple(
        PlacedLesion(
            kind=kind,
            depth=float(rng.uniform(0.25, 0.8)),
            across_cc=float(rng.uniform(-0.7, 0.7)),
            across_mlo=float(rng.uniform(-0.7, 0.7)),
            size_mm=float(rng.uniform(7.0, 20.0) if kind.is_mass else rng.uniform(5.0, 14.0)),
            seed=int(rng.integers(2**31)),
        )
        for kind in kinds
    )
    return BreastSpec(
        laterality=laterality,
        density=density,
        size=float(np.clip(size + rng.uniform(-0.03, 0.03), 0.45, 0.86)),
        lesions=lesions,
        vascular_calcifications=bool(rng.random() < 0.25),
        seed=int(rng.integers(2**31)),
    )


def _uid(seed: int, index: int, *names: str) -> str:
    digest = hashlib.sha256("/".join(["gmic-synthetic", str(seed), str(index), *names]).encode()).hexdigest()
    return UID_ROOT + str(int(digest[:32], 16))


def _split(seed: int, index: int) -> str:
    draw = np.random.default_rng([seed, index, 7]).random()
    cumulative = 0.0
    for name, share in SPLITS:
        cumulative += share
        if draw < cumulative:
            return name
    return SPLITS[-1][0]


# Signal levels of the rendered attenuation image (arbitrary units, 1 = the brightest tissue).
FAT_LEVEL = 0.32
GLAND_LEVEL = 0.40  # added to fat where the tissue is fully glandular
PECTORAL_LEVEL = 0.62
SKIN_LEVEL = 0.08
SKIN_WIDTH_MM = 1.0
# By malignancy. A benign mass is of equal density: within glandular tissue it displaces tissue of
# about its own attenuation and keeps 30 % of its contrast. A malignant one is of high density (a
# BI-RADS descriptor associated with malignancy): denser, dense up to its margin (a flatter profile
# than a sphere's projection) and showing through glandular tissue. When malignant masses were of
# equal density too, most irregular ones were invisible, even knowing where to look.
MASS_CONTRAST = {False: (0.10, 0.18), True: (0.16, 0.26)}
MASS_MASKING = {False: 0.7, True: 0.35}  # the share of the contrast lost within glandular tissue
MASS_PROFILE = {False: 0.5, True: 0.25}  # thickness (1 - rho^2)^p across the outline
MASS_MARGIN_MM = {False: 0.25, True: 0.5}  # circumscribed; indistinct
CALCIFICATION_CONTRAST = {
    Lesion.COARSE_CALCIFICATIONS: (0.20, 0.30),
    Lesion.PLEOMORPHIC_CALCIFICATIONS: (0.13, 0.22),
    Lesion.LINEAR_CALCIFICATIONS: (0.13, 0.22),
}


@dataclass(frozen=True, eq=False)
class _Anatomy:
    """One view's breast in the canonical frame (chest wall at column 0, facing right), full-size
    pixel units; the work grid is ``WORK_SCALE`` times coarser."""

    edge: np.ndarray  # per full-resolution row: the column of the skin line
    pectoral: np.ndarray | None  # per full-resolution row: the column of the pectoral edge (MLO)
    nipple: tuple[float, float]  # row, column
    work_rows: np.ndarray  # full-resolution row coordinate of each work-grid row
    work_cols: np.ndarray
    distance_mm: np.ndarray  # work grid: distance to the skin line
    interior: np.ndarray  # work grid: breast tissue (no pectoral), bool
    glandular: np.ndarray  # work grid: glandular fraction 0..1


@dataclass(frozen=True, eq=False)
class _Site:
    """Where a lesion is drawn: its centre (full-resolution row, column) in one view."""

    center: tuple[float, float]
    spacing: float
    position: ViewPosition
    cap: float  # the 99.5th percentile of the view's tissue signal
    anatomy: _Anatomy


def _render_view(
    view: View,
    breast: BreastSpec,
    config: SynthesisConfig,
    gain: float,
    noise: float,
    rng: np.random.Generator,
) -> SyntheticView:
    height, width = config.size
    spacing = config.spacing_mm
    anatomy = _anatomy(view.position, breast, config, rng)
    signal = _upsample(_tissue_signal(anatomy, spacing, rng), config.size)
    distance = _upsample(anatomy.distance_mm, config.size)
    columns = np.arange(width, dtype=np.float32) + 0.5
    inside = np.clip(anatomy.edge[:, None].astype(np.float32) - columns[None, :] + 0.5, 0.0, 1.0)
    signal += np.float32(SKIN_LEVEL) * np.exp(-np.maximum(distance, 0.0) / np.float32(SKIN_WIDTH_MM))
    fine = _upsample(_power_law_noise(rng, (height // 2, width // 2), beta=2.0), config.size)
    signal *= 1.0 + np.float32(0.05) * fine
    masks = {False: np.zeros(config.size, bool), True: np.zeros(config.size, bool)}
    lesion_rng = {lesion: np.random.default_rng(lesion.seed) for lesion in breast.lesions}
    cap = float(np.percentile(signal[::8, ::8][inside[::8, ::8] > 0.5], 99.5))
    for lesion in breast.lesions:
        site = _Site(_lesion_center(anatomy, view.position, lesion), spacing, view.position, cap, anatomy)
        renderer = _mass if lesion.kind.is_mass else _calcifications
        renderer(signal, masks[lesion.kind.malignant], lesion, site, lesion_rng[lesion])
    if breast.vascular_calcifications:
        _vascular_calcifications(signal, anatomy, spacing, rng)
    signal += (
        noise
        * np.sqrt(np.maximum(signal, 0.0) / 0.5, dtype=np.float32)
        * rng.standard_normal(config.size, dtype=np.float32)
    )
    top = (1 << config.bits_stored) - 1
    values = np.clip(top * (0.06 + 0.85 * gain * signal), 1, top) * inside
    pixels = np.rint(values).astype(np.uint16)
    mirror = view.laterality is Laterality.RIGHT  # right views face left (the published convention)
    if mirror:
        pixels = np.ascontiguousarray(pixels[:, ::-1])
        masks = {key: np.ascontiguousarray(mask[:, ::-1]) for key, mask in masks.items()}
    return SyntheticView(
        view,
        pixels,
        masks[False] if breast.labels[0] else None,
        masks[True] if breast.labels[1] else None,
    )


def _anatomy(
    position: ViewPosition, breast: BreastSpec, config: SynthesisConfig, rng: np.random.Generator
) -> _Anatomy:
    height, width = config.size
    spacing = config.spacing_mm
    rows = np.arange(height, dtype=np.float64) + 0.5
    depth = breast.size * width
    if position is ViewPosition.CC:
        center = height * rng.uniform(0.46, 0.54)
        upper = height * (0.2 + 0.25 * breast.size) * rng.uniform(0.95, 1.1)  # lateral half is fuller
        lower = height * (0.2 + 0.25 * breast.size) * rng.uniform(0.9, 1.0)
        power = rng.uniform(1.8, 2.5)
        t = np.abs(rows - center) / np.where(rows < center, upper, lower)
        edge = depth * np.clip(1 - t**power, 0, 1) ** (1 / power)
        pectoral = None
    else:
        depth *= rng.uniform(1.0, 1.08)
        nipple_row = height * rng.uniform(0.5, 0.6)
        pectoral_top = width * rng.uniform(0.2, 0.34)
        pectoral_rows = height * rng.uniform(0.45, 0.72)
        top = min(pectoral_top + width * rng.uniform(0.06, 0.16), 0.8 * depth)
        fold = height * rng.uniform(0.86, 0.98)
        upper_power, lower_power = rng.uniform(1.3, 1.8), rng.uniform(1.8, 2.6)
        u = np.clip(rows / nipple_row, 0, 1)
        v = np.clip((rows - nipple_row) / (fold - nipple_row), 0, 1)
        upper_edge = top + (depth - top) * (1 - (1 - u) ** upper_power) ** (1 / upper_power)
        lower_edge = depth * (1 - v**lower_power) ** (1 / lower_power)
        edge = np.where(rows < nipple_row, upper_edge, lower_edge)
        pectoral = pectoral_top * np.clip(1 - rows / pectoral_rows, 0, 1) ** rng.uniform(0.7, 0.95)
    phases = rng.uniform(0, 2 * np.pi, 4)
    wobble = sum(
        0.012 / k * np.sin(2 * np.pi * k * rows / height + phase) for k, phase in enumerate(phases, 1)
    )
    edge = edge * (1 + wobble)
    nipple_row = float(rows[np.argmax(edge)])
    nipple_height, nipple_half_width = rng.uniform(3.0, 6.0) / spacing, rng.uniform(5.0, 8.0) / spacing
    bump = nipple_height * np.cos(np.pi / 2 * np.clip((rows - nipple_row) / nipple_half_width, -1, 1)) ** 2
    edge = np.minimum(edge + bump, 0.93 * width)
    nipple = (nipple_row, float(edge.max()))
    work_shape = (math.ceil(height / WORK_SCALE), math.ceil(width / WORK_SCALE))
    work_rows = (np.arange(work_shape[0]) + 0.5) * height / work_shape[0]
    work_cols = (np.arange(work_shape[1]) + 0.5) * width / work_shape[1]
    breast_mask = work_cols[None, :] < np.interp(work_rows, rows, edge)[:, None]
    # The chest wall side (and, in MLO, the top: the axilla) continues outside the image: no skin there.
    pad_top = 0 if pectoral is None else 1
    padded = np.pad(breast_mask, ((pad_top, 0), (1, 0)), constant_values=True)
    padded[:, 0] = padded[:, 1]
    if pad_top:
        padded[0, :] = padded[1, :]
    scale_mm = (height / work_shape[0] * spacing, width / work_shape[1] * spacing)
    distance = ndimage.distance_transform_edt(padded, sampling=scale_mm)[pad_top:, 1:]
    # Smoothed, so that the creases of the distance map (where the outline has a corner) do not show.
    distance = (ndimage.gaussian_filter(distance, 1.5) * breast_mask).astype(np.float32)
    interior = breast_mask
    if pectoral is not None:
        interior = interior & (work_cols[None, :] > np.interp(work_rows, rows, pectoral)[:, None])
    glandular = _glandular(rng, breast, interior, distance, work_rows, work_cols, nipple, pectoral)
    return _Anatomy(edge, pectoral, nipple, work_rows, work_cols, distance, interior, glandular)


def _glandular(
    rng: np.random.Generator,
    breast: BreastSpec,
    interior: np.ndarray,
    distance: np.ndarray,
    work_rows: np.ndarray,
    work_cols: np.ndarray,
    nipple: tuple[float, float],
    pectoral: np.ndarray | None,
) -> np.ndarray:
    """Fibroglandular fraction on the work grid: a retroareolar envelope times thresholded
    power-law noise stretched along the lines that converge on the nipple (the ducts)."""
    shape = interior.shape
    rows, cols = work_rows[:, None], work_cols[None, :]
    present = interior.any(axis=0)
    first = np.where(present, np.argmax(interior, axis=0), 0)
    last = np.where(present, shape[0] - 1 - np.argmax(interior[::-1], axis=0), 0)
    step = work_rows[1] - work_rows[0]
    centre = (first + last) / 2 * step + step / 2
    half = np.maximum((last - first) / 2 * step, step)
    if pectoral is not None:
        centre = centre - 0.15 * half  # the upper outer quadrant holds more tissue
    across = (rows - centre[None, :]) / half[None, :]
    chest_wall = (
        0.0 if pectoral is None else np.interp(work_rows, np.arange(len(pectoral)) + 0.5, pectoral)[:, None]
    )
    along = (cols - chest_wall) / (nipple[1] - chest_wall)
    spread = 0.55 + 0.3 * breast.density
    envelope = np.exp(-((np.abs(across) / spread) ** 3))
    envelope *= _sigmoid((along - 0.05) / 0.025) * _sigmoid((0.95 - along) / 0.04)
    radius = np.hypot(rows - nipple[0], cols - nipple[1])
    angle = np.arctan2(rows - nipple[0], nipple[1] - cols)
    base = _power_law_noise(rng, (512, 512), beta=3.0)
    # Arc length measured at a radius grown by a third of the breast depth: strands converge on the
    # nipple without crowding into spokes right at it.
    arc = angle * (radius + 0.35 * nipple[1]) / nipple[1]
    stretched = ndimage.map_coordinates(
        base, [radius / nipple[1] * 110.0, arc * 170.0], order=1, mode="grid-wrap"
    ).reshape(shape)
    texture = 0.7 * _power_law_noise(rng, shape, beta=3.0) + 0.6 * stretched
    texture /= texture.std()
    threshold = 1.0 - 2.2 * breast.density
    fraction = envelope * _sigmoid((texture - threshold) / 0.5) * (0.8 + 0.2 * np.tanh(texture - threshold))
    return (fraction * interior * np.clip(distance / 4.0, 0, 1)).astype(np.float32)


def _tissue_signal(anatomy: _Anatomy, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """The work-grid signal: fat and glandular tissue under the thickness falloff, pectoral muscle,
    vessels."""
    rim_mm = rng.uniform(10.0, 18.0)  # radius of the uncompressed rim
    profile = np.sqrt(1 - (1 - np.clip(anatomy.distance_mm / rim_mm, 0, 1)) ** 2)
    signal = (0.3 + 0.7 * profile) * FAT_LEVEL + GLAND_LEVEL * anatomy.glandular * np.sqrt(profile)
    shape = signal.shape
    work_rows, work_cols = anatomy.work_rows, anatomy.work_cols
    if anatomy.pectoral is not None:
        pectoral_edge = np.interp(work_rows, np.arange(len(anatomy.edge)) + 0.5, anatomy.pectoral)
        weight = _sigmoid((pectoral_edge[:, None] - work_cols[None, :]) / (1.5 / spacing))
        weight *= pectoral_edge[:, None] > 0
        fibres = _power_law_noise(rng, shape, beta=2.5)
        # Brightest against the chest wall, fading toward the muscle's free edge.
        towards_edge = np.clip(work_cols[None, :] / np.maximum(pectoral_edge[:, None], 1.0), 0, 1)
        muscle = PECTORAL_LEVEL * (1.0 - 0.15 * towards_edge) + 0.025 * fibres
        signal = (1 - weight) * signal + weight * muscle * (0.3 + 0.7 * profile)
    signal += 0.025 * _power_law_noise(rng, shape, beta=2.5) * profile  # Cooper's ligaments, lobules
    signal += _vessels(rng, anatomy, spacing)
    return signal.astype(np.float32)


def _vessels(rng: np.random.Generator, anatomy: _Anatomy, spacing: float) -> np.ndarray:
    """A few blood vessels running from the chest wall toward the nipple, on the work grid."""
    shape = anatomy.interior.shape
    canvas = np.zeros(shape, np.float32)
    work_spacing = spacing * WORK_SCALE
    for path in _vessel_paths(rng, anatomy, int(rng.integers(1, 4))):
        work_path = path / WORK_SCALE
        sigma = rng.uniform(0.4, 0.8) / work_spacing
        taper = np.linspace(1.0, 0.3, len(work_path))
        _stamp(canvas, work_path, rng.uniform(0.025, 0.045) * taper, max(sigma, 0.7))
    return canvas * anatomy.interior


def _vessel_paths(rng: np.random.Generator, anatomy: _Anatomy, count: int) -> Iterator[np.ndarray]:
    """Smooth random polylines (full-resolution row, column points, about one pixel apart) from near
    the chest wall toward the nipple, each inside the breast."""
    interior_rows = np.flatnonzero(anatomy.interior.any(axis=1))
    if interior_rows.size == 0:
        return
    nipple_row, nipple_col = anatomy.nipple
    for _ in range(count):
        row = anatomy.work_rows[rng.choice(interior_rows)]
        col = nipple_col * rng.uniform(0.02, 0.25)
        if anatomy.pectoral is not None:
            col += float(np.interp(row, np.arange(len(anatomy.pectoral)) + 0.5, anatomy.pectoral))
        heading = math.atan2(nipple_row - row, nipple_col - col) + rng.uniform(-0.4, 0.4)
        length = nipple_col * rng.uniform(0.35, 0.8)
        steps = max(int(length), 2)
        turns = np.cumsum(rng.normal(0.0, 0.0025, steps)) + 0.25 * np.sin(
            np.arange(steps) / (nipple_col * rng.uniform(0.04, 0.1)) + rng.uniform(0, 2 * np.pi)
        )
        angles = heading + turns
        points = np.stack([row + np.cumsum(np.sin(angles)), col + np.cumsum(np.cos(angles))], axis=1)
        yield points


def _vascular_calcifications(
    signal: np.ndarray, anatomy: _Anatomy, spacing: float, rng: np.random.Generator
) -> None:
    """Benign, unlabelled: interrupted, irregular parallel tracks of calcium along part of a vessel."""
    for path in _vessel_paths(rng, anatomy, 1):
        start = int(rng.integers(0, max(len(path) // 2, 1)))
        path = path[start : start + int(len(path) * rng.uniform(0.2, 0.45))]
        if len(path) < 2:
            return
        # Segments of random length (0.5-4 mm) with random gaps, each track on its own.
        direction = np.gradient(path, axis=0)
        normal = np.stack([direction[:, 1], -direction[:, 0]], axis=1)
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-6)
        for side in (1.0, -1.0):
            keep = _random_segments(rng, len(path), spacing)
            offset = side * normal * (rng.uniform(0.4, 0.8) / spacing) + rng.normal(
                0, 0.05 / spacing, path.shape
            )
            strength = rng.uniform(0.12, 0.26) * rng.uniform(0.6, 1.0, len(path))
            points = (path + offset)[keep]
            _stamp(signal, points, strength[keep], max(rng.uniform(0.08, 0.16) / spacing, 0.6))


def _random_segments(rng: np.random.Generator, length: int, spacing: float) -> np.ndarray:
    keep = np.zeros(length, bool)
    position = int(rng.integers(0, 10))
    while position < length:
        run = max(1, int(rng.uniform(0.5, 4.0) / spacing))
        keep[position : position + run] = True
        position += run + max(1, int(rng.uniform(0.5, 3.0) / spacing))
    return keep


def _lesion_center(anatomy: _Anatomy, position: ViewPosition, lesion: PlacedLesion) -> tuple[float, float]:
    """Full-resolution (row, column) of a lesion in this view, inside the breast, clear of the skin
    and the pectoral muscle."""
    margin_mm = lesion.size_mm / 2 + 4.0
    usable = anatomy.interior & (anatomy.distance_mm > margin_mm)
    if not usable.any():
        usable = anatomy.interior if anatomy.interior.any() else np.ones_like(anatomy.interior)
    columns = np.flatnonzero(usable.any(axis=0))
    target = lesion.depth * anatomy.nipple[1] / WORK_SCALE
    column = int(columns[np.argmin(np.abs(columns - target))])
    rows = np.flatnonzero(usable[:, column])
    across = lesion.across_cc if position is ViewPosition.CC else lesion.across_mlo
    middle, half = (rows[0] + rows[-1]) / 2, (rows[-1] - rows[0]) / 2
    row = int(np.clip(round(middle - across * half), rows[0], rows[-1]))
    return float(anatomy.work_rows[row]), float(anatomy.work_cols[column])


def _mass(
    signal: np.ndarray, mask: np.ndarray, lesion: PlacedLesion, site: _Site, rng: np.random.Generator
) -> None:
    """A mass: a projected ellipsoid whose outline is round or oval (circumscribed) or lobulated
    (irregular), with an ill-defined margin and, when spiculated, radiating spicules."""
    center, spacing, position = site.center, site.spacing, site.position
    radius = lesion.size_mm / 2 / spacing
    reach = radius * (2.8 if lesion.kind is Lesion.SPICULATED_MASS else 1.6) + 3
    (top, bottom, left, right), rows, cols = _patch(signal.shape, center, reach)
    if bottom <= top or right <= left:
        return
    dy, dx = rows - center[0], cols - center[1]
    angle = np.arctan2(dy, dx) + (0.0 if position is ViewPosition.CC else rng.uniform(-0.5, 0.5))
    distance = np.hypot(dy, dx)
    outline = np.ones_like(angle)
    if lesion.kind is Lesion.OVAL_MASS:
        ratio, tilt = rng.uniform(0.55, 0.8), rng.uniform(0, np.pi)
        outline = ratio / np.sqrt((ratio * np.cos(angle - tilt)) ** 2 + np.sin(angle - tilt) ** 2)
    malignant = lesion.kind.malignant
    lobes = rng.uniform(0.10, 0.16) if malignant else 0.03
    for harmonic in range(2, 8):
        outline = outline + lobes / math.sqrt(harmonic - 1) * rng.normal() * np.cos(
            harmonic * angle + rng.uniform(0, 2 * np.pi)
        )
    rho = distance / (radius * np.maximum(outline, 0.3))
    body = (np.clip(1 - rho**2, 0, 1) ** MASS_PROFILE[malignant]).astype(np.float32)
    body = ndimage.gaussian_filter(body, MASS_MARGIN_MM[malignant] / spacing)
    contrast = rng.uniform(*MASS_CONTRAST[malignant])
    region = signal[top:bottom, left:right]
    # A mass displaces tissue: over fat it shows its full contrast, within glandular tissue less.
    masking = MASS_MASKING[malignant] * _work_sample(site.anatomy.glandular, rows, cols)
    region += np.float32(contrast) * body * (1 - masking)
    lesion_mask = rho <= 1.0
    if lesion.kind is Lesion.SPICULATED_MASS:
        spicules = np.zeros_like(region)
        for _ in range(int(rng.integers(10, 24))):
            direction = rng.uniform(0, 2 * np.pi)
            length = radius * rng.uniform(0.8, 1.8)
            steps = np.arange(radius * 0.7, radius + length)
            bend = np.cumsum(rng.normal(0, 0.004, len(steps)))
            path = np.stack(
                [
                    center[0] - top + steps * np.sin(direction + bend),
                    center[1] - left + steps * np.cos(direction + bend),
                ],
                axis=1,
            )
            fade = np.clip((radius + length - steps) / length, 0, 1) ** 0.7
            _stamp(spicules, path, contrast * 0.45 * fade, max(0.2 / spacing, 0.6))
        region += spicules
        lesion_mask |= spicules > contrast * 0.15
    mask[top:bottom, left:right] |= lesion_mask


def _calcifications(
    signal: np.ndarray, mask: np.ndarray, lesion: PlacedLesion, site: _Site, rng: np.random.Generator
) -> None:
    """A cluster of calcifications: coarse round (benign), fine pleomorphic or fine linear branching
    (malignant). Each is a small ellipsoid; their brightness is held under the view's tissue maximum
    plus their own contrast, so that they are never simply the brightest pixels."""
    center, spacing, position = site.center, site.spacing, site.position
    spread = lesion.size_mm / 2 / spacing
    if lesion.kind is Lesion.COARSE_CALCIFICATIONS:
        count = int(rng.integers(3, 8))
        offsets = rng.normal(0, spread / 1.5, (count, 2))
        sizes_mm = rng.uniform(0.8, 1.8, count)
        elongation = rng.uniform(0.8, 1.0, count)
        orientation = rng.uniform(0, np.pi, count)
    elif lesion.kind is Lesion.PLEOMORPHIC_CALCIFICATIONS:
        count = int(rng.integers(10, 26))
        offsets = rng.normal(0, spread / 2.2, (count, 2))
        sizes_mm = rng.uniform(0.2, 0.55, count)
        elongation = rng.uniform(0.35, 1.0, count)
        orientation = rng.uniform(0, np.pi, count)
    else:
        offsets, orientation = _branching(rng, spread)
        count = len(offsets)
        sizes_mm = rng.uniform(0.45, 1.2, count)
        elongation = rng.uniform(0.2, 0.4, count)
    if position is ViewPosition.MLO:
        turn = rng.uniform(-0.6, 0.6)
        rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        offsets = offsets @ rotation.T
        orientation = orientation + turn
    low, high = CALCIFICATION_CONTRAST[lesion.kind]
    reach = float(np.abs(offsets).max(initial=0.0)) + 2.0 / spacing + 3
    (top, bottom, left, right), rows, cols = _patch(signal.shape, center, reach)
    if bottom <= top or right <= left:
        return
    region = signal[top:bottom, left:right]
    calcium = np.zeros_like(region)
    for (dy, dx), size, ratio, theta in zip(offsets, sizes_mm, elongation, orientation, strict=True):
        semi_major = max(size / 2 / spacing, 0.6)
        weight = min(1.0, (size / 2 / spacing) ** 2 / semi_major**2) * rng.uniform(low, high)
        y, x = rows - (center[0] + dy), cols - (center[1] + dx)
        along = x * math.cos(theta) + y * math.sin(theta)
        across = -x * math.sin(theta) + y * math.cos(theta)
        rho2 = (along / semi_major) ** 2 + (across / max(semi_major * ratio, 0.6)) ** 2
        calcium = np.maximum(calcium, (weight * np.sqrt(np.clip(1 - rho2, 0, 1))).astype(np.float32))
    calcium = ndimage.gaussian_filter(calcium, max(0.05 / spacing, 0.4))
    headroom = np.clip(site.cap + high - region, 0.5 * calcium, None)
    region += np.minimum(calcium, headroom)
    mask[top:bottom, left:right] |= _cluster_outline(calcium >= min(0.02, float(calcium.max())), spacing)


def _cluster_outline(calcified: np.ndarray, spacing: float) -> np.ndarray:
    """What a reader outlines for a calcification cluster: the convex hull of its calcifications,
    1 mm wide of them (at least a pixel, so the hull never degenerates to a line). A blurred and
    thresholded dot mask broke sparse clusters into fragments, or lost them entirely."""
    margin = ndimage.distance_transform_edt(~calcified) <= max(1.0 / spacing, 1.5)
    points = np.argwhere(margin)
    hull = Delaunay(points[ConvexHull(points).vertices])
    grid = np.indices(calcified.shape).reshape(2, -1).T
    return (hull.find_simplex(grid) >= 0).reshape(calcified.shape)


def _branching(rng: np.random.Generator, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Calcification centres and orientations along two to four branching duct segments."""
    points, angles = [], []
    trunk = rng.uniform(0, 2 * np.pi)
    for branch in range(int(rng.integers(2, 5))):
        start = np.zeros(2) if branch == 0 else points[int(rng.integers(len(points)))]
        heading = trunk + (0 if branch == 0 else rng.choice([-1, 1]) * rng.uniform(0.4, 0.9))
        length = spread * rng.uniform(0.8, 1.6)
        for distance in np.arange(0, length, spread / rng.uniform(4, 7)):
            offset = start + distance * np.array([math.sin(heading), math.cos(heading)])
            points.append(offset + rng.normal(0, spread * 0.03, 2))
            angles.append(heading)
    return np.array(points), np.array(angles)


def _patch(
    shape: tuple[int, ...], center: tuple[float, float], reach: float
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    top, bottom = max(int(center[0] - reach), 0), min(int(center[0] + reach) + 1, shape[0])
    left, right = max(int(center[1] - reach), 0), min(int(center[1] + reach) + 1, shape[1])
    rows = (np.arange(top, bottom, dtype=np.float32) + 0.5)[:, None]
    cols = (np.arange(left, right, dtype=np.float32) + 0.5)[None, :]
    return (top, bottom, left, right), rows, cols


def _stamp(canvas: np.ndarray, points: np.ndarray, heights: np.ndarray, sigma: float) -> None:
    """Add a Gaussian line of the given peak heights through ``points`` (row, column; about one
    pixel apart), in place."""
    reach = 4 * sigma + 2
    top = max(int(points[:, 0].min() - reach), 0)
    bottom = min(int(points[:, 0].max() + reach) + 1, canvas.shape[0])
    left = max(int(points[:, 1].min() - reach), 0)
    right = min(int(points[:, 1].max() + reach) + 1, canvas.shape[1])
    if bottom <= top or right <= left:
        return
    local = np.zeros((bottom - top, right - left), np.float32)
    rows = np.round(points[:, 0] - top).astype(int)
    cols = np.round(points[:, 1] - left).astype(int)
    keep = (rows >= 0) & (rows < local.shape[0]) & (cols >= 0) & (cols < local.shape[1])
    step = np.hypot(*np.diff(points, axis=0).T).mean() if len(points) > 1 else 1.0
    np.add.at(local, (rows[keep], cols[keep]), (heights[keep] * step * math.sqrt(2 * math.pi) * sigma))
    canvas[top:bottom, left:right] += ndimage.gaussian_filter(local, sigma)


def _work_sample(work: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A work-grid field at full-resolution pixel centres (broadcast rows x cols)."""
    grid_rows = np.broadcast_to(rows / WORK_SCALE - 0.5, np.broadcast_shapes(rows.shape, cols.shape))
    grid_cols = np.broadcast_to(cols / WORK_SCALE - 0.5, grid_rows.shape)
    return ndimage.map_coordinates(work, [grid_rows, grid_cols], order=1, mode="nearest").astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _power_law_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Gaussian noise with power spectrum proportional to 1/f^beta, zero mean and unit deviation."""
    height, width = shape
    frequency = np.hypot(scipy.fft.fftfreq(height)[:, None], scipy.fft.rfftfreq(width)[None, :])
    frequency[0, 0] = 1.0
    amplitude = (frequency ** (-beta / 2)).astype(np.float32)
    amplitude[0, 0] = 0.0
    spectrum = rng.standard_normal(amplitude.shape, dtype=np.float32) + 1j * rng.standard_normal(
        amplitude.shape, dtype=np.float32
    )
    field = scipy.fft.irfft2(spectrum.astype(np.complex64) * amplitude, s=shape, workers=-1)
    return ((field - field.mean()) / field.std()).astype(np.float32)


def _upsample(work: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(work, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


TRANSFER_SYNTAXES = dict(zip(TRANSFER_SYNTAX_NAMES, (ExplicitVRLittleEndian, JPEG2000Lossless), strict=True))
WINDOWS = (("NORMAL", 1.0, 0.0), ("HARDER", 0.8, 0.05), ("SOFTER", 1.25, -0.05))  # name, width, centre shift


def write_dataset(
    out_dir: Path | str,
    exams: int,
    seed: int,
    size: tuple[int, int] = FULL_SIZE,
    transfer_syntax: str = "jpeg2000-lossless",
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    malignant_fraction: float = SynthesisConfig.malignant_fraction,
    benign_fraction: float = SynthesisConfig.benign_fraction,
    lesions: frozenset[Lesion] = SynthesisConfig.lesions,
    workers: int = 1,
) -> Path:
    """Write ``exams`` exams as ``OUT_DIR/exam_NNNN/<VIEW>.dcm`` with masks under ``OUT_DIR/masks``
    and the manifest (format in the module docstring); returns the manifest's path. ``workers`` > 1
    writes exams in that many processes; the files are the same."""
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise UsageError(f"transfer syntax must be one of {', '.join(TRANSFER_SYNTAXES)}")
    if photometric not in PHOTOMETRICS:
        raise UsageError(f"photometric interpretation must be one of {', '.join(PHOTOMETRICS)}")
    if bits_stored not in BITS_STORED:
        raise UsageError(f"bits stored must be one of {', '.join(map(str, BITS_STORED))}")
    out = Path(out_dir)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    config = SynthesisConfig(size, malignant_fraction, benign_fraction, bits_stored, frozenset(lesions))
    write = functools.partial(_write_exam, out, seed, config, transfer_syntax, photometric)
    rows = [row for per_exam in process_map(write, range(exams), workers) for row in per_exam]
    images = [image for image, _ in rows]
    return write_manifest(out / MANIFEST_NAME, images, [{"density": density} for _, density in rows])


def _write_exam(
    out: Path, seed: int, config: SynthesisConfig, transfer_syntax: str, photometric: str, index: int
) -> list[tuple[ManifestImage, str]]:
    """The exam's files, and its manifest rows with their density."""
    exam = generate_exam(seed, index, config)
    folder = out / f"exam_{index:04d}"
    folder.mkdir(exist_ok=True)
    rows = []
    for view, image in exam.views.items():
        file = folder / f"{view.value}.dcm"
        write_image(file, exam, view, transfer_syntax, photometric)
        benign, malignant = exam.breasts[view.laterality].labels
        manifest_image = ManifestImage(
            exam_id=exam.exam_id,
            view=view,
            path=file,
            split=exam.split,
            benign=benign,
            malignant=malignant,
            mask_benign=_write_mask(out, index, view, "benign", image.mask_benign),
            mask_malignant=_write_mask(out, index, view, "malignant", image.mask_malignant),
            lesions=tuple(lesion.kind.value for lesion in exam.breasts[view.laterality].lesions),
        )
        rows.append((manifest_image, exam.density))
    return rows


def _write_mask(out: Path, index: int, view: View, kind: str, mask: np.ndarray | None) -> Path | None:
    if mask is None:
        return None
    path = out / "masks" / f"exam_{index:04d}_{view.value}_{kind}.png"
    Image.fromarray(mask.astype(np.uint8) * 255).save(path, optimize=True)
    return path


def write_image(
    path: Path | str | BinaryIO,
    exam: SyntheticExam,
    view: View,
    transfer_syntax: str = "jpeg2000-lossless",
    photometric: str = "MONOCHROME2",
) -> None:
    """Write one view of an exam as a DICOM file (a path or a binary file object)."""
    image = exam.views[view]
    dataset = _dicom(exam, image, photometric)
    _encode(dataset, image.pixels, photometric, exam.bits_stored, TRANSFER_SYNTAXES[transfer_syntax])
    dataset.save_as(path, enforce_file_format=True)


def _dicom(exam: SyntheticExam, image: SyntheticView, photometric: str) -> Dataset:
    """An MG For Presentation header as a vendor writes it (PS3.3 A.26: Digital Mammography X-Ray
    Image IOD)."""
    view = image.view
    position = view.position
    index = exam.index
    acquired = datetime(2020, 1, 6, 8, 0) + timedelta(days=index, minutes=list(View).index(view))
    sop_uid = _uid(exam.seed, index, view.value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = exam.exam_id
    ds.SeriesInstanceUID = _uid(exam.seed, index, "series")
    ds.FrameOfReferenceUID = _uid(exam.seed, index, "frame", view.laterality.value)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = acquired.strftime("%Y%m%d")
    ds.StudyTime = "080000"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = acquired.strftime("%H%M%S")
    ds.AccessionNumber = f"SYN{exam.seed % 10000:04d}{index:06d}"
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "GMIC Reader"
    ds.ManufacturerModelName = "Synthetic mammography"
    ds.InstitutionName = "Synthetic data"
    ds.StudyDescription = "Screening mammography (synthetic)"
    ds.PatientName = f"Synthetic^Exam {exam.seed}-{index:04d}"
    ds.PatientID = f"SYN-{exam.seed}-{index:04d}"
    ds.PatientBirthDate = f"{1940 + (index * 7 + exam.seed) % 40}0101"
    ds.PatientSex = "F"
    ds.BodyPartExamined = "BREAST"
    ds.ViewPosition = position.value
    ds.ImageLaterality = view.laterality.value
    ds.PatientOrientation = list(PATIENT_ORIENTATION[view])
    code, meaning = VIEW_CODE[position]
    view_code = Dataset()
    view_code.CodeValue, view_code.CodingSchemeDesignator, view_code.CodeMeaning = code, "SCT", meaning
    view_code.ViewModifierCodeSequence = Sequence([])
    ds.ViewCodeSequence = Sequence([view_code])
    ds.ImagerPixelSpacing = [f"{spacing_mm(image.pixels.shape) * MAGNIFICATION:.6f}"] * 2
    ds.EstimatedRadiographicMagnificationFactor = f"{MAGNIFICATION}"
    ds.BreastImplantPresent = "NO"
    ds.OrganExposed = "BREAST"
    ds.SeriesNumber = 1
    ds.InstanceNumber = list(View).index(view) + 1
    ds.BurnedInAnnotation = "NO"
    ds.QualityControlImage = "NO"
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.VOILUTFunction = "LINEAR"
    top = (1 << exam.bits_stored) - 1
    tissue = image.pixels[image.pixels > 0]
    low, high = np.percentile(tissue, (0.5, 99.9)) if tissue.size else (0, top)
    width, center = max(float(high - low), 2.0), float(low + high) / 2
    windows = [(center + shift * width, width * scale) for _, scale, shift in WINDOWS]
    if photometric == "MONOCHROME1":  # the same display after inversion: PS3.3 C.11.2.1.2.1
        windows = [(top - c + 1, w) for c, w in windows]
    ds.WindowCenter = [f"{c:.1f}" for c, _ in windows]
    ds.WindowWidth = [f"{w:.1f}" for _, w in windows]
    ds.WindowCenterWidthExplanation = [name for name, _, _ in WINDOWS]
    ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
    ds.LossyImageCompression = "00"
    return ds


def _encode(
    dataset: Dataset, pixels: np.ndarray, photometric: str, bits_stored: int, transfer_syntax: str
) -> None:
    stored = pixels if photometric == "MONOCHROME2" else ((1 << bits_stored) - 1 - pixels).astype(np.uint16)
    dataset.Rows, dataset.Columns = stored.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, bits_stored, bits_stored - 1
    dataset.PixelRepresentation = 0
    dataset.PixelPaddingValue = 0 if photometric == "MONOCHROME2" else (1 << bits_stored) - 1
    if transfer_syntax == ExplicitVRLittleEndian:
        dataset.PixelData = stored.tobytes()
        dataset["PixelData"].VR = "OW"
    else:
        dataset.compress(transfer_syntax, stored, generate_instance_uid=False)
