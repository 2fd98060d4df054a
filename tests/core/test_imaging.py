"""gmic_core.imaging: the DICOM reader on real files and on synthetic files re-encoded and
re-labelled, the VOI rule, orientation, exams from folders and PNG manifests."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from gmic_core.errors import (
    CorruptDicomError,
    DicomError,
    ExamError,
    LateralityError,
    NoPixelDataError,
    NotABreastImageError,
    NotAnImageError,
    NotAScreeningViewError,
    NotDicomError,
    PixelDecodeError,
    TomosynthesisError,
    UnsupportedImageError,
    UnsupportedTransferSyntaxError,
    ViewError,
)
from gmic_core.imaging import (
    BreastLabels,
    Hints,
    ImageFormat,
    Laterality,
    MaskFrame,
    NotScreening,
    OrientationSource,
    Photometric,
    PresentationIntent,
    View,
    ViewCode,
    ViewModifier,
    Voi,
    VoiFunction,
    VoiLut,
    Window,
    load_exam,
    load_image,
    read_dicom,
    read_dicom_header,
    read_exam_manifest,
    scan_folder,
)
from tests.core import dicom_factory as factory

# What each reference file must give: an error class, or (view, laterality, intent, photometric).
REFERENCE_EXPECTATIONS: dict[
    str, type[DicomError] | tuple[View, Laterality, PresentationIntent, Photometric]
] = {
    "BTO_stub_3frames.dcm": TomosynthesisError,
    "DX-Im-SiemensMultix.dcm": NotABreastImageError,
    "MG-Im-GE-SenDS-scaled.dcm": NotAScreeningViewError,
    "MG-Im-GE_Seno_1_ForPresentation.dcm": NotAScreeningViewError,
    "MG-Im-GE_Seno_1_ForProcessing.dcm": NotAScreeningViewError,
    "MG-Im-GE_Seno_2_ForPresentation.dcm": NotAScreeningViewError,
    "MG-Im-Hologic-PropProj.dcm": NoPixelDataError,
    "MG-RDSR-GEPristina-2D.dcm": NotAnImageError,
    "MG-RDSR-GEPristina-DBT.dcm": NotAnImageError,
    "MG-RDSR-Giotto-DBT.dcm": NotAnImageError,
    "MG-RDSR-Hologic_2D.dcm": NotAnImageError,
    "MG-RDSR-Hologic_mix.dcm": NotAnImageError,
    "MG_Explicit_Little.dcm": (
        View.R_CC,
        Laterality.RIGHT,
        PresentationIntent.FOR_PRESENTATION,
        Photometric.MONOCHROME2,
    ),
    "MG1_J2KI": (View.L_MLO, Laterality.LEFT, PresentationIntent.UNSPECIFIED, Photometric.MONOCHROME2),
    "MG1_JPLY": PixelDecodeError,
    "MG1_sub4_ExplicitLE.dcm": (
        View.L_MLO,
        Laterality.LEFT,
        PresentationIntent.UNSPECIFIED,
        Photometric.MONOCHROME2,
    ),
    "MG1_sub4_J2KR.dcm": (
        View.L_MLO,
        Laterality.LEFT,
        PresentationIntent.UNSPECIFIED,
        Photometric.MONOCHROME2,
    ),
    "MG1_sub4_JLSL.dcm": (
        View.L_MLO,
        Laterality.LEFT,
        PresentationIntent.UNSPECIFIED,
        Photometric.MONOCHROME2,
    ),
    "MG1_sub4_MONO1.dcm": (
        View.L_MLO,
        Laterality.LEFT,
        PresentationIntent.UNSPECIFIED,
        Photometric.MONOCHROME1,
    ),
    "MG1_sub4_RLE.dcm": (
        View.L_MLO,
        Laterality.LEFT,
        PresentationIntent.UNSPECIFIED,
        Photometric.MONOCHROME2,
    ),
}
SUB4 = ("MG1_sub4_ExplicitLE.dcm", "MG1_sub4_J2KR.dcm", "MG1_sub4_JLSL.dcm", "MG1_sub4_RLE.dcm")


@pytest.fixture(scope="session")
def dicom_dir(dicom_samples: Path) -> Path:
    return dicom_samples


def test_every_reference_file_is_covered(dicom_dir: Path) -> None:
    files = {path.name for path in dicom_dir.iterdir() if path.name != "README.md"}
    assert files == set(REFERENCE_EXPECTATIONS)


@pytest.mark.parametrize("name", sorted(REFERENCE_EXPECTATIONS))
def test_reference_file(dicom_dir: Path, name: str) -> None:
    expected = REFERENCE_EXPECTATIONS[name]
    if isinstance(expected, type):
        with pytest.raises(expected) as error:
            read_dicom(dicom_dir / name)
        assert str(dicom_dir / name) in str(error.value)
        return
    view, laterality, intent, photometric = expected
    image = read_dicom(dicom_dir / name)
    header = read_dicom_header(dicom_dir / name)
    assert (image.view, image.laterality, image.presentation_intent, image.photometric) == expected
    assert header.view is view
    assert header.shape == image.pixels.shape
    assert image.pixels.dtype == np.uint16
    assert image.pixels.ndim == 2
    assert image.voi.default is not None
    assert image.sop_instance_uid == header.sop_instance_uid
    assert laterality is header.laterality
    assert intent is header.presentation_intent
    assert photometric is header.photometric


def test_header_read_refuses_what_the_full_read_refuses(dicom_dir: Path) -> None:
    for name, expected in REFERENCE_EXPECTATIONS.items():
        if isinstance(expected, type) and expected is not PixelDecodeError:
            with pytest.raises(expected):
                read_dicom_header(dicom_dir / name)


def test_lossless_encodings_of_the_reference_give_identical_pixels(dicom_dir: Path) -> None:
    images = [read_dicom(dicom_dir / name).pixels for name in SUB4]
    for pixels in images[1:]:
        np.testing.assert_array_equal(pixels, images[0])


def test_monochrome1_reference_displays_as_its_monochrome2_twin(dicom_dir: Path) -> None:
    plain = read_dicom(dicom_dir / "MG1_sub4_ExplicitLE.dcm")
    inverted = read_dicom(dicom_dir / "MG1_sub4_MONO1.dcm")
    np.testing.assert_array_equal(inverted.pixels, plain.pixels)  # higher is brighter in both
    assert inverted.voi.default == Window(2049.0, 4095.0)  # the file's 2047 mirrored (PS3.3 C.11.2.1.2.1)
    np.testing.assert_allclose(inverted.display(), plain.display(), atol=1e-3)


def _full_field(dicom_dir: Path, name: str, folder: Path) -> Path:
    """A copy of a GE reference file read as a screening image: its 1 x 2 stub pixels tiled to a
    2560 x 2048 detector, its STEREO protocol name removed; the rest of the header as it is."""
    ds = pydicom.dcmread(dicom_dir / name)
    pixels = np.resize(ds.pixel_array, (2560, 2048))
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.tobytes()
    del ds.ProtocolName
    return factory.save(ds, folder / name)


def test_ge_reference_files_are_refused_as_stereotactic_or_too_small(dicom_dir: Path) -> None:
    with pytest.raises(NotAScreeningViewError, match=r"stereotactic.*\(ProtocolName STEREO\)") as stereo:
        read_dicom_header(dicom_dir / "MG-Im-GE_Seno_1_ForPresentation.dcm")
    assert stereo.value.reason is NotScreening.STEREOTACTIC
    with pytest.raises(NotAScreeningViewError, match=r"4 x 4 pixels cover 0 x 0 mm") as small:
        read_dicom_header(dicom_dir / "MG-Im-GE-SenDS-scaled.dcm")  # ProtocolName ROUTINE
    assert small.value.reason is NotScreening.TOO_SMALL


def test_ge_voi_rule_first_window_wins_over_the_lut_sequence(dicom_dir: Path, tmp_path: Path) -> None:
    voi = read_dicom_header(_full_field(dicom_dir, "MG-Im-GE_Seno_1_ForPresentation.dcm", tmp_path)).voi

    assert [window.explanation for window in voi.windows] == ["NORMAL", "HARDER", "SOFTER"]
    assert [lut.explanation for lut in voi.luts] == ["NORMAL", "HARDER", "SOFTER"]
    assert voi.default == Window(2262.0, 380.0, VoiFunction.SIGMOID, "NORMAL")
    assert (voi.center, voi.width) == (2262.0, 380.0)
    assert voi.apply(np.array([2262.0]))[0] == pytest.approx(0.5)


def test_a_file_without_voi_gets_an_automatic_window(dicom_dir: Path, tmp_path: Path) -> None:
    image = read_dicom(_full_field(dicom_dir, "MG-Im-GE_Seno_1_ForProcessing.dcm", tmp_path))
    assert image.ref.voi.default is None
    assert image.voi.default.explanation == "AUTO"


def test_pixel_spacing_is_imager_spacing_over_magnification(dicom_dir: Path, tmp_path: Path) -> None:
    assert read_dicom_header(dicom_dir / "MG_Explicit_Little.dcm").pixel_spacing_mm == pytest.approx(
        (1 / 3, 1 / 3)
    )
    ge = read_dicom_header(
        _full_field(dicom_dir, "MG-Im-GE_Seno_1_ForPresentation.dcm", tmp_path)
    )  # its PixelSpacing is meaningless
    assert ge.pixel_spacing_mm == pytest.approx((0.094090909, 0.094090909))
    assert read_dicom_header(dicom_dir / "MG1_J2KI").pixel_spacing_mm is None


def test_view_and_laterality_sources_of_reference_files(dicom_dir: Path) -> None:
    coded = read_dicom_header(dicom_dir / "MG_Explicit_Little.dcm")  # SRT code, no ViewPosition
    assert (coded.position.code, coded.position.source) == (ViewCode.CC, "ViewCodeSequence")
    assert coded.laterality is Laterality.RIGHT
    secondary_capture = read_dicom_header(dicom_dir / "MG1_J2KI")  # Laterality only
    assert (secondary_capture.laterality, secondary_capture.position.source) == (
        Laterality.LEFT,
        "ViewPosition",
    )


# Synthetic files, re-encoded and re-labelled.


@pytest.mark.parametrize("transfer_syntax", factory.LOSSLESS_SYNTAXES, ids=lambda uid: uid.name)
def test_every_lossless_transfer_syntax_gives_identical_pixels(tmp_path: Path, transfer_syntax: str) -> None:
    original = factory.dataset()
    path = factory.save(factory.encode(original, transfer_syntax), tmp_path / "image")
    image = read_dicom(path)
    np.testing.assert_array_equal(image.pixels, original.pixel_array)
    assert not image.mirrored
    assert image.view is View.L_CC


def test_monochrome1_synthetic_file_reads_as_monochrome2(tmp_path: Path) -> None:
    from gmic_core.synthetic import write_dataset

    write_dataset(
        tmp_path / "m1",
        1,
        3,
        size=factory.SMALL,
        photometric="MONOCHROME1",
        transfer_syntax="explicit-little",
    )
    write_dataset(tmp_path / "m2", 1, 3, size=factory.SMALL, transfer_syntax="jpeg2000-lossless")
    for view in View:
        inverted = read_dicom(tmp_path / "m1" / "exam_0000" / f"{view.value}.dcm")
        plain = read_dicom(tmp_path / "m2" / "exam_0000" / f"{view.value}.dcm")
        assert inverted.photometric is Photometric.MONOCHROME1
        np.testing.assert_array_equal(inverted.pixels, plain.pixels)
        np.testing.assert_allclose(inverted.display(), plain.display(), atol=1e-6)


def test_unsupported_transfer_syntax(tmp_path: Path) -> None:
    ds = factory.dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile
    ds.PixelData = encapsulate([bytes(64)])
    ds["PixelData"].VR = "OB"
    with pytest.raises(UnsupportedTransferSyntaxError):
        read_dicom(factory.save(ds, tmp_path / "mpeg"))


@pytest.mark.parametrize(
    ("attributes", "laterality"),
    [
        ({"ImageLaterality": "L"}, Laterality.LEFT),
        ({"ImageLaterality": None, "Laterality": "R"}, Laterality.RIGHT),
        ({"ImageLaterality": "R", "Laterality": "R"}, Laterality.RIGHT),
    ],
)
def test_laterality_sources(tmp_path: Path, attributes: dict, laterality: Laterality) -> None:
    path = factory.save(factory.relabelled(factory.dataset(), **attributes), tmp_path / "image.dcm")
    assert read_dicom_header(path).laterality is laterality


def test_frame_laterality(tmp_path: Path) -> None:
    anatomy = Dataset()
    anatomy.FrameLaterality = "R"
    group = Dataset()
    group.FrameAnatomySequence = Sequence([anatomy])
    ds = factory.relabelled(
        factory.dataset(), ImageLaterality=None, SharedFunctionalGroupsSequence=Sequence([group])
    )
    assert read_dicom_header(factory.save(ds, tmp_path / "image.dcm")).laterality is Laterality.RIGHT


@pytest.mark.parametrize(
    "attributes",
    [
        {"PatientID": "Mass-Test_P_00173_RIGHT_CC"},
        {"ImageLaterality": "L", "Laterality": "R"},
        {"ImageLaterality": "B"},
    ],
    ids=["contradicted by text", "contradictory", "both"],
)
def test_bad_laterality(tmp_path: Path, attributes: dict) -> None:
    ds = factory.relabelled(factory.dataset(), PatientName="Doe^Jane", **attributes)
    with pytest.raises(LateralityError) as error:
        read_dicom_header(factory.save(ds, tmp_path / "image.dcm"))
    assert "Doe" not in str(error.value)


def test_a_layouts_hints_fill_what_the_header_lacks_and_are_checked_against_it(tmp_path: Path) -> None:
    hints = Hints(Laterality.RIGHT, ViewCode.MLO, "CBIS-DDSM folder name")
    bare = factory.relabelled(
        factory.dataset(View.R_MLO), ImageLaterality=None, ViewPosition=None, ViewCodeSequence=Sequence([])
    )
    path = factory.save(bare, tmp_path / "bare.dcm")
    ref = read_dicom_header(path, hints)
    assert (ref.view, ref.laterality_source, ref.position.source) == (View.R_MLO, hints.source, hints.source)
    assert load_image(ref).view is View.R_MLO
    labelled = factory.save(factory.dataset(View.L_CC), tmp_path / "labelled.dcm")
    assert read_dicom_header(labelled).laterality_source == "ImageLaterality"
    with pytest.raises(LateralityError, match="ImageLaterality L, CBIS-DDSM folder name R"):
        read_dicom_header(labelled, hints)
    with pytest.raises(ViewError, match="ViewPosition CC, CBIS-DDSM folder name MLO"):
        read_dicom_header(labelled, Hints(view=ViewCode.MLO, source=hints.source))


def _code(value: str, scheme: str, meaning: str, modifiers: tuple[Dataset, ...] = ()) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    if modifiers:
        item.ViewModifierCodeSequence = Sequence(list(modifiers))
    return item


@pytest.mark.parametrize(
    ("view_position", "codes", "code", "source", "modifiers"),
    [
        ("MLO", [], ViewCode.MLO, "ViewPosition", set()),
        (None, [_code("399368009", "SCT", "medio-lateral oblique")], ViewCode.MLO, "ViewCodeSequence", set()),
        (None, [_code("R-10226", "SRT", "medio-lateral oblique")], ViewCode.MLO, "ViewCodeSequence", set()),
        (None, [_code("399162004", "SCT", "cranio-caudal")], ViewCode.CC, "ViewCodeSequence", set()),
        ("XCCL", [], ViewCode.XCCL, "ViewPosition", set()),
        ("ML", [], ViewCode.ML, "ViewPosition", set()),
        ("CCID", [], ViewCode.CC, "ViewPosition", {ViewModifier.IMPLANT_DISPLACED}),
        (
            "CC",
            [_code("399162004", "SCT", "cranio-caudal", (_code("399055006", "SCT", "spot compression"),))],
            ViewCode.CC,
            "ViewPosition",
            {ViewModifier.SPOT_COMPRESSION},
        ),
        (
            None,
            [_code("R-10242", "SRT", "cranio-caudal", (_code("R-102D6", "SRT", "magnification"),))],
            ViewCode.CC,
            "ViewCodeSequence",
            {ViewModifier.MAGNIFICATION},
        ),
        ("FLATFIELD", [], ViewCode.OTHER, "ViewPosition", set()),
    ],
)
def test_view_sources_and_modifiers(
    tmp_path: Path, view_position: str | None, codes: list, code: ViewCode, source: str, modifiers: set
) -> None:
    ds = factory.relabelled(factory.dataset(), ViewPosition=view_position, ViewCodeSequence=Sequence(codes))
    ref = read_dicom_header(factory.save(ds, tmp_path / "image.dcm"))
    assert (ref.position.code, ref.position.source, set(ref.position.modifiers)) == (code, source, modifiers)
    standard = code in (ViewCode.CC, ViewCode.MLO) and not modifiers
    assert (ref.view is not None) == standard


@pytest.mark.parametrize("view", [View.L_CC, View.R_CC, View.L_MLO, View.R_MLO])
@pytest.mark.parametrize("orientation_known", [True, False])
def test_a_stored_mirror_image_is_mirrored_back(tmp_path: Path, view: View, orientation_known: bool) -> None:
    original = factory.dataset(view)
    expected = original.pixel_array
    flipped = factory.relabelled(original)
    flipped.PixelData = np.ascontiguousarray(expected[:, ::-1]).tobytes()
    if orientation_known:  # the stored file faces the wrong way, and says so
        flipped.PatientOrientation = ["A" if view.laterality is Laterality.RIGHT else "P", "F"]
    else:
        del flipped.PatientOrientation
    image = read_dicom(factory.save(flipped, tmp_path / "image.dcm"))
    assert image.mirrored
    assert image.orientation_source is (
        OrientationSource.PATIENT_ORIENTATION if orientation_known else OrientationSource.PIXELS
    )
    np.testing.assert_array_equal(image.pixels, expected)
    unflipped = read_dicom(
        factory.save(factory.relabelled(original, PatientOrientation=None), tmp_path / "b.dcm")
    )
    assert not unflipped.mirrored
    assert unflipped.orientation_source is OrientationSource.PIXELS


def test_modality_lut_rescale(tmp_path: Path) -> None:
    ds = factory.relabelled(factory.dataset(), RescaleSlope="2", RescaleIntercept="-100")
    image = read_dicom(factory.save(ds, tmp_path / "image.dcm"))
    assert image.pixels.dtype == np.float32
    np.testing.assert_allclose(image.pixels, ds.pixel_array * 2.0 - 100)


def test_modality_lut_sequence(tmp_path: Path) -> None:
    table = Dataset()
    table.LUTDescriptor = [4096, 0, 16]
    table.add_new("LUTData", "US", list(range(4095, -1, -1)))
    ds = factory.relabelled(factory.dataset(), ModalityLUTSequence=Sequence([table]), RescaleSlope=None)
    image = read_dicom(factory.save(ds, tmp_path / "image.dcm"))
    np.testing.assert_array_equal(image.pixels, 4095 - ds.pixel_array.astype(np.int64))


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"}, NotABreastImageError),  # CT
        (
            {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "BodyPartExamined": "CHEST", "Modality": "OT"},
            NotABreastImageError,
        ),
        ({"NumberOfFrames": "2"}, UnsupportedImageError),
        ({"PhotometricInterpretation": "RGB"}, UnsupportedImageError),
        ({"Rows": None}, CorruptDicomError),
        ({"SOPClassUID": None}, CorruptDicomError),
        ({"HighBit": 15}, CorruptDicomError),
    ],
)
def test_refused_headers(tmp_path: Path, attributes: dict, error: type[DicomError]) -> None:
    with pytest.raises(error):
        read_dicom(factory.save(factory.relabelled(factory.dataset(), **attributes), tmp_path / "image.dcm"))


def test_a_garbled_attribute_names_itself(tmp_path: Path) -> None:
    path = factory.save(factory.dataset(), tmp_path / "image.dcm")
    data = path.read_bytes()
    tag = data.index(b"\x28\x00\x51\x10DS")  # (0028,1051) Window Width, explicit VR little endian
    length = int.from_bytes(data[tag + 6 : tag + 8], "little")
    path.write_bytes(data[: tag + 8] + b"w" * length + data[tag + 8 + length :])
    with pytest.raises(CorruptDicomError, match="WindowWidth"):
        read_dicom_header(path)


def test_secondary_capture_of_the_breast_is_read(tmp_path: Path) -> None:
    ds = factory.relabelled(
        factory.dataset(), SOPClassUID="1.2.840.10008.5.1.4.1.1.7", PresentationIntentType=None
    )
    ref = read_dicom_header(factory.save(ds, tmp_path / "image.dcm"))
    assert ref.presentation_intent is PresentationIntent.UNSPECIFIED
    assert ref.view is View.L_CC


def test_not_dicom_empty_truncated_missing(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    (tmp_path / "empty").write_bytes(b"")
    whole = factory.save(factory.dataset(), tmp_path / "whole.dcm").read_bytes()
    (tmp_path / "truncated").write_bytes(whole[: len(whole) - 5000])
    (tmp_path / "header_only").write_bytes(whole[:400])
    with pytest.raises(NotDicomError):
        read_dicom(text)
    with pytest.raises(NotDicomError):
        read_dicom(tmp_path / "empty")
    for name in ("truncated", "header_only"):
        with pytest.raises(CorruptDicomError):
            read_dicom_header(tmp_path / name)
        with pytest.raises(CorruptDicomError):
            read_dicom(tmp_path / name)
    with pytest.raises(DicomError, match="cannot be opened"):
        read_dicom(tmp_path / "absent.dcm")


def test_voi_functions_follow_ps3_3() -> None:
    values = np.array([0.0, 99.5, 100.0, 150.0, 200.0])
    np.testing.assert_allclose(Window(100.0, 101.0).apply(values), [0.0, 0.5, 0.505, 1.0, 1.0])
    np.testing.assert_allclose(
        Window(100.0, 100.0, VoiFunction.LINEAR_EXACT).apply(values), [0, 0.495, 0.5, 1, 1]
    )
    sigmoid = Window(100.0, 50.0, VoiFunction.SIGMOID).apply(values)
    np.testing.assert_allclose(sigmoid[2], 0.5)
    assert np.all(np.diff(sigmoid) > 0)
    lut = VoiLut(10, np.array([0, 100, 255], dtype=np.uint16), 8)
    np.testing.assert_allclose(lut.apply(np.array([0, 11, 12, 99])), [0, 100 / 255, 1, 1])


@pytest.mark.parametrize("function", list(VoiFunction))
def test_inverted_voi_displays_inverted_values_the_same(function: VoiFunction) -> None:
    values = np.arange(0, 4096, 7, dtype=np.float64)
    window = Window(1500.0, 900.0, function)
    np.testing.assert_allclose(
        window.inverted(4095).apply(4095 - values), 1 - window.apply(values), atol=1e-6
    )
    lut = VoiLut(1000, np.linspace(0, 4095, 2000).astype(np.uint16), 12)
    np.testing.assert_allclose(lut.inverted(4095).apply(4095 - values), 1 - lut.apply(values), atol=1e-6)
    assert Voi().default is None


# Exams.


def _write_exam(folder: Path, index: int = 0, views: tuple[View, ...] = tuple(View)) -> dict[View, Dataset]:
    folder.mkdir(parents=True, exist_ok=True)
    datasets = {view: factory.dataset(view, index=index) for view in views}
    for view, ds in datasets.items():
        factory.save(ds, folder / f"{view.value}")  # no extension
    return datasets


def test_scan_groups_by_study_reports_failures_and_carries_on(tmp_path: Path, dicom_dir: Path) -> None:
    _write_exam(tmp_path / "a" / "deep", index=0)
    _write_exam(tmp_path / "b", index=1, views=(View.R_CC, View.L_CC, View.R_MLO))
    shutil.copy(dicom_dir / "MG-RDSR-Hologic_2D.dcm", tmp_path / "b" / "dose")
    whole = (tmp_path / "b" / "R-CC").read_bytes()
    (tmp_path / "b" / "broken").write_bytes(whole[:3000])
    (tmp_path / "b" / "readme.txt").write_text("notes")
    (tmp_path / ".hidden").write_text("ignored")
    progress: list[tuple[int, int]] = []
    result = scan_folder(tmp_path, progress=lambda done, total: progress.append((done, total)))
    exam_ids = sorted(factory.small_exam(index=index).exam_id for index in (0, 1))
    assert [exam.exam_id for exam in result.exams] == exam_ids
    by_id = {exam.exam_id: exam for exam in result.exams}
    assert by_id[factory.small_exam(index=1).exam_id].missing_views == [View.L_MLO]
    assert by_id[factory.small_exam(index=0).exam_id].missing_views == []
    assert [path.name for path, _ in result.failures] == ["broken", "dose"]
    assert result.skipped == [tmp_path / "b" / "readme.txt"]
    assert progress[-1] == (progress[-1][1], progress[-1][1])
    with pytest.raises(ExamError, match="2 studies"):
        load_exam(tmp_path)


def test_duplicate_views_follow_the_rule_and_extras_are_kept(tmp_path: Path) -> None:
    datasets = _write_exam(tmp_path)
    base = datasets[View.L_CC]
    later = factory.relabelled(base, AcquisitionTime="120000")
    processing = factory.relabelled(base, AcquisitionTime="130000", PresentationIntentType="FOR PROCESSING")
    spot_code = _code("399162004", "SCT", "cranio-caudal", (_code("399055006", "SCT", "spot compression"),))
    spot = factory.relabelled(base, ViewCodeSequence=Sequence([spot_code]))
    xccl = factory.relabelled(base, ViewPosition="XCCL")
    for name, ds in (("z_later", later), ("a_processing", processing), ("spot", spot), ("xccl", xccl)):
        factory.save(ds, tmp_path / name)
    exam = load_exam(tmp_path)
    assert exam.images[View.L_CC].sop_instance_uid == later.SOPInstanceUID
    extra = {ref.sop_instance_uid for ref in exam.extra_images}
    assert extra == {base.SOPInstanceUID, processing.SOPInstanceUID, spot.SOPInstanceUID, xccl.SOPInstanceUID}
    assert exam.images[View.L_CC].acquisition_time == datetime(2020, 1, 6, 12, 0)
    assert not exam.horizontal_flip
    assert exam.missing_views == []


def test_exam_keeps_identifiers_out_of_repr_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    datasets = _write_exam(tmp_path)
    ds = factory.relabelled(datasets[View.R_CC], Laterality="L", PatientName="Doe^Jane")
    factory.save(ds, tmp_path / "unknown_side")
    exam = load_exam(tmp_path)
    name = str(datasets[View.R_CC].PatientName)
    assert exam.patient.name == name
    assert exam.patient.patient_id == datasets[View.R_CC].PatientID
    for text in (
        repr(exam),
        repr(exam.images[View.R_CC]),
        repr(load_image(exam.images[View.R_CC])),
        caplog.text,
    ):
        assert name not in text
        assert "Doe" not in text
        assert exam.patient.patient_id not in text
        assert exam.patient.birth_date not in text
    assert "unknown_side" in caplog.text


def test_load_exam_refuses_folders_without_images(tmp_path: Path, dicom_dir: Path) -> None:
    shutil.copy(dicom_dir / "MG-RDSR-GEPristina-2D.dcm", tmp_path)
    with pytest.raises(ExamError, match="no usable mammograms"):
        load_exam(tmp_path)


def test_images_of_one_study_naming_two_patients_are_refused(tmp_path: Path) -> None:
    datasets = _write_exam(tmp_path, views=(View.L_CC,))
    factory.save(factory.relabelled(datasets[View.L_CC], PatientID="OTHER"), tmp_path / "other")
    result = scan_folder(tmp_path)
    assert result.exams == []
    assert len(result.failures) == 2
    assert "OTHER" not in result.failures[0][1]


def test_load_image_notices_a_replaced_file(tmp_path: Path) -> None:
    datasets = _write_exam(tmp_path, views=(View.L_CC,))
    ref = scan_folder(tmp_path).exams[0].images[View.L_CC]
    factory.save(factory.relabelled(datasets[View.L_CC]), tmp_path / View.L_CC.value)
    with pytest.raises(DicomError, match="changed"):
        load_image(ref)


def test_png_manifest_exam(reference_dir: Path) -> None:
    manifest = reference_dir / "sample_exam" / "exam.json"
    exam = load_exam(manifest.parent)
    assert exam.exam_id == "0"
    assert exam.horizontal_flip is False
    assert exam.missing_views == []
    assert exam.labels == BreastLabels(0, 0, 1, 0)
    assert exam.labels.of(Laterality.RIGHT) == (1, 0)
    assert set(exam.segmentations) == {View.R_CC, View.R_MLO}
    assert exam.segmentations[View.R_CC].frame is MaskFrame.MODEL
    assert exam.segmentations[View.R_CC].malignant is None
    ref = exam.images[View.L_MLO]
    image = load_image(ref)
    assert ref.format is ImageFormat.PNG
    assert not image.mirrored
    np.testing.assert_array_equal(image.pixels, np.asarray(Image.open(manifest.parent / "0_L-MLO.png")))
    assert image.pixels.dtype == np.uint16
    assert image.voi.default.explanation == "AUTO"
    assert [exam.exam_id for exam in scan_folder(manifest.parent).exams] == ["0"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"horizontal_flip": "MAYBE"}, "horizontal_flip"),
        ({"views": {"X-CC": "synthetic_L-CC.png"}}, "unknown view"),
        ({"views": {"L-CC": "absent.png"}}, "does not exist"),
        ({"labels": {"left_benign": 2}}, "labels"),
        ({"exam_id": ""}, "exam_id"),
    ],
)
def test_bad_manifests(tmp_path: Path, fixtures_dir: Path, change: dict, message: str) -> None:
    import json

    sample = fixtures_dir / "synthetic_parity"
    for file in sample.iterdir():
        shutil.copy(file, tmp_path)
    manifest = json.loads((sample / "exam.json").read_text())
    manifest.update(change)
    (tmp_path / "exam.json").write_text(json.dumps(manifest))
    with pytest.raises(ExamError, match=message):
        read_exam_manifest(tmp_path / "exam.json")
    result = scan_folder(tmp_path)
    assert result.exams == []
    assert result.failures[0][0] == tmp_path / "exam.json"


def test_uncompressed_file_without_the_extension_is_found(tmp_path: Path) -> None:
    ds = factory.dataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    factory.save(factory.relabelled(ds, StudyInstanceUID=generate_uid()), tmp_path / "IMG0001")
    assert len(scan_folder(tmp_path).exams) == 1
