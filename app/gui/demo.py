"""The embedded demo: synthetic exams written once into the user's data folder (Qt-free)."""

from __future__ import annotations

from pathlib import Path

from app.gui.tasks import TaskContext, check_cancelled
from gmic_core.imaging import Exam, load_exam
from gmic_core.synthetic import FULL_SIZE, SynthesisConfig, generate_exam, write_image

DEMO_SEED = 2026  # not a seed the demo model was trained on (1 and 100)
DEMO_EXAMS = 6
# Half the breasts carry a lesion, so the demo shows saliency on most exams.
DEMO_SYNTHESIS = SynthesisConfig(size=FULL_SIZE, malignant_fraction=0.5, benign_fraction=0.5)
COMPLETE_MARKER = ".complete"  # written after an exam's last view, so a half-written exam is redone


def prepare_demo_exams(
    context: TaskContext,
    folder: Path,
    exams: int | None = None,
    synthesis: SynthesisConfig | None = None,
) -> list[Exam]:
    """The demo exams under ``folder`` (:data:`DEMO_EXAMS` of :data:`DEMO_SYNTHESIS` by default),
    writing those not there yet; each exam is reported through ``context.partial`` as soon as it is
    on disk, so the worklist fills while the rest are made."""
    exams = DEMO_EXAMS if exams is None else exams
    synthesis = DEMO_SYNTHESIS if synthesis is None else synthesis
    found = []
    for index in range(exams):
        check_cancelled(context, "preparing the demo exams")
        exam_folder = folder / f"demo_{index:02d}"
        if not (exam_folder / COMPLETE_MARKER).is_file():
            context.progress("Preparing the demo exams (first start only)", index, exams)
            exam_folder.mkdir(parents=True, exist_ok=True)
            synthetic = generate_exam(DEMO_SEED, index, synthesis)
            for view in synthetic.views:
                write_image(exam_folder / f"{view.value}.dcm", synthetic, view)
            (exam_folder / COMPLETE_MARKER).touch()
        exam = load_exam(exam_folder)
        found.append(exam)
        context.partial(exam)
    context.progress("Demo exams ready", exams, exams)
    return found
