"""Running GMIC on exams: device and precision, ensembles, test-time augmentation, and results
mapped back to the stored images.

A :class:`Predictor` loads its checkpoints once and keeps them resident on its device; each call
preprocesses the views of one exam, runs them as one batch through every model of the ensemble
and returns an :class:`ExamResult` whose boxes and maps are in stored-image pixels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from gmic_core.choices import Precision, PrecisionChoice
from gmic_core.config import GMICConfig
from gmic_core.errors import CheckpointError, ExamError, PreprocessingError, UsageError
from gmic_core.imaging import Exam, Mammogram, PixelGrid, decode_view
from gmic_core.imaging.decoders import FULL_SIZE_CPU, Decoding
from gmic_core.imaging.views import PUBLISHED_VIEW_ORDER, Laterality, View
from gmic_core.model import GMICOutput, LoadedCheckpoint, load_checkpoint
from gmic_core.model.fusion import fold_batch_norms
from gmic_core.preprocess import AxisMap, BackgroundThreshold, Geometry, WindowNoise, preprocess

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Configuration fields that shape the model input: every member of an ensemble must agree on them.
_INPUT_FIELDS = ("input_height", "input_width", "saliency_height", "saliency_width", "input_scale")


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: the CUDA GPU if there is one, then Apple's MPS, then the CPU."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_description(device: torch.device) -> str:
    """A human-readable device name (the GPU's model, or the CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def supported_precisions(device: torch.device) -> list[Precision]:
    """fp32 always; bf16 on GPUs and on CPUs with native bf16; fp16 on GPUs."""
    if device.type == "cpu":
        return ["fp32", "bf16"] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ["fp32"]
    return ["fp32", "bf16", "fp16"]


def resolve_precision(device: torch.device, precision: PrecisionChoice) -> Precision:
    """The precision to run in: a named one once checked against the device, or for ``"auto"`` bf16
    where the device computes it natively (a CPU with AVX-512 BF16 or AMX, a CUDA GPU with bf16
    arithmetic), otherwise fp32. A CPU with AVX-512 but neither (oneDNN then emulates bf16) and Apple's
    MPS get fp32. bf16 holds the tolerance that ``tests/core/test_inference.py`` checks (fusion
    probabilities within 0.02 of fp32; 0.0032 measured on full-size exams, docs/scale.md) and runs
    inference 1.5 times faster on the development CPU.

    The result is part of the model's identity (:attr:`ModelIdentity.key`), so every entry point
    resolves through here: a site calibrated with ``auto`` is found again by ``predict``, ``triage``
    and the workstation on the same machine."""
    if precision != "auto":
        if precision not in supported_precisions(device):
            raise UsageError(f"{precision} is not supported on {device_description(device)}; use fp32")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return "bf16"
    return "fp32"


@dataclass(frozen=True)
class ModelIdentity:
    """Which model produced a result: enough to tell whether a cached result is still valid."""

    names: tuple[str, ...]
    checkpoint_sha256: tuple[str, ...]
    top_t: tuple[float, ...]
    precision: str
    device: str
    tta: int
    decoding: str = ""  # Decoding.key: empty for the full-size decode

    @property
    def key(self) -> str:
        """One string that changes whenever the weights, top-t (the ROI pooling fraction, which
        changes every score), precision, augmentation or the JPEG 2000 resolution level the model
        reads (half-size models: it changes scores slightly) change."""
        top_t = ",".join(repr(t) for t in self.top_t)
        decoding = f"|{self.decoding}" if self.decoding else ""
        return "+".join(self.checkpoint_sha256) + f"|t{top_t}|{self.precision}|tta{self.tta}{decoding}"


class Roi(NamedTuple):
    """An ROI patch that covers image pixels: its stored-frame box (top, left, bottom, right), its
    attention, the ensemble member that chose it, and its position among the view's patches."""

    box: tuple[int, int, int, int]
    attention: float
    member: int
    patch: int


@dataclass(frozen=True)
class ViewResult:
    """GMIC's findings on one view; every coordinate that is not ``patch_locations`` is stored-frame.

    Probabilities are ``(benign, malignant)``. For an ensemble they are the members' means; the patch
    fields hold every member's K patches in turn, ``roi_member`` telling which member chose each.
    The published ROI selection may place a patch wholly in the window's padding: it stays among the
    patches, flagged in ``patch_outside_image``, and has no box in ``roi_boxes``. :attr:`rois` pairs
    each box with its patch.
    """

    view: View
    y_global: tuple[float, float]
    y_local: tuple[float, float]
    y_fusion: tuple[float, float]
    saliency: np.ndarray  # [2, h, w] on the model-frame grid; see saliency_in_stored
    attention: tuple[float, ...]
    patch_locations: tuple[tuple[int, int], ...]  # upper-left (row, column) in the model frame
    patch_outside_image: tuple[bool, ...]  # per patch
    roi_boxes: tuple[tuple[int, int, int, int], ...]  # (top, left, bottom, right) in stored pixels
    roi_member: tuple[int, ...]
    geometry: Geometry
    patches: np.ndarray | None = None  # [M * K, h_c, w_c], the standardised pixels the model saw

    def __post_init__(self) -> None:
        if len(self.roi_boxes) != self.patch_outside_image.count(False):
            raise ValueError(
                f"{self.view.value}: {len(self.roi_boxes)} ROI boxes for "
                f"{self.patch_outside_image.count(False)} patches inside the image"
            )

    @property
    def rois(self) -> tuple[Roi, ...]:
        """The patches that cover image pixels, with their boxes, in patch order."""
        inside = [index for index, outside in enumerate(self.patch_outside_image) if not outside]
        return tuple(
            Roi(box, self.attention[index], self.roi_member[index], index)
            for box, index in zip(self.roi_boxes, inside, strict=True)
        )

    @property
    def benign(self) -> float:
        return self.y_fusion[0]

    @property
    def malignant(self) -> float:
        return self.y_fusion[1]

    def saliency_in_stored(self, stored_shape: tuple[int, int] | None = None) -> np.ndarray:
        """``[2, H, W]`` saliency maps on the stored image (or a proportionally smaller version of
        it), nearest neighbour as in paper section 3.5, zero outside the model's window."""
        return self.geometry.model_map_to_stored(self.saliency, stored_shape=stored_shape)


@dataclass(frozen=True)
class BreastResult:
    """Per breast: the mean of its CC and MLO predictions (paper section 3.2)."""

    laterality: Laterality
    benign: float
    malignant: float
    views: tuple[View, ...]  # the views the mean is taken over
    missing_views: tuple[View, ...]


@dataclass(frozen=True)
class ExamResult:
    exam_id: str
    views: dict[View, ViewResult]
    breasts: dict[Laterality, BreastResult]
    model: ModelIdentity
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def malignancy_score(self) -> float:
        """The exam-level malignancy score: the highest of its breasts."""
        return max(breast.malignant for breast in self.breasts.values())

    def to_json(self) -> dict[str, Any]:
        """Everything but the patch pixels, as plain JSON values at full float precision."""
        return {
            "exam_id": self.exam_id,
            "views": {view.value: _view_to_json(result) for view, result in _ordered(self.views)},
            "breasts": {
                side.value: (
                    {
                        "benign": breast.benign,
                        "malignant": breast.malignant,
                        "views": [view.value for view in breast.views],
                        "missing_views": [view.value for view in breast.missing_views],
                    }
                    if (breast := self.breasts.get(side))
                    else None
                )
                for side in (Laterality.LEFT, Laterality.RIGHT)
            },
            "model": dataclasses.asdict(self.model),
            "timings": dict(self.timings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExamResult:
        views = {View(name): _view_from_json(View(name), value) for name, value in data["views"].items()}
        breasts = {
            Laterality(side): BreastResult(
                Laterality(side),
                value["benign"],
                value["malignant"],
                tuple(View(v) for v in value["views"]),
                tuple(View(v) for v in value["missing_views"]),
            )
            for side, value in data["breasts"].items()
            if value is not None
        }
        model = ModelIdentity(
            **{key: tuple(v) if isinstance(v, list) else v for key, v in data["model"].items()}
        )
        return cls(data["exam_id"], views, breasts, model, dict(data.get("timings", {})))


def _ordered(views: Mapping[View, ViewResult]) -> Iterator[tuple[View, ViewResult]]:
    return ((view, views[view]) for view in PUBLISHED_VIEW_ORDER if view in views)


def _view_to_json(result: ViewResult) -> dict[str, Any]:
    geometry = result.geometry
    return {
        "benign": result.benign,
        "malignant": result.malignant,
        "y_global": list(result.y_global),
        "y_local": list(result.y_local),
        "y_fusion": list(result.y_fusion),
        "attention": list(result.attention),
        "patch_locations": [
            {"row": row, "column": column, "outside_image": outside}
            for (row, column), outside in zip(result.patch_locations, result.patch_outside_image, strict=True)
        ],
        "roi_boxes": [list(b) for b in result.roi_boxes],
        "roi_member": list(result.roi_member),
        "saliency": result.saliency.tolist(),
        "geometry": {
            "stored_shape": list(geometry.stored_shape),
            "crop_box": list(geometry.crop_box),
            "flipped": geometry.flipped,
            "rows": [geometry.rows.offset, geometry.rows.step],
            "cols": [geometry.cols.offset, geometry.cols.step],
            "model_shape": list(geometry.model_shape),
        },
    }


def _view_from_json(view: View, data: Mapping[str, Any]) -> ViewResult:
    g = data["geometry"]
    geometry = Geometry(
        stored_shape=tuple(g["stored_shape"]),
        crop_box=tuple(g["crop_box"]),
        flipped=g["flipped"],
        rows=AxisMap(*g["rows"]),
        cols=AxisMap(*g["cols"]),
        model_shape=tuple(g["model_shape"]),
    )
    patches = data["patch_locations"]
    boxes = [tuple(b) for b in data["roi_boxes"]]
    if patches and isinstance(patches[0], list):
        # Written before patches were flagged (results stored by earlier versions): [row, column]
        # pairs, and a box for every patch, of zero area for a patch outside the image.
        locations = [tuple(p) for p in patches]
        outside = [not (bottom > top and right > left) for top, left, bottom, right in boxes]
        boxes = [box for box, out in zip(boxes, outside, strict=True) if not out]
    else:
        locations = [(p["row"], p["column"]) for p in patches]
        outside = [p["outside_image"] for p in patches]
    return ViewResult(
        view=view,
        y_global=tuple(data["y_global"]),
        y_local=tuple(data["y_local"]),
        y_fusion=tuple(data["y_fusion"]),
        saliency=np.asarray(data["saliency"], dtype=np.float32),
        attention=tuple(data["attention"]),
        patch_locations=tuple(locations),
        patch_outside_image=tuple(outside),
        roi_boxes=tuple(boxes),
        roi_member=tuple(data["roi_member"]),
        geometry=geometry,
    )


@dataclass(frozen=True)
class ViewImage:
    """One stored view to run: its pixels, the exam's published ``horizontal_flip`` flag, and where
    the pixels lie on the stored image when they were decoded at a reduced resolution level."""

    pixels: np.ndarray
    horizontal_flip: bool = False
    grid: PixelGrid | None = None

    @classmethod
    def of(cls, mammogram: Mammogram, horizontal_flip: bool) -> ViewImage:
        return cls(mammogram.pixels, horizontal_flip, mammogram.grid)


@dataclass(frozen=True)
class PreparedExam:
    """An exam's model inputs, ready for :meth:`Predictor.run`: the standard views present in the
    published order, their preprocessed batch ``[V, 1, H, W]`` and geometries, and the stored images
    where test-time augmentation needs them again. Picklable, so that worker processes can make it."""

    exam_id: str
    views: tuple[View, ...]
    batch: torch.Tensor
    geometries: tuple[Geometry, ...]
    images: Mapping[View, ViewImage] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def prepare_exam(
    exam_id: str,
    images: Mapping[View, ViewImage],
    config: GMICConfig,
    background_threshold: BackgroundThreshold = None,
    keep_images: bool = False,
) -> PreparedExam:
    """Preprocess the standard views of one exam (any subset of the four) for models of ``config``.
    Needs no model, so it can run in a thread or process that feeds the one holding the device."""
    if not images:
        raise ExamError(f"exam {exam_id} has no standard view to analyse")
    views = tuple(view for view in PUBLISHED_VIEW_ORDER if view in images)
    started = time.perf_counter()
    prepared = [_preprocess_view(view, images[view], config, background_threshold) for view in views]
    return PreparedExam(
        exam_id=exam_id,
        views=views,
        batch=torch.stack([p.tensor for p in prepared]),
        geometries=tuple(p.geometry for p in prepared),
        images=dict(images) if keep_images else None,
        timings={"preprocess_s": time.perf_counter() - started},
    )


def _preprocess_view(
    view: View,
    image: ViewImage,
    config: GMICConfig,
    background_threshold: BackgroundThreshold,
    rng: np.random.RandomState | None = None,
):
    try:
        return preprocess(
            image.pixels,
            view.laterality.value,
            view.is_mlo,
            config,
            horizontal_flip=image.horizontal_flip,
            background_threshold=background_threshold,
            grid=image.grid,
            noise=WindowNoise() if rng is not None else None,
            rng=rng,
        )
    except PreprocessingError as error:
        raise PreprocessingError(f"{view.value}: {error}") from error


class Predictor:
    """Runs an ensemble of GMIC checkpoints on exams.

    Weights are moved to the device once, with batch norms folded into their convolutions.
    ``precision`` "auto" is resolved for the device (:func:`resolve_precision`); "bf16"/"fp16" runs the networks under autocast (ROI retrieval always runs in
    float32). ``compile`` hands the models to ``torch.compile`` with weight freezing. It is
    off by default, measured on the 2-core development CPU in bf16 (docs/scale.md): each batch shape
    compiles once for 15 CPU seconds, after which an exam costs 1.5 instead of 2.5 CPU seconds, so it
    pays after some 15 exams per shape (30 in a run mixing three- and four-view exams): worth it for
    an archive, a loss for a day's worklist or a calibration set, and never for the workstation. ``tta`` > 0 averages the probabilities over
    that many random windows (paper section 3.2, the window noise of SPEC.md 6.1); saliency maps and
    ROIs then still come from the deterministic window. ``reduced_levels`` lets a half-size model read
    JPEG 2000 at a reduced resolution level (:func:`decoding_for`): faster, but it changes scores,
    so it is part of the model key.
    """

    def __init__(
        self,
        checkpoints: Sequence[LoadedCheckpoint],
        device: str | torch.device = "auto",
        precision: PrecisionChoice = "fp32",
        tta: int = 0,
        background_threshold: BackgroundThreshold = None,
        seed: int = 0,
        compile: bool = False,
        reduced_levels: bool = False,
    ) -> None:
        if not checkpoints:
            raise CheckpointError("no model given: pass at least one checkpoint")
        configs = [checkpoint.config for checkpoint in checkpoints]
        for config in configs[1:]:
            if any(getattr(config, name) != getattr(configs[0], name) for name in _INPUT_FIELDS):
                raise CheckpointError(
                    "the models of an ensemble must share input size, saliency grid and scale"
                )
        self.device = select_device(device)
        self.precision = resolve_precision(self.device, precision)
        self.tta = tta
        self.background_threshold = background_threshold
        self.seed = seed
        self.checkpoints = tuple(checkpoints)
        self.compiled = compile
        self.decoding = decoding_for(checkpoints[0].config, self.device, reduced_levels)
        self.models = tuple(
            prepare_for_inference(checkpoint.model, self.device, compile) for checkpoint in checkpoints
        )
        self.identity = ModelIdentity(
            names=tuple(checkpoint.card.name for checkpoint in checkpoints),
            checkpoint_sha256=tuple(checkpoint.sha256 for checkpoint in checkpoints),
            top_t=tuple(checkpoint.config.top_t for checkpoint in checkpoints),
            precision=self.precision,
            device=device_description(self.device),
            tta=tta,
            decoding=self.decoding.key,
        )

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], top_t: float | None = None, **options: Any) -> Predictor:
        return cls([load_checkpoint(path, top_t=top_t) for path in paths], **options)

    @property
    def config(self) -> GMICConfig:
        return self.checkpoints[0].config

    def predict_exam(
        self, exam: Exam, keep_patches: bool = True, cancelled: Callable[[], bool] = lambda: False
    ) -> ExamResult:
        """Decode the exam's standard views (in parallel threads) and run :meth:`predict`."""
        started = time.perf_counter()
        mammograms = load_standard_views(exam, self.decoding)
        loaded = time.perf_counter() - started
        images = {view: ViewImage.of(m, exam.horizontal_flip) for view, m in mammograms.items()}
        result = self.predict(exam.exam_id, images, keep_patches, cancelled)
        timings = {"load_s": loaded, **result.timings, "total_s": result.timings["total_s"] + loaded}
        return dataclasses.replace(result, timings=timings)

    def predict(
        self,
        exam_id: str,
        images: Mapping[View, ViewImage],
        keep_patches: bool = True,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> ExamResult:
        """Run the ensemble on the standard views of one exam (any subset of the four)."""
        return self.run(self.prepare(exam_id, images), keep_patches, cancelled)

    def prepare(self, exam_id: str, images: Mapping[View, ViewImage]) -> PreparedExam:
        """The preprocessing half of :meth:`predict` (see :func:`prepare_exam`)."""
        return prepare_exam(exam_id, images, self.config, self.background_threshold, keep_images=self.tta > 0)

    def run(
        self, prepared: PreparedExam, keep_patches: bool = True, cancelled: Callable[[], bool] = lambda: False
    ) -> ExamResult:
        """The inference half of :meth:`predict`, on an exam that :meth:`prepare` (or
        :func:`prepare_exam` with this predictor's config, in another thread or process) made."""
        return self.run_batch([prepared], keep_patches, cancelled)[0]

    def run_batch(
        self,
        exams: Sequence[PreparedExam],
        keep_patches: bool = True,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> list[ExamResult]:
        """:meth:`run` for several exams at once: their views go through each model as one batch, so
        that a GPU gets full batches instead of one exam's views at a time. ``inference_s`` is each
        exam's share of the batch's time. With test-time augmentation the exams run one by one."""
        if self.tta and any(prepared.images is None for prepared in exams):
            raise ValueError("test-time augmentation needs the stored images: prepare with keep_images")
        if self.tta and len(exams) > 1:
            return [self.run_batch([prepared], keep_patches, cancelled)[0] for prepared in exams]
        started = time.perf_counter()
        batch = exams[0].batch if len(exams) == 1 else torch.cat([prepared.batch for prepared in exams])
        outputs = []
        for model in self.models:
            if cancelled():
                raise InterruptedError(f"analysis of exam {', '.join(e.exam_id for e in exams)} cancelled")
            outputs.append(self._run(model, batch))
        augmented = self._augmented_fusion(exams[0].views, exams[0].images, cancelled) if self.tta else None
        inference_s = (time.perf_counter() - started) / len(exams)
        results, first = [], 0
        for prepared in exams:
            views = {
                view: self._view_result(
                    view, first + index, outputs, prepared.geometries[index], keep_patches, augmented
                )
                for index, view in enumerate(prepared.views)
            }
            first += len(prepared.views)
            timings = {
                **prepared.timings,
                "inference_s": inference_s,
                "total_s": prepared.timings["preprocess_s"] + time.perf_counter() - started,
            }
            results.append(ExamResult(prepared.exam_id, views, breast_results(views), self.identity, timings))
        return results

    @torch.inference_mode()
    def _run(self, model: torch.nn.Module, batch: torch.Tensor) -> GMICOutput:
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision), freezing(self.compiled):
            output = model(batch)
        fields = {field.name: getattr(output, field.name) for field in dataclasses.fields(output)}
        return GMICOutput(
            **{
                name: value.float().cpu() if value.is_floating_point() else value.cpu()
                for name, value in fields.items()
            }
        )

    def _augmented_fusion(
        self, views: Sequence[View], images: Mapping[View, ViewImage], cancelled: Callable[[], bool]
    ) -> dict[str, torch.Tensor]:
        """Mean probabilities over ``tta`` random windows per view, averaged over the ensemble."""
        sums: dict[str, torch.Tensor] = {}
        for draw in range(self.tta):
            if cancelled():
                raise InterruptedError("analysis cancelled")
            batch = torch.stack(
                [
                    _preprocess_view(
                        view,
                        images[view],
                        self.config,
                        self.background_threshold,
                        np.random.RandomState(self.seed + 1000 * draw + index),
                    ).tensor
                    for index, view in enumerate(views)
                ]
            )
            for model in self.models:
                output = self._run(model, batch)
                for name in ("y_global", "y_local", "y_fusion"):
                    sums[name] = sums.get(name, 0) + getattr(output, name)
        return {name: total / (self.tta * len(self.models)) for name, total in sums.items()}

    def _view_result(
        self,
        view: View,
        index: int,
        outputs: list[GMICOutput],
        geometry: Geometry,
        keep_patches: bool,
        augmented: dict[str, torch.Tensor] | None,
    ) -> ViewResult:
        def mean(name: str) -> tuple[float, ...]:
            source = [augmented[name][index]] if augmented else [getattr(o, name)[index] for o in outputs]
            return tuple(float(v) for v in torch.stack(source).double().mean(dim=0))

        crop_h, crop_w = self.config.crop_height, self.config.crop_width
        locations = [tuple(int(v) for v in loc) for o in outputs for loc in o.roi_locations[index]]
        boxes = [(r, c, r + crop_h, c + crop_w) for r, c in locations]
        outside = tuple(not geometry.model_box_covers_image(box) for box in boxes)
        return ViewResult(
            view=view,
            y_global=mean("y_global"),
            y_local=mean("y_local"),
            y_fusion=mean("y_fusion"),
            saliency=torch.stack([o.saliency[index] for o in outputs]).mean(dim=0).numpy(),
            attention=tuple(float(a) for o in outputs for a in o.attention[index]),
            patch_locations=tuple(locations),
            patch_outside_image=outside,
            roi_boxes=tuple(
                geometry.model_box_to_stored(box) for box, out in zip(boxes, outside, strict=True) if not out
            ),
            roi_member=tuple(member for member, o in enumerate(outputs) for _ in range(o.attention.shape[1])),
            geometry=geometry,
            patches=torch.cat([o.patches[index] for o in outputs]).numpy() if keep_patches else None,
        )


def load_standard_views(exam: Exam, decoding: Decoding = FULL_SIZE_CPU) -> dict[View, Mammogram]:
    """Decode the exam's standard views, one thread each (:func:`decode_view`: when the image chosen
    for a view cannot be decoded, the next one of the same view stands in), as a model asks
    (:attr:`Predictor.decoding`; the display's full size by default)."""
    views = list(exam.images)
    with ThreadPoolExecutor(max_workers=max(1, len(views))) as pool:
        return dict(zip(views, pool.map(lambda view: decode_view(exam, view, decoding), views), strict=True))


def decoding_for(config: GMICConfig, device: torch.device, reduced_levels: bool) -> Decoding:
    """How a predictor's images are decoded; every caller that decodes for it passes this on
    (:attr:`Predictor.decoding`), so that one model key always means one decode path. With
    ``reduced_levels``, a model whose input scale is ``1 / 2**k`` takes JPEG 2000 images at resolution
    level ``k`` instead of resampling the full-size image (``gmic_core.preprocess``). JPEG 2000 may be
    decoded on a CUDA device."""
    level = round(-math.log2(config.input_scale))
    exact = reduced_levels and level > 0 and config.input_scale * (1 << level) == 1.0
    return Decoding(level=level if exact else 0, cuda=device.type == "cuda")


def prepare_for_inference(model: torch.nn.Module, device: torch.device, compile: bool) -> torch.nn.Module:
    """Batch norms folded, channels-last weights on ``device``, optionally compiled for each batch
    shape it meets (``dynamic=False``: in torch 2.13 the dynamic-shape graph that a second batch size
    would get fails in oneDNN's fused convolutions on the CPU)."""
    prepared = fold_batch_norms(model).to(device, memory_format=torch.channels_last)
    return torch.compile(prepared, dynamic=False) if compile else prepared


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """Mixed precision for the networks' arithmetic; a no-op in fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_AUTOCAST_DTYPES[precision])


def freezing(enabled: bool) -> contextlib.AbstractContextManager:
    """Compiled models treat their weights as constants (inductor freezing), which lets it fold and
    pre-pack them; the setting must be active whenever a new input shape triggers compilation."""
    if not enabled:
        return contextlib.nullcontext()
    import torch._inductor.config as inductor_config

    return inductor_config.patch(freezing=True)


def breast_results(views: Mapping[View, ViewResult]) -> dict[Laterality, BreastResult]:
    """Per breast, the mean of the available CC and MLO fusion predictions; a breast with neither is
    absent, one with a single view says which view is missing."""
    breasts = {}
    for side in (Laterality.LEFT, Laterality.RIGHT):
        side_views = [view for view in PUBLISHED_VIEW_ORDER if view.laterality is side]
        present = tuple(view for view in side_views if view in views)
        if not present:
            continue
        breasts[side] = BreastResult(
            laterality=side,
            benign=float(np.mean([views[view].benign for view in present])),
            malignant=float(np.mean([views[view].malignant for view in present])),
            views=present,
            missing_views=tuple(view for view in side_views if view not in views),
        )
    return breasts
