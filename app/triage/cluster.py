"""Scoring on a Ray cluster (``gmic triage --ray ADDRESS``): the same jobs and outcomes as
:func:`app.triage.pipeline.score_jobs`, with Ray Data placing the work.

The pipeline is ``from_items(jobs) -> map(prepare_job) -> map_batches(inference actors)``: reading and
preprocessing run as CPU tasks on every node; inference runs in a pool of actors, one per GPU where the
cluster has GPUs (CPU actors otherwise), each building its :class:`~gmic_core.inference.Predictor`
once from the driver's checkpoints, which travel once through the object store. Outcomes stream back
to the driver in the order they finish; the driver (:func:`app.triage.run.run_triage`) stores them.
Ray owns retries and placement: a task or actor lost with its node is run again elsewhere, and since
only the driver writes to the store, and the store keeps one run per exam and model, a retry can
never score an exam twice.

Every node opens the exams' files by the paths the driver found, so the paths must be readable from
every node (a shared filesystem mounted at the same place); a file a worker cannot open is that
exam's failure at stage "load". Rows carry jobs and outcomes pickled, as Ray Data stores arbitrary
Python objects that way anyway and the pickles keep them out of Arrow's type inference.
"""

from __future__ import annotations

import functools
import logging
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.triage.pipeline import Job, Outcome, exams_per_batch, infer_batch, prepare_job
from gmic_core.errors import GMICError
from gmic_core.inference import Precision, Predictor
from gmic_core.model import LoadedCheckpoint
from gmic_core.preprocess import BackgroundThreshold

log = logging.getLogger(__name__)


class ClusterError(GMICError):
    """The Ray cluster named for a run cannot be reached."""


@dataclass(frozen=True)
class PredictorRecipe:
    """What an inference actor needs to build the driver's predictor again on its own device."""

    checkpoints: tuple[LoadedCheckpoint, ...]
    precision: Precision
    tta: int
    background_threshold: BackgroundThreshold
    seed: int
    compile: bool

    @classmethod
    def of(cls, predictor: Predictor) -> PredictorRecipe:
        return cls(
            predictor.checkpoints,
            predictor.precision,
            predictor.tta,
            predictor.background_threshold,
            predictor.seed,
            predictor.compiled,
        )

    def build(self) -> Predictor:
        """The predictor on the actor's device: the GPU Ray assigned it, or the CPU."""
        return Predictor(
            self.checkpoints,
            device="auto",
            precision=self.precision,
            tta=self.tta,
            background_threshold=self.background_threshold,
            seed=self.seed,
            compile=self.compile,
        )


class InferenceActor:
    """One member of the actor pool: its predictor is built once, then runs one prepared exam per call."""

    def __init__(self, recipe: Any) -> None:
        import ray

        self.predictor = (ray.get(recipe) if isinstance(recipe, ray.ObjectRef) else recipe).build()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[bytes]]:
        outcomes = infer_batch(self.predictor, [pickle.loads(prepared) for prepared in batch["prepared"]])
        return {"outcome": [pickle.dumps(outcome) for outcome in outcomes]}


def _prepare_row(row: dict[str, Any], prepare: Callable[[Job], Any]) -> dict[str, bytes]:
    return {"prepared": pickle.dumps(prepare(pickle.loads(row["job"])))}


def cluster_outcomes(
    predictor: Predictor,
    jobs: Sequence[Job],
    address: str,
    cancelled: Callable[[], bool] = lambda: False,
    actors: int | None = None,
    cpus_per_task: float = 1.0,
    batch: int | None = None,
) -> Iterator[Outcome]:
    """Score ``jobs`` on the Ray cluster at ``address`` ("auto", "HOST:PORT" or "ray://HOST:PORT"),
    yielding each :class:`Outcome` as it arrives. ``actors``: the size of the inference pool (default:
    one per GPU of the cluster, else one per node). ``cpus_per_task``: the CPUs each reading task and
    each CPU actor holds. ``batch``: the exams an actor runs as one batch (default
    :func:`~app.triage.pipeline.exams_per_batch`). Stops, without outcomes for the exams in flight, once
    ``cancelled()`` is true; closing the generator shuts the connection down."""
    if not jobs:
        return
    import ray

    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as error:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({error}): start its head node with "
            "`ray start --head`, or give --ray the address that command printed"
        ) from error
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run's own bar reports progress
        context.enable_operator_progress_bars = False
        gpus = int(ray.cluster_resources().get("GPU", 0))
        nodes = sum(1 for node in ray.nodes() if node["Alive"])
        size = actors or gpus or nodes
        log.info("triage on Ray at %s: %d jobs, %d inference actors, %d GPUs", address, len(jobs), size, gpus)
        prepare = functools.partial(
            prepare_job,
            config=predictor.config,
            background_threshold=predictor.background_threshold,
            keep_images=predictor.tta > 0,
        )
        dataset = (
            ray.data.from_items([{"job": pickle.dumps(job)} for job in jobs], override_num_blocks=len(jobs))
            .map(_prepare_row, fn_kwargs={"prepare": prepare}, num_cpus=cpus_per_task)
            .map_batches(
                InferenceActor,
                batch_size=batch or exams_per_batch(gpus > 0),
                compute=ray.data.ActorPoolStrategy(size=size),
                fn_constructor_kwargs={"recipe": ray.put(PredictorRecipe.of(predictor))},
                num_gpus=1 if gpus else 0,
                num_cpus=0 if gpus else cpus_per_task,
            )
        )
        for row in dataset.iter_rows():
            if cancelled():
                return
            yield pickle.loads(row["outcome"])
    finally:
        ray.shutdown()
