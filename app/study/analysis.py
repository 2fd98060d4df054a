"""The paper's reader-study analyses, for a study in the database or any long-format rating table.

Input: a :class:`RatingTable` (every reader rates every case in every modality), from
:func:`read_ratings_csv` (columns ``reader,case,modality,truth,rating`` and optionally ``recall``
0/1, ``birads`` and ``duration_s`` (seconds), each may be empty, and ``cluster``, the woman (exam)
whose breast the case is; rows of the ``model_reader`` are the model's scores) or from
:func:`study_ratings` (a study's readings: the modalities are the phases ``unaided`` and ``aided``,
a case is one breast ``<exam>:<L|R>``, clustered by its exam, the rating the reader's probability
in percent, the model the study model's malignancy probability of that breast as the readers were
shown it, stored with their readings).

The breasts of one woman are correlated, so by default every AUC interval, the OR and DBM analyses
treat them as a cluster (the cluster jackknife and Obuchowski's clustered estimator,
:mod:`gmic_core.mrmc`); ``independent_breasts`` treats them as independent cases, as the published
analyses of tables without clusters do. ``clustering`` in ``analysis.json`` says which.

:func:`analyze` writes to ``out_dir``:

* ``analysis.json``: ``clustering`` (``clustered``, ``clusters`` and ``description``),
  ``readers`` (reader -> modality -> empirical ROC AUC), ``readers_pr_auc``,
  ``readers_auc_ci`` (DeLong 95 % intervals, Obuchowski's when clustered, on the logit scale, within
  [0, 1]; named in ``auc_interval_method``), ``modalities`` (reader-averaged AUC) and
  ``modality_ci`` (the single-modality OR interval on the logit scale, ``ci``, named in
  ``modality_interval_method``, and the published Wald one, ``wald_ci``), ``model`` (AUC, PR AUC, DeLong interval),
  ``or`` (``jackknife`` and ``delong``: ``F``, ``df1``, ``ddf`` (Hillis), ``p``, ``difference``
  (first modality minus second) and ``ci``), ``dbm`` (the same from DBM, a cross-check),
  ``averaged_roc`` (the vertical average of the readers' empirical ROC curves per modality, paper
  figure 4, whose area is the mean AUC), ``warnings`` (shown first: small sizes, analyses skipped,
  what was left out), ``left_out`` and ``interim``, ``hybrid`` (per modality
  and reader the AUC of ``lambda * rating / rating_scale + (1 - lambda) * model`` over lambda, at
  0.5 and at the best lambda, given as the range of tied lambdas; from the unaided readings when
  the table has them, since an aided reading already contains the model, ``from`` says which),
  and ``specificity`` (model and hybrids at the readers' mean
  sensitivity, with Clopper-Pearson intervals), ``operating_points`` (per reader and modality the
  sensitivity and specificity of recall and of BI-RADS >= 3 and >= 4, with counts), ``agreement``
  (Cohen's kappa per pair of readers and Fleiss' kappa across them, on recall and BI-RADS, per
  modality) and ``reading_time`` (median and IQR per modality, per reader and pooled); ids as they
  appear in the input;
* ``roc.png``, ``pr.png``, ``hybrid_auc.png``;
* ``report.html``: one self-contained file to hand over, warnings first, the tables and the plots;
* ``ratings.csv``: the long format that MRMCaov, RJafroc and iMRMC's converters read.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.database import Store
from app.store.models import Enrolment, Exclusion, GroundTruth, Phase, Reader, Reading, Study, StudyCase
from app.store.results import latest_model_run
from app.study.service import PHASES
from gmic_core import metrics, mrmc
from gmic_core.errors import GMICError

RATING_COLUMNS = ("reader", "case", "modality", "truth", "rating")
LAMBDAS = np.round(np.linspace(0.0, 1.0, 21), 2)  # 0, 0.05, ..., 1: includes lambda = 0.5
# The hybrid mixes a reader's probability with the model's: ratings on 0-1 or on 0-100 %.
PROBABILITY_SCALES = (1.0, 100.0)
# Below these sizes the report warns (Obuchowski, Acad Radiol 2004: MRMC sizing; a rule of thumb).
MIN_READERS, MIN_CASES, MIN_POSITIVES = 3, 50, 10
BIRADS_THRESHOLDS = (3, 4)  # BI-RADS at or above is called positive


@dataclass(frozen=True)
class Entry:
    """One reading of a rating table: the rating, and what else is known of it."""

    rating: float
    recall: bool | None = None
    birads: float | None = None
    duration_s: float | None = None


class AnalysisError(GMICError):
    """A rating table or study that cannot be analysed (incomplete, contradictory, one class only)."""


@dataclass(frozen=True)
class RatingTable:
    readers: tuple[str, ...]
    modalities: tuple[str, ...]
    cases: tuple[str, ...]
    truth: np.ndarray  # [cases] bool
    ratings: np.ndarray  # [modalities, readers, cases]
    recall: np.ndarray | None = None  # [modalities, readers, cases] bool, the readers' decisions
    birads: np.ndarray | None = None  # [modalities, readers, cases] BI-RADS 0-6, NaN where not given
    durations: np.ndarray | None = None  # [modalities, readers, cases] reading time in seconds
    model: np.ndarray | None = None  # [cases], the model's probability (0-1)
    rating_scale: float = 100.0  # rating / rating_scale is in [0, 1] for the hybrid (with a model)
    left_out: tuple[str, ...] = ()  # readers and cases of a study left out of the analysis, and why
    interim: bool = False  # complete readers only, while the study goes on
    clusters: tuple[str, ...] | None = None  # [cases] the woman (exam) of each case; None where not known


def read_ratings_csv(
    path: str | Path, model_reader: str | None = None, rating_scale: float | None = None
) -> RatingTable:
    """The table in ``path``. With a ``model_reader`` (whose scores are probabilities, 0-1) the readers'
    ratings must be probabilities too, on the ``rating_scale`` stated: 1 (0-1) or 100 (0-100 %);
    ordinal ratings (1-5, BI-RADS) are refused there, since the hybrid cannot mix them with the
    model's probability. Without one, any ratings are analysed (the AUCs need only their order)."""
    path = Path(path)
    if model_reader is not None and rating_scale not in PROBABILITY_SCALES:
        raise AnalysisError(
            f"{path}: with a model reader ({model_reader}) the readers' ratings are mixed with the model's "
            f"probability, so they must be probabilities: state their scale as 1 (0-1) or 100 "
            f"(0-100 %), not {rating_scale}; ordinal ratings such as 1-5 are analysed without the model"
        )
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            columns, rows = reader.fieldnames or [], list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise AnalysisError(f"{path}: cannot read the ratings ({error})") from error
    missing = [column for column in RATING_COLUMNS if column not in columns]
    if missing:
        raise AnalysisError(f"{path}: the ratings lack the column(s) {', '.join(missing)}")
    if not rows:
        raise AnalysisError(f"{path}: no ratings")
    with_recall = "recall" in columns
    entries: dict[tuple[str, str, str], Entry] = {}
    truth: dict[str, bool] = {}
    clusters: dict[str, str] | None = {} if "cluster" in columns else None
    for number, row in enumerate(rows, start=2):
        reader, case, modality = row["reader"].strip(), row["case"].strip(), row["modality"].strip()
        try:
            rating = float(row["rating"])
            if row["truth"].strip() not in ("0", "1"):
                raise ValueError(f"truth is 0 or 1, got {row['truth']!r}")
            recall = _flag(row["recall"]) if with_recall and reader != model_reader else None
            birads = _optional_number(row.get("birads"))
            duration = _optional_number(row.get("duration_s"))
        except ValueError as error:
            raise AnalysisError(f"{path}, line {number}: {error}") from error
        if not np.isfinite(rating):
            raise AnalysisError(f"{path}, line {number}: the rating is not a number")
        if truth.setdefault(case, row["truth"].strip() == "1") != (row["truth"].strip() == "1"):
            raise AnalysisError(f"{path}, line {number}: case {case} has two different truths")
        if clusters is not None:
            cluster = row["cluster"].strip()
            if not cluster:
                raise AnalysisError(
                    f"{path}, line {number}: no cluster for case {case}: name the woman (exam) of every "
                    "case, or drop the cluster column to treat the cases as independent"
                )
            if clusters.setdefault(case, cluster) != cluster:
                raise AnalysisError(
                    f"{path}, line {number}: case {case} is in two clusters ({clusters[case]} and {cluster})"
                )
        if (reader, case, modality) in entries:
            raise AnalysisError(
                f"{path}, line {number}: reader {reader} rated case {case} twice in {modality}"
            )
        entries[(reader, case, modality)] = Entry(rating, recall, birads, duration)
    table = _table(entries, truth, model_reader, rating_scale or 100.0, with_recall, str(path), clusters)
    if table.model is not None:
        _check_probabilities(table, model_reader, str(path))
    return table


def _check_probabilities(table: RatingTable, model_reader: str | None, where: str) -> None:
    assert table.model is not None
    if not ((table.model >= 0) & (table.model <= 1)).all():
        raise AnalysisError(f"{where}: the model's scores ({model_reader}) must be probabilities in [0, 1]")
    outside = (table.ratings < 0) | (table.ratings > table.rating_scale)
    if outside.any():
        modality, reader, case = np.argwhere(outside)[0]
        raise AnalysisError(
            f"{where}: reader {table.readers[reader]} rated case {table.cases[case]} "
            f"{table.ratings[modality, reader, case]:g} in {table.modalities[modality]}, outside the stated "
            f"scale 0-{table.rating_scale:g}; ordinal ratings such as 1-5 are analysed without the model"
        )


def _optional_number(value: str | None) -> float | None:
    return float(value) if value is not None and value.strip() else None


def _flag(value: str) -> bool:
    if value.strip() not in ("0", "1"):
        raise ValueError(f"recall is 0 or 1, got {value!r}")
    return value.strip() == "1"


def _ordered(values) -> tuple[str, ...]:
    """Ids in the order they first appear."""
    return tuple(dict.fromkeys(values))


def _table(
    entries: dict[tuple[str, str, str], Entry],
    truth: dict[str, bool],
    model_reader: str | None,
    rating_scale: float,
    with_recall: bool,
    where: str,
    clusters: dict[str, str] | None = None,
) -> RatingTable:
    readers = _ordered(reader for reader, _, _ in entries if reader != model_reader)
    modalities = _ordered(modality for reader, _, modality in entries if reader != model_reader)
    cases = tuple(truth)
    if not readers:
        raise AnalysisError(f"{where}: no reader's ratings")
    ratings = np.full((len(modalities), len(readers), len(cases)), np.nan)
    recall = np.zeros(ratings.shape, dtype=bool)
    birads = np.full(ratings.shape, np.nan)
    durations = np.full(ratings.shape, np.nan)
    reader_index = {reader: index for index, reader in enumerate(readers)}
    modality_index = {modality: index for index, modality in enumerate(modalities)}
    case_index = {case: index for index, case in enumerate(cases)}
    model = np.full(len(cases), np.nan) if model_reader is not None else None
    for (reader, case, modality), entry in entries.items():
        if reader == model_reader:
            if not np.isnan(model[case_index[case]]) and model[case_index[case]] != entry.rating:
                raise AnalysisError(f"{where}: the model gives case {case} two different scores")
            model[case_index[case]] = entry.rating
            continue
        position = modality_index[modality], reader_index[reader], case_index[case]
        ratings[position] = entry.rating
        recall[position] = bool(entry.recall)
        birads[position] = np.nan if entry.birads is None else entry.birads
        durations[position] = np.nan if entry.duration_s is None else entry.duration_s
    if np.isnan(ratings).any():
        modality, reader, case = np.argwhere(np.isnan(ratings))[0]
        raise AnalysisError(
            f"{where}: {int(np.isnan(ratings).sum())} rating(s) missing, for example reader "
            f"{readers[reader]} on case {cases[case]} in {modalities[modality]}; every reader must rate "
            "every case in every modality"
        )
    if model is not None and np.isnan(model).any():
        raise AnalysisError(f"{where}: the model ({model_reader}) has no score for some cases")
    truth_array = np.array([truth[case] for case in cases])
    if truth_array.all() or not truth_array.any():
        raise AnalysisError(f"{where}: the cases are all positive or all negative; both classes are needed")
    return RatingTable(
        readers,
        modalities,
        cases,
        truth_array,
        ratings,
        recall if with_recall else None,
        None if np.isnan(birads).all() else birads,
        None if np.isnan(durations).all() else durations,
        model,
        rating_scale,
        clusters=None if clusters is None else tuple(clusters[case] for case in cases),
    )


def study_ratings(store: Store, study_name: str, interim: bool = False) -> RatingTable:
    """A study's latest readings as a rating table (see the module docstring), without the readers
    and readings the coordinator excluded. Enrolled readers who never submitted are left out. Any
    other reader who has not read every case refuses a full report; ``interim`` leaves them out
    instead. Cases with an excluded reading are left out. ``left_out`` says whom, what and why."""
    with store.session() as session:
        study = session.scalar(select(Study).where(Study.name == study_name))
        if study is None:
            raise AnalysisError(f"no study named {study_name!r}")
        clusters, truth = {}, {}
        for case_key, side, malignant in session.execute(
            select(StudyCase.case_key, GroundTruth.laterality, GroundTruth.malignant)
            .join(GroundTruth, GroundTruth.study_case_id == StudyCase.id)
            .where(StudyCase.study_id == study.id)
            .order_by(StudyCase.id, GroundTruth.laterality)
        ):
            clusters[f"{case_key}:{side}"], truth[f"{case_key}:{side}"] = case_key, malignant
        exclusions = session.execute(
            select(Reader.name, Exclusion.reading_id, Exclusion.reason)
            .outerjoin(Reader, Exclusion.reader_id == Reader.id)
            .where(Exclusion.study_id == study.id)
        ).all()
        excluded_readers = {name: reason for name, _, reason in exclusions if name is not None}
        excluded_readings = {reading: reason for _, reading, reason in exclusions if reading is not None}
        left_out = [f"reader {name}: excluded ({reason})" for name, reason in excluded_readers.items()]
        latest: dict[tuple[str, str, str], Reading] = {}
        for reader, case_key, reading in session.execute(
            select(Reader.name, StudyCase.case_key, Reading)
            .join(Reader, Reading.reader_id == Reader.id)
            .join(StudyCase, Reading.study_case_id == StudyCase.id)
            .where(Reading.study_id == study.id)
            .order_by(Reading.id)  # later revisions supersede earlier ones
        ):
            if reader not in excluded_readers:
                latest[(reader, f"{case_key}:{reading.laterality}", reading.phase)] = reading
        dropped_cases = {}
        for (reader, breast, _phase), reading in list(latest.items()):
            if reading.id in excluded_readings:
                dropped_cases[breast] = (
                    f"reading {reading.id} of {reader} excluded ({excluded_readings[reading.id]})"
                )
        enrolled = session.scalars(
            select(Reader.name)
            .join(Enrolment, Enrolment.reader_id == Reader.id)
            .where(Enrolment.study_id == study.id)
            .order_by(Enrolment.position)
        )
        readers_with = {reader for reader, _, _ in latest}
        left_out += [
            f"reader {name}: never submitted a reading"
            for name in enrolled
            if name not in readers_with and name not in excluded_readers
        ]
        needed = len(truth) * len(PHASES[study.protocol])
        for reader in sorted(readers_with):
            done = sum(1 for (who, _, _) in latest if who == reader)
            missing = needed - done
            if missing == 0:
                continue
            if not interim:
                raise AnalysisError(
                    f"study {study_name!r}: reader {reader} has read {done} of {needed} breast readings: "
                    "wait until every reader has finished, run an interim report (--interim: complete "
                    "readers only), or exclude the reader with a reason (gmic study readers --exclude)"
                )
            left_out.append(f"reader {reader}: {done} of {needed} breast readings (interim report)")
            latest = {key: reading for key, reading in latest.items() if key[0] != reader}
        left_out += [f"case {breast}: {reason}" for breast, reason in dropped_cases.items()]
        truth = {breast: malignant for breast, malignant in truth.items() if breast not in dropped_cases}
        entries = {
            key: Entry(reading.probability, reading.recall, reading.birads, reading.duration_s)
            for key, reading in latest.items()
            if key[1] not in dropped_cases
        }
        shown = {key: reading.model_score for key, reading in latest.items()}
        model_reader = None
        if study.model_key:
            model_reader = "model"
            for case in study.cases:
                for side in case.breasts:
                    if f"{case.case_key}:{side}" in dropped_cases:
                        continue
                    score = _model_score(session, study, case, side, shown, study_name)
                    if score is not None:
                        entries[(model_reader, f"{case.case_key}:{side}", Phase.UNAIDED.value)] = Entry(score)
    if not any(key[0] != model_reader for key in entries):
        raise AnalysisError(f"study {study_name!r} has no {'complete reader' if interim else 'readings'} yet")
    table = _table(entries, truth, model_reader, 100.0, True, f"study {study_name!r}", clusters)
    return dataclasses.replace(table, left_out=tuple(left_out), interim=interim)


def _model_score(
    session: Session,
    study: Study,
    case: StudyCase,
    side: str,
    shown: dict[tuple[str, str, str], float | None],
    study_name: str,
) -> float | None:
    """The study model's score of one breast as the readers were shown it (stored with their
    readings); the latest stored run of the model only where no reading shows one."""
    breast = f"{case.case_key}:{side}"
    scores = {score for (_, shown_breast, _), score in shown.items() if shown_breast == breast} - {None}
    if len(scores) > 1:
        raise AnalysisError(
            f"study {study_name!r}: readers were shown different model scores for {breast} "
            f"({', '.join(f'{score:.4f}' for score in sorted(scores))}): the model was run again during "
            "the study, so no one score stands for it"
        )
    if scores:
        return scores.pop()
    assert study.model_key is not None
    run = latest_model_run(session, case.exam.exam_key, study.model_key)
    return (
        next((breast.malignant for breast in run.breasts if breast.laterality == side), None) if run else None
    )


def write_ratings_csv(table: RatingTable, path: Path) -> None:
    """The long format ``reader,case,modality,truth,rating`` (plus ``recall``, ``birads``,
    ``duration_s`` and ``cluster`` when known)."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        extra = {
            name: values
            for name, values in (
                ("recall", table.recall),
                ("birads", table.birads),
                ("duration_s", table.durations),
            )
            if values is not None
        }
        writer.writerow(RATING_COLUMNS + tuple(extra) + (() if table.clusters is None else ("cluster",)))
        for i, modality in enumerate(table.modalities):
            for j, reader in enumerate(table.readers):
                for k, case in enumerate(table.cases):
                    row = [reader, case, modality, int(table.truth[k]), repr(float(table.ratings[i, j, k]))]
                    for name, values in extra.items():
                        value = values[i, j, k]
                        row.append(
                            int(value) if name == "recall" else "" if np.isnan(value) else repr(float(value))
                        )
                    writer.writerow(row + ([table.clusters[k]] if table.clusters is not None else []))


def clustering(table: RatingTable, independent_breasts: bool = False) -> dict[str, Any]:
    """Whether the analyses treat a woman's breasts as one cluster, and the sentence that says so.
    Clustering needs each class (positive, negative breasts) in two or more women, since the cluster
    jackknife leaves out one woman at a time; a study too small for that is analysed with independent
    breasts, and ``unclusterable`` says why (a warning)."""
    count = None if table.clusters is None else len(set(table.clusters))
    unclusterable = None
    if count is not None and not independent_breasts:
        for label, cases in (("positive", table.truth), ("negative", ~table.truth)):
            women = {cluster for cluster, case in zip(table.clusters, cases, strict=True) if case}
            if len(women) < 2:
                unclusterable = f"the {label} breasts belong to {len(women)} woman"
                break
    if count is None:
        description = "cases treated as independent (the ratings name no clusters)"
    elif independent_breasts:
        description = "breasts treated as independent (--independent-breasts)"
    elif unclusterable:
        description = f"breasts treated as independent: {unclusterable}, too few to cluster by woman"
    else:
        description = (
            f"cases clustered by woman (exam): {count} clusters of {len(table.cases)} breasts; "
            "Obuchowski 1997"
        )
    return {
        "clustered": count is not None and not independent_breasts and unclusterable is None,
        "clusters": count,
        "description": description,
        "unclusterable": unclusterable,
    }


def analyze(
    table: RatingTable, out_dir: Path, sensitivity: float | None = None, independent_breasts: bool = False
) -> dict[str, Any]:
    """Every analysis of the module docstring; returns what ``analysis.json`` holds. ``sensitivity``
    fixes the operating point of the specificity comparison (default: the readers' mean
    sensitivity from their recall decisions, when the table has them). The table's clusters are
    used unless ``independent_breasts``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = table.truth
    aucs = mrmc.empirical_aucs(table.ratings, truth)
    grouping = clustering(table, independent_breasts)
    clusters = np.array(table.clusters) if grouping["clustered"] else None
    report: dict[str, Any] = {
        "warnings": warnings(table, independent_breasts, grouping["unclusterable"]),
        "interim": table.interim,
        "left_out": list(table.left_out),
        "clustering": grouping,
        "auc_interval_method": (
            mrmc.CLUSTERED_AUC_INTERVAL_METHOD if grouping["clustered"] else mrmc.AUC_INTERVAL_METHOD
        ),
        "modality_interval_method": (
            mrmc.CLUSTERED_MODALITY_INTERVAL_METHOD
            if grouping["clustered"]
            else mrmc.MODALITY_INTERVAL_METHOD
        ),
        "cases": len(table.cases),
        "positives": int(truth.sum()),
        "readers": {
            reader: {modality: float(aucs[i, j]) for i, modality in enumerate(table.modalities)}
            for j, reader in enumerate(table.readers)
        },
        "readers_pr_auc": {
            reader: {
                modality: metrics.pr_auc(truth, table.ratings[i, j])
                for i, modality in enumerate(table.modalities)
            }
            for j, reader in enumerate(table.readers)
        },
        "readers_auc_ci": {
            reader: {
                modality: _auc_interval(table.ratings[i, j], truth, clusters)
                for i, modality in enumerate(table.modalities)
            }
            for j, reader in enumerate(table.readers)
        },
        "modalities": {modality: float(aucs[i].mean()) for i, modality in enumerate(table.modalities)},
        "averaged_roc": {
            modality: _curve(*averaged_roc(table.ratings[i], truth))
            for i, modality in enumerate(table.modalities)
        },
    }
    if len(table.readers) >= 2 and _has_variance(truth):
        single = mrmc.obuchowski_rockette(table.ratings, truth, clusters=clusters)
        report["modality_ci"] = {
            modality: {"ci": list(interval.logit_ci), "wald_ci": list(interval.ci), "df": interval.df}
            for modality, interval in zip(table.modalities, single.modalities, strict=True)
        }
        if len(table.modalities) >= 2:
            pair = table.ratings[:2]
            report["or"] = {
                method: _comparison(
                    mrmc.obuchowski_rockette(pair, truth, covariance=method, clusters=clusters)
                )
                for method in ("jackknife", "delong")
            }
            report["dbm"] = _comparison(mrmc.dorfman_berbaum_metz(pair, truth, clusters=clusters))
    report["operating_points"] = operating_points(table)
    report["agreement"] = agreement(table)
    report["reading_time"] = reading_times(table)
    if table.model is not None:
        report["model"] = {
            "auc": float(mrmc.empirical_aucs(table.model[None, None], truth)[0, 0]),
            "ci": _auc_interval(table.model, truth, clusters),
            "pr_auc": metrics.pr_auc(truth, table.model),
        }
        report["hybrid"] = _hybrids(table)
        report["specificity"] = {
            modality: _specificities(
                table, table.modalities.index(modality), sensitivity, report["hybrid"][modality]
            )
            for modality in report["hybrid"]["from"]
        }
    _plot_roc(table, aucs, out_dir / "roc.png")
    _plot_pr(table, out_dir / "pr.png")
    if table.model is not None:
        _plot_hybrid(table, report["hybrid"], out_dir / "hybrid_auc.png")
    write_ratings_csv(table, out_dir / "ratings.csv")
    (out_dir / "analysis.json").write_text(json.dumps(_plain(report), indent=1))
    write_html_report(report, out_dir)
    return report


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(value)}</td>" for value in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _has_variance(truth: np.ndarray) -> bool:
    """Whether case-resampling variances exist: the jackknife and DeLong's method need two or more
    positive and negative cases (leaving out the only positive leaves no AUC)."""
    return min(int(truth.sum()), int((~truth).sum())) >= 2


def _auc_interval(ratings: np.ndarray, truth: np.ndarray, clusters: np.ndarray | None) -> list[float] | None:
    """A reader's (or the model's) AUC interval; None where :func:`_has_variance` says there is no
    variance to estimate, unless the AUC is 0 or 1 (its exact bound needs none)."""
    auc = float(mrmc.empirical_aucs(ratings[None, None], truth)[0, 0])
    if not _has_variance(truth) and 0.0 < auc < 1.0:
        return None
    return list(mrmc.delong_auc_ci(ratings, truth, clusters=clusters)[1:])


def _interval_text(interval: list[float] | None) -> str:
    return "no interval" if interval is None else f"{interval[0]:.3f} to {interval[1]:.3f}"


def write_html_report(report: dict[str, Any], out_dir: Path) -> Path:
    """``report.html`` beside ``analysis.json``: one self-contained file (the plots embedded as base64
    PNG) with the warnings first, then the AUC, operating-point, agreement and reading-time tables."""
    parts = ["<h1>Reader study analysis</h1>"]
    if report["warnings"]:
        items = "".join(f"<li>{html.escape(warning)}</li>" for warning in report["warnings"])
        parts.append(f'<div class="warnings"><h2>Warnings</h2><ul>{items}</ul></div>')
    parts.append(
        f"<p>{report['cases']} cases, {report['positives']} positive; "
        f"{html.escape(report['clustering']['description'])}.</p>"
    )
    modalities = list(report["modalities"])
    parts.append("<h2>ROC AUC per reader</h2><p>Intervals: " + html.escape(report["auc_interval_method"]))
    parts.append(
        _html_table(
            ["reader", *modalities],
            [
                [reader]
                + [
                    f"{aucs[m]:.3f} ({_interval_text(report['readers_auc_ci'][reader][m])})"
                    for m in modalities
                ]
                for reader, aucs in report["readers"].items()
            ],
        )
    )
    averaged = [
        [m, report["modalities"][m], *report.get("modality_ci", {}).get(m, {}).get("ci", [])]
        for m in modalities
    ]
    parts.append("<h2>Reader-averaged AUC</h2><p>" + html.escape(report["modality_interval_method"]) + "</p>")
    parts.append(_html_table(["modality", "AUC", "95 % low", "95 % high"], averaged))
    if "or" in report:
        result = report["or"]["jackknife"]
        jackknife = "cluster jackknife" if report["clustering"]["clustered"] else "jackknife"
        parts.append(f"<h2>MRMC comparison (Obuchowski-Rockette, {jackknife}, Hillis ddf)</h2>")
        parts.append(
            _html_table(
                ["difference", "95 % low", "95 % high", "F", "ddf", "p"],
                [[result["difference"], *result["ci"], result["F"], result["ddf"], result["p"]]],
            )
        )
    rows = [
        [
            reader,
            modality,
            name,
            point["sensitivity"],
            point["specificity"],
            point["tp"],
            point["fn"],
            point["tn"],
            point["fp"],
        ]
        for reader, per_modality in report["operating_points"].items()
        for modality, decisions in per_modality.items()
        for name, point in decisions.items()
        if isinstance(point, dict)
    ]
    if rows:
        parts.append("<h2>Sensitivity and specificity of the readers' decisions</h2>")
        parts.append(
            _html_table(
                ["reader", "modality", "decision", "sensitivity", "specificity", "TP", "FN", "TN", "FP"], rows
            )
        )
    rows = [
        [
            modality,
            scale,
            found["fleiss"],
            found["cases"],
            ", ".join(
                f"{pair}: {kappa:.3f}" if kappa is not None else f"{pair}: n/a"
                for pair, kappa in found["cohen"].items()
            ),
        ]
        for modality, scales in report["agreement"].items()
        for scale, found in scales.items()
    ]
    if rows:
        parts.append("<h2>Agreement (kappa)</h2>")
        parts.append(_html_table(["modality", "on", "Fleiss", "cases", "Cohen per pair"], rows))
    rows = [
        [modality, who, summary["readings"], summary["median_s"], *(summary["iqr_s"] or ["", ""])]
        for modality, times in report["reading_time"].items()
        for who, summary in [("pooled", times["pooled"]), *times["readers"].items()]
    ]
    if rows:
        parts.append("<h2>Reading time (seconds)</h2>")
        parts.append(_html_table(["modality", "reader", "readings", "median", "Q1", "Q3"], rows))
    if "hybrid" in report:
        parts.append(
            "<h2>Hybrid</h2><p>From the "
            + html.escape(", ".join(report["hybrid"]["from"]))
            + " readings: an aided "
            "reading already contains the model, so it is not mixed with the model again.</p>"
        )
    for picture in ("roc.png", "pr.png", "hybrid_auc.png"):
        if (out_dir / picture).is_file():
            encoded = base64.b64encode((out_dir / picture).read_bytes()).decode("ascii")
            parts.append(f'<p><img alt="{picture}" src="data:image/png;base64,{encoded}"></p>')
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 6px}.warnings{background:#fff3cd;padding:4px 12px}"
    )
    path = out_dir / "report.html"
    path.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Reader study analysis</title>'
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>",
        encoding="utf-8",
    )
    return path


def _curve(fpr: np.ndarray, tpr: np.ndarray) -> dict[str, list[float]]:
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def warnings(
    table: RatingTable, independent_breasts: bool = False, unclusterable: str | None = None
) -> list[str]:
    """What the reader of the report must know before its numbers: sizes too small for the
    statistics to be trusted, analyses skipped and why, readers and cases left out, a woman's
    breasts counted as independent cases."""
    found = []
    readers, cases, positives = len(table.readers), len(table.cases), int(table.truth.sum())
    if table.interim:
        found.append("interim report: complete readers only, while the study goes on")
    if readers < MIN_READERS:
        found.append(f"{readers} reader(s): fewer than {MIN_READERS}, the MRMC results generalise poorly")
    if cases < MIN_CASES:
        found.append(f"{cases} cases: fewer than {MIN_CASES}, intervals and p-values are unreliable")
    if positives < MIN_POSITIVES:
        found.append(
            f"{positives} positive case(s): fewer than {MIN_POSITIVES}, sensitivity is barely estimated"
        )
    if readers < 2:
        found.append("MRMC analysis skipped: it needs at least two readers")
    elif not _has_variance(table.truth):
        found.append("MRMC analysis skipped: it needs at least two positive and two negative cases")
    elif len(table.modalities) < 2:
        found.append("MRMC comparison skipped: one modality only (single-modality intervals given)")
    if not _has_variance(table.truth):
        found.append(
            "AUC intervals only where the AUC is 0 or 1 (an exact bound): the others need at least two "
            "positive and two negative cases"
        )
    if independent_breasts and table.clusters is not None:
        paired = sum(1 for size in Counter(table.clusters).values() if size > 1)
        if paired:
            found.append(
                f"breasts treated as independent (--independent-breasts) although {paired} women have two "
                "breasts in the study: the intervals are too narrow and the p-values too small"
            )
    if unclusterable:
        found.append(
            f"breasts treated as independent: {unclusterable}, and clustering by woman needs each class in "
            "two or more women; the intervals may be too narrow"
        )
    found += [f"left out: {item}" for item in table.left_out]
    return found


def _decision_counts(truth: np.ndarray, called: np.ndarray) -> dict[str, Any]:
    tp, fn = int(called[truth].sum()), int((~called[truth]).sum())
    tn, fp = int((~called[~truth]).sum()), int(called[~truth].sum())
    return {
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "tp": tp,
        "fn": fn,
        "tn": tn,
        "fp": fp,
    }


def operating_points(table: RatingTable) -> dict[str, Any]:
    """Per reader and modality, sensitivity and specificity (with the counts) of the readers' own
    decisions: recall, and BI-RADS >= 3 and >= 4 called positive. BI-RADS 0 (incomplete) falls below
    both thresholds (recall counts it); readings without a BI-RADS are left out of those two, and
    ``without_birads`` says how many."""
    points: dict[str, Any] = {}
    for j, reader in enumerate(table.readers):
        points[reader] = {}
        for i, modality in enumerate(table.modalities):
            decisions: dict[str, Any] = {}
            if table.recall is not None:
                decisions["recall"] = _decision_counts(table.truth, table.recall[i, j])
            if table.birads is not None:
                given = ~np.isnan(table.birads[i, j])
                for threshold in BIRADS_THRESHOLDS:
                    decisions[f"birads>={threshold}"] = _decision_counts(
                        table.truth[given], table.birads[i, j, given] >= threshold
                    )
                decisions["without_birads"] = int((~given).sum())
            points[reader][modality] = decisions
    return points


def agreement(table: RatingTable) -> dict[str, Any]:
    """Per modality, on BI-RADS and on recall: Cohen's kappa of each pair of readers (scikit-learn's,
    over the cases both assessed) and Fleiss' kappa across every reader (over the cases all
    assessed). Empty with one reader."""
    if len(table.readers) < 2:
        return {}
    scales = {"recall": table.recall, "birads": table.birads}
    found: dict[str, Any] = {}
    for i, modality in enumerate(table.modalities):
        found[modality] = {}
        for name, values in scales.items():
            if values is None:
                continue
            values = values[i].astype(np.float64)
            pairs = {}
            for a, b in itertools.combinations(range(len(table.readers)), 2):
                given = ~np.isnan(values[a]) & ~np.isnan(values[b])
                pairs[f"{table.readers[a]}|{table.readers[b]}"] = _kappa(values[a, given], values[b, given])
            complete = ~np.isnan(values).any(axis=0)
            found[modality][name] = {
                "cohen": pairs,
                "fleiss": metrics.fleiss_kappa(values[:, complete]) if complete.any() else None,
                "cases": int(complete.sum()),
            }
    return found


def _kappa(first: np.ndarray, second: np.ndarray) -> float | None:
    """Cohen's kappa, None where it is undefined (no cases, or both readers always the same one
    category)."""
    if first.size == 0 or np.unique(np.concatenate([first, second])).size < 2:
        return None
    return float(cohen_kappa_score(first, second))


def _time_summary(seconds: np.ndarray) -> dict[str, Any]:
    seconds = seconds[~np.isnan(seconds)]
    if seconds.size == 0:
        return {"readings": 0, "median_s": None, "iqr_s": None}
    q1, median, q3 = np.percentile(seconds, [25, 50, 75])
    return {"readings": int(seconds.size), "median_s": float(median), "iqr_s": [float(q1), float(q3)]}


def reading_times(table: RatingTable) -> dict[str, Any]:
    """Per modality, the median and interquartile range of the stored reading times (seconds), per
    reader and pooled over readers. Empty where the table has no times."""
    if table.durations is None:
        return {}
    return {
        modality: {
            "pooled": _time_summary(table.durations[i].ravel()),
            "readers": {
                reader: _time_summary(table.durations[i, j]) for j, reader in enumerate(table.readers)
            },
        }
        for i, modality in enumerate(table.modalities)
    }


def _comparison(result: mrmc.ORResult | mrmc.DBMResult) -> dict[str, Any]:
    difference = result.differences[0]
    return {
        "F": result.f,
        "df1": result.df1,
        "ddf": result.ddf,
        "p": result.p,
        "difference": difference.estimate,
        "std_err": difference.std_err,
        "ci": list(difference.ci),
    }


def averaged_roc(ratings: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The vertical average over readers (``ratings[readers, cases]``) of each reader's empirical ROC
    curve (steps, with a diagonal where positives and negatives tie): (fpr, tpr) at every reader's
    false-positive rates, each twice (below and above a vertical step). Between those points every
    reader's curve is a straight line, so the area under the average is exactly the mean AUC."""
    curves = [metrics.roc_curve(truth, reader_ratings)[:2] for reader_ratings in ratings]
    grid = np.unique(np.concatenate([fpr for fpr, _ in curves]))
    below = np.mean([_roc_at(fpr, tpr, grid, side="left") for fpr, tpr in curves], axis=0)
    above = np.mean([_roc_at(fpr, tpr, grid, side="right") for fpr, tpr in curves], axis=0)
    return np.repeat(grid, 2), np.column_stack([below, above]).ravel()


def _roc_at(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray, side: str) -> np.ndarray:
    """One empirical ROC curve at ``grid``: the bottom (``left``) or top (``right``) of a vertical
    step there; between its points the curve is straight."""
    index = np.searchsorted(fpr, grid, side=side)  # fpr is sorted: the first point at or after
    if side == "right":  # the last point at or before: the top of a step
        index = index - 1
        after = np.minimum(index + 1, fpr.size - 1)
        span = fpr[after] - fpr[index]
        fraction = np.divide(grid - fpr[index], span, out=np.zeros_like(grid), where=span > 0)
        return tpr[index] + fraction * (tpr[after] - tpr[index])
    before = np.maximum(index - 1, 0)
    span = fpr[index] - fpr[before]
    fraction = np.divide(fpr[index] - grid, span, out=np.zeros_like(grid), where=span > 0)
    return tpr[index] - fraction * (tpr[index] - tpr[before])


def _hybrid_scores(table: RatingTable, modality: int, reader: int, weight: float) -> np.ndarray:
    return metrics.hybrid(table.ratings[modality, reader] / table.rating_scale, table.model, weight)


def hybrid_modalities(table: RatingTable) -> tuple[str, ...]:
    """The modalities whose ratings are mixed with the model: the unaided readings where the table
    has them, since an aided reading already contains the model; every modality otherwise."""
    unaided = Phase.UNAIDED.value
    return (unaided,) if unaided in table.modalities else table.modalities


def _hybrids(table: RatingTable) -> dict[str, Any]:
    """Per hybrid modality and reader the hybrid's AUC over lambda; ``best_lambda`` is the range
    [lowest, highest] of the lambdas that reach the best AUC (ties are common on few cases) and
    ``best_lambda_used`` the one of them nearest 0.5, where the specificity is compared."""
    hybrids: dict[str, Any] = {"lambdas": LAMBDAS.tolist(), "from": list(hybrid_modalities(table))}
    for modality in hybrids["from"]:
        i = table.modalities.index(modality)
        per_reader = {}
        for j, reader in enumerate(table.readers):
            curve = np.array(
                [metrics.roc_auc(table.truth, _hybrid_scores(table, i, j, weight)) for weight in LAMBDAS]
            )
            tied = LAMBDAS[np.isclose(curve, curve.max(), rtol=0, atol=1e-12)]
            per_reader[reader] = {
                "auc": curve.tolist(),
                "auc_at_0_5": float(curve[int(np.flatnonzero(LAMBDAS == 0.5)[0])]),
                "best_lambda": [float(tied.min()), float(tied.max())],
                "best_lambda_used": float(tied[np.argmin(np.abs(tied - 0.5))]),
                "best_auc": float(curve.max()),
            }
        hybrids[modality] = per_reader
    return hybrids


def _specificity_at(truth: np.ndarray, scores: np.ndarray, sensitivity: float) -> dict[str, Any]:
    point = metrics.threshold_for_sensitivity(truth, scores, sensitivity)
    negatives = int((~truth).sum())
    correct = round(point.specificity * negatives)
    interval = stats.binomtest(correct, negatives).proportion_ci(0.95, method="exact")
    return {
        "specificity": point.specificity,
        "ci": [float(interval.low), float(interval.high)],
        "sensitivity": point.sensitivity,
        "threshold": point.threshold,
    }


def _specificities(
    table: RatingTable, modality: int, sensitivity: float | None, hybrids: dict[str, Any]
) -> dict[str, Any] | None:
    if sensitivity is None:
        if table.recall is None:
            return None
        sensitivity = float(table.recall[modality][:, table.truth].mean(axis=1).mean())
    points: dict[str, Any] = {}
    for j, reader in enumerate(table.readers):
        weights = {"0.5": 0.5, "best": hybrids[reader]["best_lambda_used"]}
        points[reader] = {
            name: _specificity_at(table.truth, _hybrid_scores(table, modality, j, weight), sensitivity)
            | {"lambda": weight}
            for name, weight in weights.items()
        }
    return {
        "readers_mean_sensitivity": sensitivity,
        "model": _specificity_at(table.truth, table.model, sensitivity),
        "hybrid": points,
    }


def _plot_roc(table: RatingTable, aucs: np.ndarray, path: Path) -> None:
    figure = Figure(figsize=(5 * len(table.modalities), 5), dpi=110)
    for i, axes in enumerate(np.atleast_1d(figure.subplots(1, len(table.modalities)))):
        for j, reader in enumerate(table.readers):
            fpr, tpr, _ = metrics.roc_curve(table.truth, table.ratings[i, j])
            axes.plot(fpr, tpr, linewidth=0.8, alpha=0.6, label=f"{reader}: {aucs[i, j]:.3f}")
        axes.plot(
            *averaged_roc(table.ratings[i], table.truth),
            color="black",
            linewidth=2,
            label=f"reader average: {aucs[i].mean():.3f}",
        )
        if table.model is not None:
            fpr, tpr, _ = metrics.roc_curve(table.truth, table.model)
            model_auc = metrics.roc_auc(table.truth, table.model)
            axes.plot(fpr, tpr, color="tab:red", linestyle="--", linewidth=2, label=f"model: {model_auc:.3f}")
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="1 - specificity", ylabel="sensitivity")
        axes.set_title(f"ROC, {table.modalities[i]}")
        axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def _plot_pr(table: RatingTable, path: Path) -> None:
    figure = Figure(figsize=(5 * len(table.modalities), 5), dpi=110)
    for i, axes in enumerate(np.atleast_1d(figure.subplots(1, len(table.modalities)))):
        series: Sequence[tuple[str, np.ndarray]] = [
            (reader, table.ratings[i, j]) for j, reader in enumerate(table.readers)
        ]
        if table.model is not None:
            series = [*series, ("model", table.model)]
        for name, scores in series:
            precision, recall, _ = metrics.pr_curve(table.truth, scores)
            axes.step(
                recall, precision, where="post", label=f"{name}: {metrics.pr_auc(table.truth, scores):.3f}"
            )
        axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall (sensitivity)", ylabel="precision")
        axes.set_title(f"Precision-recall, {table.modalities[i]}")
        axes.legend(loc="lower left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def _plot_hybrid(table: RatingTable, hybrids: dict[str, Any], path: Path) -> None:
    shown = hybrids["from"]
    figure = Figure(figsize=(5 * len(shown), 5), dpi=110)
    for modality, axes in zip(shown, np.atleast_1d(figure.subplots(1, len(shown))), strict=True):
        for reader in table.readers:
            axes.plot(LAMBDAS, hybrids[modality][reader]["auc"], label=reader)
        axes.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        axes.set(xlim=(0, 1), xlabel="lambda (weight of the reader)", ylabel="ROC AUC of the hybrid")
        axes.set_title(f"Hybrid AUC over lambda, {modality}")
        axes.legend(loc="lower center", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python numbers, non-finite numbers to None."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
