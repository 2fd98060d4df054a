"""The PACS work of the workstation (File > Open from PACS), as plain functions for the workers of
:mod:`app.gui.workers`, like :mod:`app.gui.tasks` (Qt-free): the study-level search, and the
retrieval of one study into the workstation's PACS folder, its exam reported as soon as its four
standard views are there."""

from __future__ import annotations

from pathlib import Path

from app.gui.tasks import ScanReport, TaskContext, find_exams
from app.node.config import NodeConfig, PacsNode
from app.node.query import DicomwebSource, DimseSource, StudyQuery, StudyRow
from gmic_core import imaging

PACS_FOLDER = "pacs"  # in the workstation's data folder: one folder per retrieved study


def source_of(node: PacsNode, config: NodeConfig) -> DicomwebSource | DimseSource:
    """DICOMweb where the node has a URL (no calling AE title to register in the PACS), else C-GET."""
    return DicomwebSource(node.dicomweb) if node.dicomweb else DimseSource(node, config.calling_ae)


def find_studies(
    context: TaskContext, source: DicomwebSource | DimseSource, query: StudyQuery
) -> list[StudyRow]:
    context.progress("Searching the PACS", 0, 0)
    return source.find(query)


def retrieve_study(
    context: TaskContext, source: DicomwebSource | DimseSource, study_uid: str, folder: Path
) -> ScanReport:
    """Retrieve the study into ``folder`` (resuming what is there); the first exam with all four
    standard views goes out as a partial result while the rest still arrives. Returns the exams of
    the whole study."""
    shown = False

    def progress(done: int, total: int | None) -> None:
        nonlocal shown
        context.progress("Retrieving from the PACS", done, total or 0)
        if not shown:
            # headers only; a file still being written is a failure of this scan, read on the next
            complete = [exam for exam in imaging.find_exams([folder]).exams if not exam.missing_views]
            if complete:
                shown = True
                context.partial(complete[0])

    source.get(study_uid, folder, progress, context.cancelled)
    return find_exams(context, [folder])
