"""The repository of exams and model results: store an ``ExamResult`` for an exam and fetch it back by
exam and model identity (the GUI's result cache, ``gmic triage`` and reader studies use this).

A result is kept in the normalised tables of ``app.store.models`` (one :class:`ModelRun`, a
:class:`ViewPrediction` with its compressed :class:`SaliencyMap` per view, a
:class:`BreastPrediction` per breast) and comes back equal to what was stored: every float
exactly, saliency maps bit for bit. Patch pixels are not stored (``ExamResult.to_json`` leaves
them out as well). Several runs of the same model on the same exam may exist; the latest wins.

Every function works inside the caller's session, so that storing a result and whatever goes with
it is one transaction.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.store.models import BreastPrediction, Exam, Image, ModelRun, SaliencyMap, ViewPrediction
from gmic_core import imaging
from gmic_core.inference import ExamResult, ModelIdentity

SALIENCY_DTYPE = "<f4"
# The per-view fields of ExamResult.to_json kept as columns of view_predictions.
_VIEW_FIELDS = (
    "benign",
    "malignant",
    "y_global",
    "y_local",
    "y_fusion",
    "attention",
    "patch_locations",
    "roi_boxes",
    "roi_member",
    "geometry",
)


def ensure_exam(
    session: Session, exam_key: str, source: str | None = None, images: Iterable[imaging.ImageRef] = ()
) -> Exam:
    """The exam row for ``exam_key``, created if new; images not yet listed are added."""
    exam = session.scalar(select(Exam).where(Exam.exam_key == exam_key).options(selectinload(Exam.images)))
    if exam is None:
        exam = Exam(exam_key=exam_key, source=source)
        session.add(exam)
    elif source and not exam.source:
        exam.source = source
    known = {image.path for image in exam.images}
    for ref in images:
        if str(ref.source) not in known:
            view = ref.view
            exam.images.append(
                Image(
                    view=None if view is None else view.value,
                    path=str(ref.source),
                    sop_instance_uid=ref.sop_instance_uid,
                    rows=ref.shape[0],
                    columns=ref.shape[1],
                )
            )
            known.add(str(ref.source))
    session.flush()
    return exam


def save_exam_result(session: Session, result: ExamResult, exam_key: str | None = None) -> ModelRun:
    """Store ``result`` as the model run of the exam ``exam_key`` (default: ``result.exam_id``),
    replacing an earlier run of the same model: the store keeps one run per exam and model."""
    exam = ensure_exam(session, exam_key or result.exam_id)
    document = result.to_json()
    identity = result.model
    earlier = session.scalar(
        select(ModelRun).where(ModelRun.exam_id == exam.id, ModelRun.model_key == identity.key)
    )
    if earlier is not None:
        session.delete(earlier)
        session.flush()
    run = ModelRun(
        exam=exam,
        model_key=identity.key,
        model_names=list(identity.names),
        checkpoint_sha256=list(identity.checkpoint_sha256),
        top_t=list(identity.top_t),
        device=identity.device,
        precision=identity.precision,
        tta=identity.tta,
        decoding=identity.decoding,
        timings=document["timings"],
        result_exam_id=result.exam_id,
    )
    for view, view_result in result.views.items():
        data = document["views"][view.value]
        saliency = np.ascontiguousarray(view_result.saliency, dtype=SALIENCY_DTYPE)
        prediction = ViewPrediction(view=view.value, **{name: data[name] for name in _VIEW_FIELDS})
        prediction.saliency = SaliencyMap(
            shape=list(saliency.shape), dtype=SALIENCY_DTYPE, data=zlib.compress(saliency.tobytes())
        )
        run.views.append(prediction)
    for side, data in document["breasts"].items():
        if data is not None:
            run.breasts.append(BreastPrediction(laterality=side, **data))
    session.add(run)
    session.flush()
    return run


def latest_model_run(session: Session, exam_key: str, model_key: str) -> ModelRun | None:
    """The most recent run of the model ``model_key`` (``ModelIdentity.key``) on the exam."""
    return session.scalar(
        select(ModelRun)
        .join(Exam)
        .where(Exam.exam_key == exam_key, ModelRun.model_key == model_key)
        .order_by(ModelRun.id.desc())
        .limit(1)
        .options(
            selectinload(ModelRun.views).selectinload(ViewPrediction.saliency),
            selectinload(ModelRun.breasts),
        )
    )


def load_exam_result(session: Session, exam_key: str, model_key: str) -> ExamResult | None:
    """The stored result of ``model_key`` on the exam, or None when that model never ran on it."""
    run = latest_model_run(session, exam_key, model_key)
    return None if run is None else exam_result_of(run)


def exam_result_of(run: ModelRun) -> ExamResult:
    views = {}
    for prediction in run.views:
        saliency = prediction.saliency
        pixels = np.frombuffer(zlib.decompress(saliency.data), dtype=saliency.dtype).reshape(saliency.shape)
        views[prediction.view] = {name: getattr(prediction, name) for name in _VIEW_FIELDS} | {
            "saliency": pixels
        }
    breasts = {
        breast.laterality: {
            "benign": breast.benign,
            "malignant": breast.malignant,
            "views": breast.views,
            "missing_views": breast.missing_views,
        }
        for breast in run.breasts
    }
    identity = ModelIdentity(
        names=tuple(run.model_names),
        checkpoint_sha256=tuple(run.checkpoint_sha256),
        top_t=tuple(run.top_t),
        precision=run.precision,
        device=run.device,
        tta=run.tta,
        decoding=run.decoding,
    )
    return ExamResult.from_json(
        {
            "exam_id": run.result_exam_id,
            "views": views,
            "breasts": breasts,
            "model": dataclasses.asdict(identity),
            "timings": run.timings,
        }
    )
