"""Small trees of the four public datasets, as their published descriptions lay them out (folder and
file names, headers, label tables), with synthetic images from :mod:`tests.core.dicom_factory`.

Each builder returns what the test needs to know of the tree: where each lesion is, in the stored
frame. Right views are written mirrored (facing right in the file, no PatientOrientation), as many
scanned and exported files are, so that the reader mirrors them back and a mask must follow."""

from __future__ import annotations

import csv
import plistlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from gmic_core.imaging.views import Laterality, View
from tests.core import dicom_factory
from tests.core.dicom_factory import SMALL

# A lesion's box in the stored frame (rows, columns): inside the breast of every SMALL view.
LESION = (slice(110, 140), slice(30, 60))


# Large enough for the published preprocessing (a 100-pixel border is removed around the breast).
PREDICTABLE = (1024, 832)


def stored_pixels(view: View, index: int = 0, size: tuple[int, int] = SMALL) -> np.ndarray:
    """The view's pixels as the reader returns them (the published convention)."""
    return dicom_factory.small_exam(size, index).views[view].pixels


def file_frame(array: np.ndarray, view: View) -> np.ndarray:
    """What this factory writes in the file for a stored-frame array: right views mirrored."""
    return np.ascontiguousarray(array[:, ::-1]) if view.laterality is Laterality.RIGHT else array


def lesion_mask(shape: tuple[int, int] = SMALL) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[LESION] = True
    return mask


def mammogram(view: View, index: int = 0, **attributes: object) -> Dataset:
    """An MG For Presentation image of ``view`` with right views mirrored in the file and no
    PatientOrientation; ``attributes`` set (None deletes)."""
    ds = dicom_factory.relabelled(
        dicom_factory.dataset(view, index=index), PatientOrientation=None, **attributes
    )
    ds.PixelData = file_frame(ds.pixel_array, view).tobytes()
    return ds


def secondary_capture(pixels: np.ndarray, **attributes: object) -> Dataset:
    """A Secondary Capture image as CBIS-DDSM's: Modality MG, no laterality, view or spacing."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "MG"  # and no Body Part Examined: the reader takes Modality MG as a breast image
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_csv(path: Path, columns: list[str], rows: list[dict[str, object]], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


# CBIS-DDSM ----------------------------------------------------------------------------------------

MASS_COLUMNS = [
    "patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
    "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
    "image file path", "cropped image file path", "ROI mask file path",
]  # fmt: skip
CALC_COLUMNS = [
    "patient_id", "breast density", "left or right breast", "image view", "abnormality id",
    "abnormality type", "calc type", "calc distribution", "assessment", "pathology", "subtlety",
    "image file path", "cropped image file path", "ROI mask file path",
]  # fmt: skip
CBIS_UID = "1.3.6.1.4.1.9590.100.1.2."


@dataclass(frozen=True)
class CbisCase:
    folder: str  # e.g. Mass-Training_P_00001_LEFT_CC
    view: View
    pathology: str
    roi_style: str = "two series"  # or "one series" (older downloads: mask and crop in one series)


CBIS_CASES = (
    CbisCase("Mass-Training_P_00001_LEFT_CC", View.L_CC, "MALIGNANT"),
    CbisCase("Mass-Training_P_00001_LEFT_MLO", View.L_MLO, "MALIGNANT"),
    # The same left CC image again, in the Calc set: counted once, its finding kept.
    CbisCase("Calc-Training_P_00001_LEFT_CC", View.L_CC, "BENIGN_WITHOUT_CALLBACK"),
    CbisCase("Calc-Test_P_00001_RIGHT_CC", View.R_CC, "BENIGN", roi_style="one series"),
    CbisCase("Mass-Training_P_00002_RIGHT_MLO", View.R_MLO, "BENIGN"),
)


def write_cbis_ddsm(root: Path, with_csvs: bool = True, size: tuple[int, int] = SMALL) -> Path:
    """The five folders of :data:`CBIS_CASES` under ``root/CBIS-DDSM`` as a newer NBIA download names
    them, each with its ``_1`` ROI folder; the case description CSVs (with the older UID paths that
    match no folder) in ``root/CBIS-DDSM``."""
    tree = root / "CBIS-DDSM"
    rows: dict[str, list[dict[str, object]]] = {"mass": [], "calc": []}
    for case in CBIS_CASES:
        full = secondary_capture(
            file_frame(stored_pixels(case.view, size=size), case.view),
            PatientID=case.folder,
            SeriesDescription="full mammogram images",
        )
        full_path = f"{case.folder}/{full.StudyInstanceUID}/{full.SeriesInstanceUID}/000000.dcm"
        save(
            full,
            tree / case.folder / "07-20-2016-DDSM-74994" / "1.000000-full mammogram images-24515" / "1-1.dcm",
        )
        mask, crop = _roi_files(case, size)
        roi_folder = tree / f"{case.folder}_1" / "09-06-2017-DDSM-69301"
        if case.roi_style == "one series":
            crop.StudyInstanceUID, crop.SeriesInstanceUID = mask.StudyInstanceUID, mask.SeriesInstanceUID
            save(crop, roi_folder / "1.000000-ROI mask images-12345" / "1-1.dcm")
            save(mask, roi_folder / "1.000000-ROI mask images-12345" / "1-2.dcm")
        else:
            save(mask, roi_folder / "1.000000-ROI mask images-12345" / "1-1.dcm")
            save(crop, roi_folder / "2.000000-cropped images-67890" / "1-1.dcm")
        roi_path = f"{case.folder}_1/{mask.StudyInstanceUID}/{mask.SeriesInstanceUID}/000001.dcm"
        crop_path = f"{case.folder}_1/{crop.StudyInstanceUID}/{crop.SeriesInstanceUID}/000000.dcm"
        kind = "mass" if case.folder.startswith("Mass") else "calc"
        side = "LEFT" if case.view.laterality is Laterality.LEFT else "RIGHT"
        row = {
            "patient_id": case.folder.split("_", 1)[1].rsplit("_", 2)[0],
            "breast_density" if kind == "mass" else "breast density": 2,
            "left or right breast": side,
            "image view": case.view.position.value,
            "abnormality id": 1,
            "abnormality type": "mass" if kind == "mass" else "calcification",
            "assessment": 4,
            "pathology": case.pathology,
            "subtlety": 3,
            "image file path": full_path,
            "cropped image file path": crop_path,
            "ROI mask file path": roi_path + "\n",  # as some published cells end
        }
        if kind == "mass":
            row |= {"mass shape": "IRREGULAR", "mass margins": "SPICULATED"}
        else:
            row |= {"calc type": "PLEOMORPHIC", "calc distribution": "CLUSTERED"}
        rows[kind].append(row)
    if with_csvs:
        for kind, columns in (("mass", MASS_COLUMNS), ("calc", CALC_COLUMNS)):
            training = [row for row in rows[kind] if "Training" in str(row["image file path"])]
            test = [row for row in rows[kind] if "Test" in str(row["image file path"])]
            write_csv(tree / f"{kind}_case_description_train_set.csv", columns, training)
            write_csv(tree / f"{kind}_case_description_test_set.csv", columns, test)
    return tree


def _roi_files(case: CbisCase, size: tuple[int, int]) -> tuple[Dataset, Dataset]:
    """The ROI mask (full size, 0/255, file frame) and the crop (small) of a case's abnormality 1."""
    mask = secondary_capture(
        file_frame(lesion_mask(size), case.view).astype(np.uint8) * 255,
        PatientID=f"{case.folder}_1",
        SeriesDescription="ROI mask images",
    )
    crop_pixels = np.ascontiguousarray(stored_pixels(case.view, size=size)[LESION])
    crop = secondary_capture(
        crop_pixels,
        PatientID=f"{case.folder}_1",
        SeriesDescription="ROI mask images" if case.roi_style == "one series" else "cropped images",
    )
    return mask, crop


# VinDr-Mammo --------------------------------------------------------------------------------------

VINDR_BREAST_COLUMNS = [
    "study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
    "breast_birads", "breast_density", "split",
]  # fmt: skip
VINDR_FINDING_COLUMNS = [
    "study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
    "breast_birads", "breast_density", "finding_categories", "finding_birads", "xmin", "ymin", "xmax",
    "ymax", "split",
]  # fmt: skip
# study -> (split, BI-RADS of the left breast, of the right breast)
VINDR_STUDIES = {
    "4e4b6e5f1c0ad0b1cd44fe4f0f1c2d3e": ("training", "BI-RADS 1", "BI-RADS 4"),
    "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d": ("test", "BI-RADS 2", "BI-RADS 3"),
}


def write_vindr_mammo(root: Path, with_csvs: bool = True) -> Path:
    """Two studies of four views under ``root/images``; headers name the laterality but not the view.
    The right breast of each study has one finding (BI-RADS 4 mass, BI-RADS 3 calcification) on
    both its views, at :data:`LESION`."""
    breast_rows, finding_rows = [], []
    for index, (study, (split, left, right)) in enumerate(VINDR_STUDIES.items()):
        series = generate_uid()
        for view in View:
            image_id = f"{index}{view.value.replace('-', '').lower()}{'0' * 24}"[:32]
            save(
                mammogram(view, ViewPosition=None, ViewCodeSequence=None, StudyInstanceUID=study),
                root / "images" / study / f"{image_id}.dicom",
            )
            birads = left if view.laterality is Laterality.LEFT else right
            common = {
                "study_id": study,
                "series_id": series,
                "image_id": image_id,
                "laterality": view.laterality.value,
                "view_position": view.position.value,
                "height": SMALL[0],
                "width": SMALL[1],
                "breast_birads": birads,
                "breast_density": "DENSITY C",
                "split": split,
            }
            breast_rows.append(common)
            file_box = np.argwhere(file_frame(lesion_mask(), view))
            (top, left_column), (bottom, right_column) = file_box.min(axis=0), file_box.max(axis=0) + 1
            finding = view.laterality is Laterality.RIGHT
            finding_rows.append(
                common
                | {
                    "finding_categories": (
                        ("['Mass']" if index == 0 else "['Suspicious Calcification']")
                        if finding
                        else "['No Finding']"
                    ),
                    "finding_birads": birads if finding else "",
                    "xmin": float(left_column) if finding else "",
                    "ymin": float(top) if finding else "",
                    "xmax": float(right_column) if finding else "",
                    "ymax": float(bottom) if finding else "",
                }
            )
    if with_csvs:
        write_csv(root / "breast-level_annotations.csv", VINDR_BREAST_COLUMNS, breast_rows)
        write_csv(root / "finding_annotations.csv", VINDR_FINDING_COLUMNS, finding_rows)
    return root


# CMMD ---------------------------------------------------------------------------------------------

CMMD_COLUMNS = ["ID1", "LeftRight", "Age", "number", "abnormality", "classification", "subtype"]


def write_cmmd(root: Path, with_table: bool = True) -> Path:
    """D1-0001: four views (one study, one series), left breast Malignant in the table, right breast
    without a row; D2-0001: two right views, one of them without a view in its header, Benign."""
    tree = root / "CMMD"
    for number, view in enumerate(View, start=1):
        save(
            mammogram(view, PatientID="D1-0001"),
            tree / "D1-0001" / "07-18-2010-NA-24087" / "1.000000-NA-70244" / f"1-{number}.dcm",
        )
    save(
        mammogram(View.R_CC, index=1, PatientID="D2-0001"),
        tree / "D2-0001" / "07-18-2011-NA-1" / "1.000000-NA-2" / "1-1.dcm",
    )
    save(
        mammogram(View.R_MLO, index=1, PatientID="D2-0001", ViewPosition=None, ViewCodeSequence=None),
        tree / "D2-0001" / "07-18-2011-NA-1" / "1.000000-NA-2" / "1-2.dcm",
    )
    if with_table:
        write_csv(
            tree / "CMMD_clinicaldata_revision.csv",
            CMMD_COLUMNS,
            [
                {"ID1": "D1-0001", "LeftRight": "L", "Age": 44, "number": 2, "abnormality": "mass", "classification": "Malignant", "subtype": "Luminal A"},
                {"ID1": "D2-0001", "LeftRight": "R", "Age": 51, "number": 1, "abnormality": "calcification", "classification": "Benign", "subtype": ""},
            ],
        )  # fmt: skip
    return tree


# INbreast -----------------------------------------------------------------------------------------

INBREAST_COLUMNS = [
    "Patient ID",
    "Patient age",
    "Laterality",
    "View",
    "Acquisition date",
    "File Name",
    "ACR",
    "Bi-Rads",
]
INBREAST_PATIENT = "6c2a4c1e0f3b5a77"
# file id -> (view, Bi-Rads)
INBREAST_FILES = {"20586908": (View.R_CC, "4c"), "20586934": (View.R_MLO, "4c"), "20586960": (View.L_CC, "1"), "20586986": (View.L_MLO, "1")}  # fmt: skip


def inbreast_name(file_id: str, view: View) -> str:
    position = "CC" if view.position.value == "CC" else "ML"  # INbreast's ML is the MLO view
    return f"{file_id}_{INBREAST_PATIENT}_MG_{view.laterality.value}_{position}_ANON.dcm"


def write_inbreast(root: Path, with_table: bool = True) -> Path:
    """One patient's four views under ``root/AllDICOMs`` (headers name neither laterality nor view),
    the right breast's mass outlined (a polygon around :data:`LESION`) in ``root/AllXML``, the table
    ``INbreast.csv``."""
    for file_id, (view, _) in INBREAST_FILES.items():
        ds = mammogram(view, ImageLaterality=None, ViewPosition=None, ViewCodeSequence=None)
        save(ds, root / "AllDICOMs" / inbreast_name(file_id, view))
        if view.laterality is Laterality.RIGHT:
            rows, columns = np.nonzero(file_frame(lesion_mask(), view))
            top, bottom, left, right = rows.min(), rows.max(), columns.min(), columns.max()
            corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
            roi = {
                "Name": "Mass",
                "NumberOfPoints": 4,
                "Point_px": [f"({x}.000000, {y}.000000)" for x, y in corners],
            }
            document = {"Images": [{"ImageIndexInDicomSeries": 0, "NumberOfROIs": 1, "ROIs": [roi]}]}
            (root / "AllXML").mkdir(parents=True, exist_ok=True)
            (root / "AllXML" / f"{file_id}.xml").write_bytes(plistlib.dumps(document, fmt=plistlib.FMT_XML))
    if with_table:
        rows_ = [
            {"Patient ID": "removed", "Patient age": "", "Laterality": view.laterality.value, "View": "CC" if view.position.value == "CC" else "MLO", "Acquisition date": "201001", "File Name": file_id, "ACR": 2, "Bi-Rads": birads}
            for file_id, (view, birads) in INBREAST_FILES.items()
        ]  # fmt: skip
        write_csv(root / "INbreast.csv", INBREAST_COLUMNS, rows_, delimiter=";")
    return root
