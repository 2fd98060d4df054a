"""What an image is, from the evidence real files have: view and laterality from tags, a layout's
hints, text patterns and pixels, each with its source; non-screening images refused with the reason;
duplicates with a corrupt copy; a single file as a path; pydicom's log kept off the console."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gmic_core.errors import (
    DicomError,
    LateralityError,
    NotABreastImageError,
    NotAScreeningViewError,
    PixelDecodeError,
    ViewError,
)
from gmic_core.imaging import (
    Hints,
    Laterality,
    NotScreening,
    View,
    ViewCode,
    ViewModifier,
    decode_view,
    find_exams,
    load_exam,
    read_dicom,
    read_dicom_header,
)
from gmic_core.imaging import dicom as dicom_module
from gmic_core.imaging.evidence import TextEvidence, laterality_from_pixels, read_text, view_from_pixels
from gmic_core.synthetic import SynthesisConfig, generate_exam
from tests.conftest import REPO_ROOT
from tests.core import dicom_factory as factory

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# What the reader needs to know a view from its header: removed, the other evidence must speak.
VIEW_TAGS = {
    "ImageLaterality": None,
    "ViewPosition": None,
    "ViewCodeSequence": None,
    "PatientOrientation": None,
}


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return factory.save(ds, path)


def _cbis_ddsm(view: View = View.L_CC, **attributes: object) -> Dataset:
    """A CBIS-DDSM full mammogram's header: Secondary Capture with Modality MG, no laterality or view
    attributes, both only in the PatientID."""
    side = "LEFT" if view.laterality is Laterality.LEFT else "RIGHT"
    header = {
        **VIEW_TAGS,
        "SOPClassUID": SECONDARY_CAPTURE,
        "Modality": "MG",
        "BodyPartExamined": None,
        "PresentationIntentType": None,
        "PatientID": f"Mass-Test_P_00173_{side}_{view.position.value}",
        "SeriesDescription": "full mammogram images",
    }
    return factory.relabelled(factory.dataset(view), **{**header, **attributes})


# Text patterns.


@pytest.mark.parametrize(
    ("text", "laterality", "view"),
    [
        ("L CC", Laterality.LEFT, ViewCode.CC),
        ("RMLO", Laterality.RIGHT, ViewCode.MLO),
        ("R-MLO", Laterality.RIGHT, ViewCode.MLO),
        ("Mass-Test_P_00173_LEFT_CC", Laterality.LEFT, ViewCode.CC),
        ("Calc-Training_P_00038_RIGHT_MLO_1", Laterality.RIGHT, ViewCode.MLO),
        ("right mlo", Laterality.RIGHT, ViewCode.MLO),
        ("LCC.dcm", Laterality.LEFT, ViewCode.CC),
        ("ML", None, ViewCode.ML),  # the medio-lateral projection, not MLO
        ("R ML", Laterality.RIGHT, ViewCode.ML),
        ("LEFT BREAST", Laterality.LEFT, None),
        ("MLO", None, ViewCode.MLO),
        ("L", None, None),  # a lone letter says nothing
        ("ACCESSION SUCCESS", None, None),  # CC inside a word
        ("1.2.840.113619.2.55.3", None, None),
        ("R CC L CC", None, ViewCode.CC),  # two lateralities: says nothing of the laterality
        ("full mammogram images", None, None),
    ],
)
def test_text_patterns_match_whole_tokens(
    text: str, laterality: Laterality | None, view: ViewCode | None
) -> None:
    assert read_text(text) == TextEvidence(laterality, view)


def test_cbis_ddsm_header_is_read_from_its_patient_id(tmp_path: Path) -> None:
    for body_part in (None, "LEFT BREAST", "BREAST"):
        ds = _cbis_ddsm(View.L_CC, BodyPartExamined=body_part)
        ref = read_dicom_header(_save(ds, tmp_path / "000000.dcm"))
        assert (ref.view, ref.laterality_source, ref.position.source) == (View.L_CC, "PatientID", "PatientID")


def test_folder_names_speak_where_the_header_is_silent(tmp_path: Path) -> None:
    ds = _cbis_ddsm(View.R_MLO, PatientID="P_00173", SeriesDescription=None)
    path = _save(ds, tmp_path / "Mass-Test_P_00173_RIGHT_MLO" / "1.3.6.1.4" / "1.3.6.1.5" / "000000.dcm")
    ref = read_dicom_header(path)
    assert (ref.view, ref.laterality_source, ref.position.source) == (
        View.R_MLO,
        "folder name",
        "folder name",
    )
    assert read_dicom(path).view is View.R_MLO


def test_file_and_folder_names_are_not_consulted_where_the_header_speaks(tmp_path: Path) -> None:
    ref = read_dicom_header(_save(factory.dataset(View.L_CC), tmp_path / "R_MLO" / "RMLO.dcm"))
    assert (ref.view, ref.laterality_source, ref.position.source) == (
        View.L_CC,
        "ImageLaterality",
        "ViewPosition",
    )


@pytest.mark.parametrize(
    ("attributes", "hints", "folder", "error", "named"),
    [
        ({"SeriesDescription": "R CC"}, None, "", LateralityError, "ImageLaterality L, SeriesDescription R"),
        ({"ProtocolName": "L MLO"}, None, "", ViewError, "ViewPosition CC, ProtocolName MLO"),
        (
            {**VIEW_TAGS, "PatientID": "Mass-Test_P_00173_LEFT_CC"},
            Hints(Laterality.RIGHT, ViewCode.CC, "INbreast file name"),
            "",
            LateralityError,
            "INbreast file name R, PatientID L",
        ),
        ({**VIEW_TAGS}, None, "LEFT_CC/RIGHT_CC", LateralityError, "folder name R, folder name L"),
    ],
    ids=["tag and series description", "tag and protocol", "hint and patient id", "two folders"],
)
def test_a_conflict_between_sources_is_an_error_naming_both(
    tmp_path: Path, attributes: dict, hints: Hints | None, folder: str, error: type[DicomError], named: str
) -> None:
    ds = factory.relabelled(factory.dataset(View.L_CC), PatientName="Doe^Jane", **attributes)
    path = _save(ds, tmp_path / folder / "image.dcm")
    with pytest.raises(error, match=named) as raised:
        read_dicom_header(path, hints)
    assert "Doe" not in str(raised.value)
    assert "00173" not in str(raised.value)


@pytest.mark.parametrize("view", list(View))
def test_pixels_decide_last_and_are_recorded_as_the_source(tmp_path: Path, view: View) -> None:
    ref = read_dicom_header(_save(factory.relabelled(factory.dataset(view), **VIEW_TAGS), tmp_path / "x.dcm"))
    assert (ref.view, ref.laterality_source, ref.position.source) == (view, "pixels", "pixels")


def test_pixel_rules_on_synthetic_exams() -> None:
    """The measured reliability stated in docs/imaging.md: every view of 40 synthetic exams at two
    sizes (the files are written in the display convention the laterality rule assumes)."""
    wrong = []
    for size in ((256, 208), (1024, 832)):
        for index in range(20):
            exam = generate_exam(11, index, SynthesisConfig(size=size))
            for view, image in exam.views.items():
                found = (laterality_from_pixels(image.pixels), view_from_pixels(image.pixels))
                if found != (view.laterality, ViewCode(view.position.value)):
                    wrong.append((size, index, view))
    assert wrong == []


def test_a_header_that_suffices_decodes_no_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(factory.dataset(View.R_MLO), tmp_path / "image.dcm")
    cbis = _save(_cbis_ddsm(View.R_CC), tmp_path / "cbis.dcm")

    def no_decoding(*arguments: object) -> np.ndarray:
        raise AssertionError("pixels decoded at header time")

    monkeypatch.setattr(dicom_module, "_values", no_decoding)
    assert read_dicom_header(path).view is View.R_MLO
    assert read_dicom_header(cbis).view is View.R_CC


# Breast images of other classes.


@pytest.mark.parametrize(
    ("attributes", "readable"),
    [
        ({"Modality": "MG", "BodyPartExamined": None}, True),
        ({"Modality": "OT", "BodyPartExamined": "LEFT BREAST"}, True),
        ({"Modality": "OT", "BodyPartExamined": "BREASTS"}, False),
        ({"Modality": "CR", "BodyPartExamined": None}, False),
    ],
)
def test_secondary_capture_is_a_breast_image_by_modality_or_body_part(
    tmp_path: Path, attributes: dict, readable: bool
) -> None:
    ds = factory.relabelled(factory.dataset(), SOPClassUID=SECONDARY_CAPTURE, **attributes)
    path = _save(ds, tmp_path / "image.dcm")
    if readable:
        assert read_dicom_header(path).view is View.L_CC
    else:
        with pytest.raises(NotABreastImageError, match="not a breast image"):
            read_dicom_header(path)


# Images that are not screening views.


def _stereotactic_aperture(**attributes: object) -> Dataset:
    """A Siemens stereotactic image's header: 1318 x 788 pixels of 0.085 mm (a paddle aperture)."""
    header = {
        "ImagerPixelSpacing": ["0.085", "0.085"],
        "EstimatedRadiographicMagnificationFactor": None,
        "Manufacturer": "SIEMENS",
    }
    return factory.relabelled(factory.dataset(View.L_CC, size=(1318, 788)), **{**header, **attributes})


SPECIMEN_CODE = ("127457009", "SCT", "tissue specimen from breast")


@pytest.mark.parametrize(
    ("attributes", "reason", "evidence"),
    [
        ({"ImageType": ["DERIVED", "PRIMARY", "STEREO", "LEFT"]}, NotScreening.STEREOTACTIC, "ImageType"),
        ({"SeriesDescription": "Stereotactic Biopsy"}, NotScreening.STEREOTACTIC, "SeriesDescription"),
        ({"ProtocolName": "Needle Localisation"}, NotScreening.STEREOTACTIC, "ProtocolName"),
        ({"AcquisitionDeviceProcessingDescription": "SPECIMEN"}, NotScreening.SPECIMEN, "Acquisition"),
        ({"ViewPosition": None, "ViewCodeSequence": "specimen"}, NotScreening.SPECIMEN, "ViewCodeSequence"),
        ({}, NotScreening.TOO_SMALL, "1318 x 788 pixels cover 67 x 112 mm"),
    ],
    ids=["stereo image type", "biopsy", "localisation", "specimen text", "specimen code", "too small"],
)
def test_images_that_are_not_screening_views_are_refused_with_the_reason(
    tmp_path: Path, attributes: dict, reason: NotScreening, evidence: str
) -> None:
    if attributes.get("ViewCodeSequence") == "specimen":
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = SPECIMEN_CODE
        attributes = {**attributes, "ViewCodeSequence": Sequence([code])}
    path = _save(_stereotactic_aperture(**attributes), tmp_path / "image.dcm")
    for read in (read_dicom_header, read_dicom):
        with pytest.raises(NotAScreeningViewError, match=evidence) as raised:
            read(path)
        assert raised.value.reason is reason
        assert f"not a screening view: {reason.value}" in str(raised.value)


def test_an_image_without_spacing_is_never_refused_for_its_size(tmp_path: Path) -> None:
    ds = _stereotactic_aperture(ImagerPixelSpacing=None, PixelSpacing=None)
    assert read_dicom_header(_save(ds, tmp_path / "image.dcm")).pixel_spacing_mm is None


def _exam_folder(folder: Path, index: int = 0) -> dict[View, Path]:
    return {view: _save(factory.dataset(view, index=index), folder / f"{view.value}.dcm") for view in View}


def test_refused_images_are_scan_failures_and_spot_views_are_reported_not_scored(tmp_path: Path) -> None:
    files = _exam_folder(tmp_path)
    base = pydicom.dcmread(files[View.L_CC])
    _save(
        _stereotactic_aperture(StudyInstanceUID=base.StudyInstanceUID, ImageType="DERIVED\\PRIMARY\\STEREO"),
        tmp_path / "stereo.dcm",
    )
    _save(factory.relabelled(base, SeriesDescription="L CC SPOT"), tmp_path / "spot.dcm")
    _save(factory.relabelled(base, ProtocolName="MAG CC"), tmp_path / "magnified.dcm")
    result = find_exams([tmp_path])
    (exam,) = result.exams
    assert exam.missing_views == []
    assert [(path.name, "stereotactic" in message) for path, message in result.failures] == [
        ("stereo.dcm", True)
    ]
    assert {path.name: message.split(": ", 1)[1] for path, message in result.not_scored} == {
        "magnified.dcm": "not scored: magnification view, not a standard screening view",
        "spot.dcm": "not scored: spot compression view, not a standard screening view",
    }
    spot = next(ref for ref in exam.extra_images if ref.source.name == "spot.dcm")
    assert spot.position.modifiers == {ViewModifier.SPOT_COMPRESSION}


# Duplicates: a copy that cannot be decoded never stands in for one that can.


@factory.READS_DAMAGED_FILES
@pytest.mark.parametrize("kind", factory.CORRUPTIONS)
@pytest.mark.parametrize("name", ["0_copy.dcm", "z_copy.dcm"], ids=["sorts first", "sorts last"])
def test_a_corrupt_copy_never_stands_in_for_a_valid_one(tmp_path: Path, kind: str, name: str) -> None:
    files = _exam_folder(tmp_path / "exam")
    factory.corrupt_copy(files[View.L_CC], tmp_path / "exam" / name, kind)
    result = find_exams([tmp_path / "exam"])
    (exam,) = result.exams
    assert exam.missing_views == []
    expected = read_dicom(files[View.L_CC]).pixels
    np.testing.assert_array_equal(decode_view(exam, View.L_CC).pixels, expected)
    copies = [exam.images[View.L_CC], *(ref for ref in exam.extra_images if ref.view is View.L_CC)]
    if kind == "encoded pixels":  # readable header: kept, and passed over when it does not decode
        assert sorted(ref.source.name for ref in copies) == sorted([name, "L-CC.dcm"])
        assert result.failures == []
    else:
        assert [ref.source.name for ref in copies] == ["L-CC.dcm"]
        assert [path.name for path, _ in result.failures] == [name]


# A single file.


def test_a_single_dicom_file_is_an_exam(tmp_path: Path, reference_dir: Path) -> None:
    files = _exam_folder(tmp_path)
    result = find_exams([files[View.R_MLO]])
    (exam,) = result.exams
    assert list(exam.images) == [View.R_MLO]
    assert exam.missing_views == [View.R_CC, View.L_CC, View.L_MLO]
    assert exam.source == tmp_path
    assert load_exam(files[View.R_MLO]).images[View.R_MLO].source == files[View.R_MLO]
    (tmp_path / "notes.txt").write_text("not an image")
    not_dicom = find_exams([tmp_path / "notes.txt", tmp_path / "absent.dcm"])
    assert not_dicom.exams == []
    assert [message.split(": ", 1)[1] for _, message in not_dicom.failures] == [
        "does not exist",
        "not a DICOM file (no 'DICM' marker after the 128-byte preamble); nor an exam.json",
    ]
    manifest = find_exams([reference_dir / "sample_exam" / "exam.json"])
    assert [exam.exam_id for exam in manifest.exams] == ["0"]


def test_the_same_file_given_twice_is_read_once(tmp_path: Path) -> None:
    files = _exam_folder(tmp_path)
    (exam,) = find_exams([tmp_path, files[View.L_CC]]).exams
    assert exam.extra_images == []


# pydicom's log.


def test_a_user_never_sees_pydicom_warnings(tmp_path: Path) -> None:
    """Outside pytest, which records every warning, reading a damaged file prints nothing but the
    typed error's message the caller chooses to show."""
    truncated = tmp_path / "truncated.dcm"
    factory.corrupt_copy(_save(factory.dataset(), tmp_path / "image.dcm"), truncated, "encoded pixels")
    code = (
        "import sys\n"
        "from gmic_core.errors import DicomError\n"
        "from gmic_core.imaging import read_dicom\n"
        "try:\n    read_dicom(sys.argv[1])\nexcept DicomError:\n    pass\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    run = subprocess.run(
        [sys.executable, "-c", code, str(truncated)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""


@factory.READS_DAMAGED_FILES
def test_pydicom_tracebacks_go_to_the_debug_log_only(
    tmp_path: Path, dicom_samples: Path, caplog: pytest.LogCaptureFixture
) -> None:
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    truncated = tmp_path / "truncated.dcm"
    factory.corrupt_copy(_save(factory.dataset(), tmp_path / "image.dcm"), truncated, "encoded pixels")
    try:
        with caplog.at_level(logging.DEBUG, logger="gmic_core.imaging.dicom"):
            with pytest.raises(PixelDecodeError):
                read_dicom(dicom_samples / "MG1_JPLY")
            with pytest.raises(DicomError):
                read_dicom(truncated)
    finally:
        logging.getLogger().removeHandler(handler)
    assert console.getvalue() == ""
    from_pydicom = [record for record in caplog.records if record.getMessage().startswith("pydicom: ")]
    assert from_pydicom
    assert all(record.levelno == logging.DEBUG for record in from_pydicom)
    assert any(record.exc_info for record in from_pydicom)
