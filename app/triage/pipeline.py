"""Feeding the device: exams are read and preprocessed ahead, in worker threads or processes, while
the model runs on the ones before them (on a GPU, several exams per model call).

A :class:`Job` is an exam to score and a picklable loader for its standard views. :func:`score_jobs`
yields one :class:`Outcome` per job, in order: the result, or the stage and reason it failed. A bad
exam never stops the stream; cancelling does, between exams or inside the model's run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from app.defaults import DEFAULT_OVERLAP, DEFAULT_WORKERS, OVERLAPS, FailureStage, Overlap
from gmic_core.config import GMICConfig
from gmic_core.errors import ExamError, GMICError, UsageError
from gmic_core.imaging import Exam
from gmic_core.imaging.decoders import FULL_SIZE_CPU, Decoding
from gmic_core.imaging.views import View
from gmic_core.inference import (
    ExamResult,
    Predictor,
    PreparedExam,
    ViewImage,
    load_standard_views,
    prepare_exam,
)
from gmic_core.parallel import worker_pool
from gmic_core.preprocess import BackgroundThreshold
from gmic_core.training.data import ManifestExam, read_stored

GPU_EXAMS_PER_BATCH = 4  # exams (16 full-size views) per model call on a GPU; not tuned: no GPU measured yet


@dataclass(frozen=True)
class Job:
    """One exam to score: its key and a picklable callable that decodes its standard views."""

    key: str
    load: Callable[[], dict[View, ViewImage]]


@dataclass(frozen=True)
class Failure:
    """Why an exam (``key``: its exam key) or a file (``key``: its path) could not be scored."""

    key: str
    stage: FailureStage
    error: str

    @property
    def message(self) -> str:
        """The reason, naming the exam or file (most errors name the file already)."""
        return self.error if self.key in self.error else f"{self.key}: {self.error}"


@dataclass(frozen=True)
class Outcome:
    """A job's result or its failure, and the seconds each stage took (``read_s``, ``preprocess_s``,
    ``inference_s`` as far as it got; ``wait_s``: how long the device waited for this exam)."""

    key: str
    result: ExamResult | None = None
    failure: Failure | None = None
    timings: dict[str, float] = field(default_factory=dict)


def exam_job(exam: Exam, decoding: Decoding = FULL_SIZE_CPU) -> Job:
    """A job for an exam found by ``gmic_core.imaging`` (DICOM study or exam.json), decoded as the
    model asks (:attr:`Predictor.decoding`)."""
    return Job(exam.exam_id, functools.partial(_exam_views, exam, decoding))


def manifest_job(exam: ManifestExam, decoding: Decoding = FULL_SIZE_CPU) -> Job:
    """A job for an exam of a training-style manifest (``gmic synth``), decoded as the model asks."""
    return Job(exam.exam_id, functools.partial(_manifest_views, exam, decoding))


def _exam_views(exam: Exam, decoding: Decoding) -> dict[View, ViewImage]:
    if not exam.images:
        raise ExamError(f"exam {exam.exam_id}: none of the standard views R-CC, L-CC, R-MLO, L-MLO")
    return {
        view: ViewImage.of(m, exam.horizontal_flip) for view, m in load_standard_views(exam, decoding).items()
    }


def _manifest_views(exam: ManifestExam, decoding: Decoding) -> dict[View, ViewImage]:
    views = {}
    for view, image in exam.images.items():
        pixels, grid = read_stored(image, decoding)
        views[view] = ViewImage(pixels, grid=grid)
    return views


def prepare_job(
    job: Job, config: GMICConfig, background_threshold: BackgroundThreshold, keep_images: bool
) -> PreparedExam | Failure:
    """Read and preprocess one exam; runs in the feeding thread or process."""
    started = time.perf_counter()
    try:
        images = job.load()
    except (GMICError, OSError) as error:
        return Failure(job.key, FailureStage.LOAD, str(error))
    read_s = time.perf_counter() - started
    try:
        prepared = prepare_exam(job.key, images, config, background_threshold, keep_images)
    except GMICError as error:
        return Failure(job.key, FailureStage.PREPROCESS, str(error))
    return dataclasses.replace(prepared, timings={"read_s": read_s, **prepared.timings})


def exams_per_batch(on_gpu: bool) -> int:
    """How many exams go through the model in one call by default: on a GPU (a CUDA device, or a Ray
    actor's GPU) :data:`GPU_EXAMS_PER_BATCH`, so that it never idles waiting for one exam's views; on
    the CPU one.
    There, two exams per call cost 11 % fewer CPU seconds of inference than one alone, but nothing in
    a triage run where reading shares the cores (6.42 against 6.23 CPU s per exam, docs/scale.md)."""
    return GPU_EXAMS_PER_BATCH if on_gpu else 1


def score_jobs(
    predictor: Predictor,
    jobs: Iterable[Job],
    overlap: Overlap = DEFAULT_OVERLAP,
    workers: int = DEFAULT_WORKERS,
    cancelled: Callable[[], bool] = lambda: False,
    batch: int | None = None,
) -> Iterator[Outcome]:
    """Score ``jobs`` in order, ``batch`` exams per model call (default :func:`exams_per_batch`).
    ``overlap`` "none" reads, preprocesses and runs each batch in turn; "threads" or "processes" keep
    ``workers`` exams in preparation (plus a batch ready) while the model runs. Stops early, without
    outcomes for the exams in hand, once ``cancelled()`` is true."""
    batch = batch or exams_per_batch(predictor.device.type == "cuda")
    if batch < 1:
        raise UsageError(f"at least one exam per batch, not {batch}")
    prepare = functools.partial(
        prepare_job,
        config=predictor.config,
        background_threshold=predictor.background_threshold,
        keep_images=predictor.tta > 0,
    )
    if overlap == "none":
        remaining = iter(jobs)
        while not cancelled() and (group := list(itertools.islice(remaining, batch))):
            prepared, waits = [], []
            for job in group:
                started = time.perf_counter()
                prepared.append(prepare(job))
                waits.append(time.perf_counter() - started)
            try:
                outcomes = infer_batch(predictor, prepared, waits, cancelled)
            except InterruptedError:
                return
            yield from outcomes
        return
    with _executor(overlap, workers) as executor:
        pending: deque[Future] = deque()
        remaining = iter(jobs)

        def fill() -> None:
            while len(pending) < workers + batch and (job := next(remaining, None)) is not None:
                pending.append(executor.submit(prepare, job))

        fill()
        try:
            while pending and not cancelled():
                prepared, waits = [], []
                while pending and len(prepared) < batch:
                    waited = time.perf_counter()
                    prepared.append(pending.popleft().result())
                    waits.append(time.perf_counter() - waited)
                fill()
                try:
                    outcomes = infer_batch(predictor, prepared, waits, cancelled)
                except InterruptedError:
                    return
                yield from outcomes
        finally:
            for future in pending:
                future.cancel()


def _executor(overlap: Overlap, workers: int) -> Executor:
    if workers < 1:
        raise UsageError(f"at least one worker reads ahead, not {workers}")
    if overlap == "threads":
        return ThreadPoolExecutor(workers, thread_name_prefix="triage-feed")
    if overlap == "processes":
        return worker_pool(workers)
    raise UsageError(f"overlap must be one of {', '.join(OVERLAPS)}, not {overlap!r}")


def infer_batch(
    predictor: Predictor,
    prepared: Sequence[PreparedExam | Failure],
    waits: Sequence[float] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[Outcome]:
    """The outcomes of prepared exams, in order (a preparation failure passes through), those that
    prepared run as one batch (:meth:`Predictor.run_batch`); if the batch fails, each exam runs alone,
    so that one bad exam fails alone. ``waits``: how long the device waited for each exam. Raises
    InterruptedError once ``cancelled()`` is true inside the model's run."""
    ready = [exam for exam in prepared if isinstance(exam, PreparedExam)]
    results: dict[str, ExamResult] = {}
    if len(ready) > 1:
        with contextlib.suppress(GMICError):
            results = {
                result.exam_id: result
                for result in predictor.run_batch(ready, keep_patches=False, cancelled=cancelled)
            }
    return [
        _outcome(
            predictor,
            exam,
            results.get(exam.exam_id) if isinstance(exam, PreparedExam) else None,
            wait_s,
            cancelled,
        )
        for exam, wait_s in zip(prepared, waits or [0.0] * len(prepared), strict=True)
    ]


def _outcome(
    predictor: Predictor,
    prepared: PreparedExam | Failure,
    result: ExamResult | None,
    wait_s: float,
    cancelled: Callable[[], bool],
) -> Outcome:
    """One exam's outcome: its failure, its result from a batch, or the result of running it alone."""
    if isinstance(prepared, Failure):
        return Outcome(prepared.key, failure=prepared, timings={"wait_s": wait_s})
    if result is None:
        try:
            result = predictor.run(prepared, keep_patches=False, cancelled=cancelled)
        except GMICError as error:
            failure = Failure(prepared.exam_id, FailureStage.INFERENCE, str(error))
            return Outcome(prepared.exam_id, failure=failure, timings={**prepared.timings, "wait_s": wait_s})
    return Outcome(prepared.exam_id, result=result, timings={**result.timings, "wait_s": wait_s})
