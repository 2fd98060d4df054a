"""Public mammography datasets read as they are distributed: their folder trees and their own label
files, with no conversion by hand.

:func:`read_layout` reads one dataset's tree into :class:`LayoutExam` objects: images grouped into
exams by the dataset's rules (where the DICOM headers alone cannot group them), each image read with
the layout's :class:`~gmic_core.imaging.Hints` (laterality and view from folder or file names or a
table, where the header is silent), and, where the label files are there, breast labels, findings
with their regions in the file frame, and the split. :func:`import_layout` writes that as this
project's labelled manifest (:mod:`gmic_core.dataset`), with the masks carried into the stored frame.

The layouts (each module's docstring gives its rules; ``docs/validation.md`` for users):

* ``cbis-ddsm``: :mod:`~gmic_core.imaging.layouts.cbis_ddsm` (readable without its CSVs);
* ``vindr-mammo``: :mod:`~gmic_core.imaging.layouts.vindr_mammo`;
* ``cmmd``: :mod:`~gmic_core.imaging.layouts.cmmd`;
* ``inbreast``: :mod:`~gmic_core.imaging.layouts.inbreast`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from gmic_core.errors import ExamError
from gmic_core.imaging.layouts import cbis_ddsm, cmmd, inbreast, vindr_mammo
from gmic_core.imaging.layouts.common import (
    Box,
    Finding,
    LayoutDataset,
    LayoutExam,
    MaskFile,
    Polygon,
    mask_in_stored_frame,
)
from gmic_core.imaging.layouts.importing import ImportSummary, import_layout


class LayoutKind(StrEnum):
    CBIS_DDSM = cbis_ddsm.KIND
    VINDR_MAMMO = vindr_mammo.KIND
    CMMD = cmmd.KIND
    INBREAST = inbreast.KIND


READERS: dict[LayoutKind, Callable[[Path], LayoutDataset]] = {
    LayoutKind.CBIS_DDSM: cbis_ddsm.read,
    LayoutKind.VINDR_MAMMO: vindr_mammo.read,
    LayoutKind.CMMD: cmmd.read,
    LayoutKind.INBREAST: inbreast.read,
}


def read_layout(kind: LayoutKind | str, root: Path | str) -> LayoutDataset:
    """The dataset of layout ``kind`` under ``root`` (headers only; pixels are decoded later). Label
    files are used where they are found and are not needed to read the images. Raises ExamError for
    a root that is not a folder, an unknown kind, or a label file that is not as published."""
    root = Path(root)
    if kind not in LayoutKind.__members__.values():
        raise ExamError(f"unknown layout {kind!r}; one of {', '.join(LayoutKind)}")
    if not root.is_dir():
        raise ExamError(f"{root}: {'not a folder' if root.exists() else 'does not exist'}")
    return READERS[LayoutKind(kind)](root)


__all__ = [
    "Box",
    "Finding",
    "ImportSummary",
    "LayoutDataset",
    "LayoutExam",
    "LayoutKind",
    "MaskFile",
    "Polygon",
    "import_layout",
    "mask_in_stored_frame",
    "read_layout",
]
