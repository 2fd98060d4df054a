"""Results as DICOM: every object validated by dciodvfy and dsrdump, read back by highdicom, equal to
the result it came from, and in its source file's own frame (a mirrored copy mirrors exactly)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch
from highdicom.sr.utils import find_content_items
from pydicom.sr.codedict import codes
from pydicom.uid import MammographyCADSRStorage, SecondaryCaptureImageStorage, generate_uid
from scipy import ndimage

from gmic_core.calibration import CalibrationFit, Calibrator, Deciles, SiteCalibration
from gmic_core.config import GMICConfig
from gmic_core.errors import ExportError
from gmic_core.imaging import View, load_exam
from gmic_core.inference import Predictor, ViewImage, load_standard_views
from gmic_core.model import GMIC, LoadedCheckpoint, ModelCard, load_checkpoint
from gmic_core.reporting.codes import CALIBRATED_PROBABILITY, DECILE_SCORE
from gmic_core.reporting.export import export_exam
from gmic_core.reporting.findings import view_findings
from gmic_core.reporting.frames import FileFrame
from gmic_core.reporting.identity import Algorithm
from gmic_core.reporting.picture import MARKING_HEIGHT, MARKING_RGB, WIDTH, marking_rows, render_exam
from gmic_core.synthetic import SynthesisConfig, generate_exam, write_image

SIZE = (512, 416)
THRESHOLD = 0.5
MIRRORED_ORIENTATION = {"A": "P", "P": "A"}


def _checkpoint(seed: int, intended_use: str = "tests only") -> LoadedCheckpoint:
    torch.manual_seed(seed)
    card = ModelCard(f"tiny {seed}", f"0.{seed}", "none", intended_use)
    return LoadedCheckpoint(GMIC(GMICConfig.at_scale(0.25)).eval(), card, f"{seed:064x}", Path("."), False)


def _mirrored(source: Path, target: Path) -> None:
    """The same image stored mirrored: columns reversed, PatientOrientation's row direction swapped."""
    ds = pydicom.dcmread(source)
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[:, ::-1]).tobytes()
    row, column = ds.PatientOrientation
    ds.PatientOrientation = [MIRRORED_ORIENTATION[row[0]] + row[1:], column]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(target, enforce_file_format=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    exam = generate_exam(7, 0, SynthesisConfig(size=SIZE, malignant_fraction=1.0, benign_fraction=0.5))
    plain, mirrored = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("mirrored")
    for view in View:
        write_image(plain / f"{view.value}.dcm", exam, view, "explicit-little")
        _mirrored(plain / f"{view.value}.dcm", mirrored / f"{view.value}.dcm")
    return plain, mirrored


def _run(folder: Path, checkpoints, views=tuple(View)):
    exam = load_exam(folder)
    mammograms = {view: m for view, m in load_standard_views(exam).items() if view in views}
    result = Predictor(checkpoints, device="cpu").predict(
        exam.exam_id, {view: ViewImage(m.pixels) for view, m in mammograms.items()}
    )
    return result, mammograms


@pytest.fixture(scope="module")
def exported(folders, tmp_path_factory):
    """The plain and the mirrored exam, each run and exported; a low threshold so that both maps have
    regions even with random weights."""
    runs = {}
    checkpoints = [_checkpoint(0)]
    for name, folder in zip(("plain", "mirrored"), folders, strict=True):
        result, mammograms = _run(folder, checkpoints)
        threshold = float(np.median(result.views[View.L_CC].saliency))
        paths = export_exam(
            result, mammograms, Algorithm.of(checkpoints), tmp_path_factory.mktemp(name), threshold
        )
        runs[name] = (result, mammograms, paths, threshold)
    return runs


def _validator(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("GMIC_REQUIRE_VALIDATORS") == "1":
            pytest.fail(
                f"{name} is not installed (GMIC_REQUIRE_VALIDATORS=1): apt-get install dicom3tools dcmtk"
            )
        pytest.skip(f"{name} is not installed (Debian: dicom3tools, dcmtk)")
    return path


def _by_kind(paths):
    return {path.name.split("_")[0]: path for path in paths}


def test_every_object_passes_dciodvfy(exported):
    dciodvfy = _validator("dciodvfy")
    for path in exported["plain"][2]:
        report = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True).stderr
        assert not [line for line in report.splitlines() if line.startswith("Error")], (path.name, report)


def test_dsrdump_reads_both_reports(exported):
    dsrdump = _validator("dsrdump")
    kinds = _by_kind(exported["plain"][2])
    for kind in ("cad-sr", "measurement-report"):
        run = subprocess.run([dsrdump, str(kinds[kind])], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert "E:" not in run.stderr, run.stderr


def test_objects_share_the_study_and_copy_the_patient(exported):
    _, mammograms, paths, _ = exported["plain"]
    source = pydicom.dcmread(mammograms[View.L_CC].source, stop_before_pixels=True)
    datasets = [pydicom.dcmread(path) for path in paths]
    assert len(datasets) == 2 + 4 + 1
    assert {ds.StudyInstanceUID for ds in datasets} == {source.StudyInstanceUID}
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 4  # CAD SR, TID 1500, Segmentations, SC
    for ds in datasets:
        assert (ds.PatientName, ds.PatientID, ds.PatientBirthDate) == (
            source.PatientName,
            source.PatientID,
            source.PatientBirthDate,
        )
        assert ds.Manufacturer == "GMIC Reader"
        assert "tiny 0 0.0" in " ".join(ds.SoftwareVersions)
        assert ds.ContentDate
        assert ds.ContentTime


def test_segmentations_read_back_equal_the_saliency_on_the_file_grid(exported):
    result, mammograms, paths, threshold = exported["plain"]
    for view in View:
        seg = hd.seg.segread(_by_kind(paths)[f"seg-{view.value}"])
        assert seg.SegmentationType == "FRACTIONAL"
        expected = view_findings(result.views[view], FileFrame.of(mammograms[view]), threshold).saliency
        stored = seg.pixel_array.astype(np.float64) / seg.MaximumFractionalValue  # [segments, rows, columns]
        np.testing.assert_allclose(stored, expected, atol=0.5 / 255 + 1e-6)
        assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == (
            mammograms[view].sop_instance_uid
        )


def test_secondary_capture_reads_back_as_the_rendered_hanging_protocol(exported):
    result, mammograms, paths, _ = exported["plain"]
    image = hd.imread(_by_kind(paths)["sc"])
    assert image.SOPClassUID == SecondaryCaptureImageStorage
    assert (image.PhotometricInterpretation, image.BitsAllocated, image.SamplesPerPixel) == ("RGB", 8, 3)
    assert image.BurnedInAnnotation == "NO"  # model and probabilities only, no patient identifier
    assert image.SeriesNumber == 9004
    assert image.SeriesDescription == "GMIC CAD picture"
    pixels = image.get_frame(1)
    np.testing.assert_array_equal(pixels, render_exam(result, mammograms, Algorithm.of([_checkpoint(0)])))
    assert pixels.shape[1] == WIDTH


def test_secondary_capture_burns_in_the_demo_marking(exported):
    result, mammograms, _, _ = exported["plain"]
    clinical = Algorithm.of([_checkpoint(0)])
    demo = dataclasses.replace(clinical, not_for_clinical_use=True)
    plain, marked = render_exam(result, mammograms, clinical), render_exam(result, mammograms, demo)
    assert marked.shape[0] == plain.shape[0] + 2 * MARKING_HEIGHT
    for rows in marking_rows(marked.shape[0]):
        banner = marked[rows]
        text = np.any(banner != MARKING_RGB, axis=-1)
        assert 0.02 < text.mean() < 0.5  # white letters on the red banner
        assert np.all(banner[~text] == MARKING_RGB)
    # Header and views are the same picture, moved down by the banner.
    np.testing.assert_array_equal(marked[MARKING_HEIGHT : MARKING_HEIGHT + plain.shape[0]], plain)
    assert not np.all(plain[:MARKING_HEIGHT] == MARKING_RGB, axis=-1).any()


def _findings(path: Path) -> list[dict]:
    """Each Single Image Finding of a CAD SR read back with highdicom: centre, outline, certainty."""
    document = pydicom.dcmread(path)
    items = []
    for finding in find_content_items(document, name=codes.DCM.SingleImageFinding, recursive=True):
        (centre,) = find_content_items(finding, name=codes.DCM.Center)
        (outline,) = find_content_items(finding, name=codes.DCM.Outline)
        (certainty,) = find_content_items(finding, name=codes.DCM.CertaintyOfFinding)
        (image,) = centre.ContentSequence
        items.append(
            {
                "centre": np.asarray(centre.GraphicData, np.float64),
                "outline": np.asarray(outline.GraphicData, np.float64).reshape(-1, 2),
                "certainty": float(certainty.MeasuredValueSequence[0].NumericValue),
                "image": image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID,
            }
        )
    return items


def test_cad_sr_findings_and_probabilities_equal_the_result(exported):
    result, mammograms, paths, threshold = exported["plain"]
    path = _by_kind(paths)["cad-sr"]
    document = pydicom.dcmread(path)
    assert document.SOPClassUID == MammographyCADSRStorage
    assert document.ContentTemplateSequence[0].TemplateIdentifier == "4000"
    expected = []
    for view in View:
        findings = view_findings(result.views[view], FileFrame.of(mammograms[view]), threshold)
        uid = mammograms[view].sop_instance_uid
        expected += [(uid, r.centre[::-1], 100 * r.peak) for r in findings.regions]
        expected += [
            (uid, ((roi.box[1] + roi.box[3]) / 2, (roi.box[0] + roi.box[2]) / 2), 100 * roi.attention)
            for roi in findings.rois
        ]
    found = _findings(path)
    assert any(f["certainty"] > 50 for f in found)  # regions, not only ROI patches
    assert sorted(
        (f["image"], tuple(np.round(f["centre"], 2)), round(f["certainty"], 4)) for f in found
    ) == sorted(
        (uid, tuple(np.round(np.float32(centre), 2)), round(certainty, 4))
        for uid, centre, certainty in expected
    )
    probabilities = [
        float(item.MeasuredValueSequence[0].NumericValue)
        for item in find_content_items(document, name=codes.DCM.ProbabilityOfCancer, recursive=True)
    ]
    assert probabilities == pytest.approx(
        [100 * result.malignancy_score, *(100 * b.malignant for b in result.breasts.values())], abs=1e-6
    )


def test_measurement_report_reads_back_with_highdicom(exported):
    result, _, paths, _ = exported["plain"]
    report = hd.sr.srread(_by_kind(paths)["measurement-report"])
    planar = report.content.get_planar_roi_measurement_groups()
    assert len(planar) == len(_findings(_by_kind(paths)["cad-sr"]))
    for group in planar:
        assert group.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    probabilities = [
        measurement.value
        for group in report.content.get_image_measurement_groups()
        for measurement in group.get_measurements(name=codes.DCM.ProbabilityOfCancer)
    ]
    expected = [
        *(view.malignant for view in result.views.values()),
        *(breast.malignant for breast in result.breasts.values()),
        result.malignancy_score,
    ]
    assert sorted(probabilities) == pytest.approx(sorted(expected), abs=1e-9)


def test_both_reports_carry_a_site_calibration_beside_the_raw_probabilities(folders, tmp_path):
    checkpoints = [_checkpoint(0)]
    result, mammograms = _run(folders[0], checkpoints)
    platt = CalibrationFit(Calibrator("platt", slope=0.5, intercept=-1.0), {}, 0.0, 0.0, 10, 5)
    calibration = SiteCalibration(platt, platt, Deciles(tuple(np.linspace(0.05, 0.95, 9))))
    paths = _by_kind(export_exam(result, mammograms, Algorithm.of(checkpoints), tmp_path, 0.5, calibration))
    score, breasts = result.malignancy_score, result.breasts.values()
    calibrated = [
        calibration.exam_probability(score),
        *(calibration.breast_probability(b.malignant) for b in breasts),
    ]
    document = pydicom.dcmread(paths["cad-sr"])

    def values(name):
        items = find_content_items(document, name=name, recursive=True)
        return [float(item.MeasuredValueSequence[0].NumericValue) for item in items]

    assert values(CALIBRATED_PROBABILITY) == pytest.approx([100 * p for p in calibrated], abs=1e-6)
    assert values(DECILE_SCORE) == [calibration.decile(score)]
    report = hd.sr.srread(paths["measurement-report"])
    measured = [
        measurement.value
        for group in report.content.get_image_measurement_groups()
        for measurement in group.get_measurements(name=CALIBRATED_PROBABILITY)
    ]
    assert sorted(measured) == pytest.approx(sorted(calibrated), abs=1e-9)
    dciodvfy = _validator("dciodvfy")
    for kind in ("cad-sr", "measurement-report"):
        report_text = subprocess.run([dciodvfy, str(paths[kind])], capture_output=True, text=True).stderr
        assert not [line for line in report_text.splitlines() if line.startswith("Error")], report_text


def test_a_mirrored_copy_mirrors_every_point_and_segment(exported):
    (plain, _, plain_paths, _), (mirrored, _, mirrored_paths, _) = exported["plain"], exported["mirrored"]
    assert plain.views[View.R_CC].y_fusion == mirrored.views[View.R_CC].y_fusion
    width = SIZE[1]
    a, b = _findings(_by_kind(plain_paths)["cad-sr"]), _findings(_by_kind(mirrored_paths)["cad-sr"])
    assert len(a) == len(b) > 0
    a = sorted(a, key=lambda f: (round(f["certainty"], 4), round(width - f["centre"][0], 2), f["centre"][1]))
    b = sorted(b, key=lambda f: (round(f["certainty"], 4), round(f["centre"][0], 2), f["centre"][1]))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(y["centre"], [width - x["centre"][0], x["centre"][1]], atol=1e-3)
        np.testing.assert_allclose(
            np.sort(y["outline"][:-1, 0]), np.sort(width - x["outline"][:-1, 0]), atol=1e-3
        )
    for view in View:
        seg_a = hd.seg.segread(_by_kind(plain_paths)[f"seg-{view.value}"]).pixel_array
        seg_b = hd.seg.segread(_by_kind(mirrored_paths)[f"seg-{view.value}"]).pixel_array
        np.testing.assert_array_equal(seg_b, seg_a[..., ::-1])


def test_patches_outside_the_image_are_not_reported(exported):
    """The tiny model on a small image chooses its patches wholly in the window's padding: they stay
    among the result's patches, and neither report, nor the picture (through ``ViewResult.rois``),
    shows a box for them."""
    result, mammograms, paths, threshold = exported["plain"]
    for view in View:
        assert all(result.views[view].patch_outside_image)
        assert view_findings(result.views[view], FileFrame.of(mammograms[view]), threshold).rois == ()
    for kind in ("cad-sr", "measurement-report"):
        assert "ROI patch" not in str(pydicom.dcmread(_by_kind(paths)[kind]))


def test_missing_views_give_fewer_objects(folders, tmp_path):
    checkpoints = [_checkpoint(0)]
    result, mammograms = _run(folders[0], checkpoints, views=(View.L_CC, View.L_MLO, View.R_CC))
    paths = export_exam(result, mammograms, Algorithm.of(checkpoints), tmp_path)
    assert sorted(path.name.split("_")[0] for path in paths) == [
        "cad-sr",
        "measurement-report",
        "sc",
        "seg-L-CC",
        "seg-L-MLO",
        "seg-R-CC",
    ]
    if shutil.which("dciodvfy"):
        for path in paths:
            report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True).stderr
            assert "Error" not in report, report


def test_an_ensemble_lists_every_member_and_the_demo_marking(folders, tmp_path):
    checkpoints = [_checkpoint(1), _checkpoint(2, "Demonstration. NOT FOR CLINICAL USE.")]
    algorithm = Algorithm.of(checkpoints)
    assert algorithm.not_for_clinical_use
    assert not Algorithm.of([_checkpoint(1)]).not_for_clinical_use
    result, mammograms = _run(folders[0], checkpoints, views=(View.L_CC,))
    paths = _by_kind(export_exam(result, mammograms, algorithm, tmp_path))
    cad = pydicom.dcmread(paths["cad-sr"])
    parameters = {
        item.TextValue for item in find_content_items(cad, name=codes.DCM.AlgorithmParameters, recursive=True)
    }
    for checkpoint in checkpoints:
        assert (
            f"{checkpoint.card.name} {checkpoint.card.version} (sha256:{checkpoint.sha256[:12]})"
            in parameters
        )
    assert "NOT FOR CLINICAL USE" in cad.SeriesDescription
    assert "NOT FOR CLINICAL USE" in pydicom.dcmread(paths["seg-L-CC"]).ContentDescription
    assert "NOT FOR CLINICAL USE" in pydicom.dcmread(paths["sc"], stop_before_pixels=True).SeriesDescription


def test_no_patient_identifier_in_file_names_or_log(folders, tmp_path, caplog):
    checkpoints = [_checkpoint(0)]
    result, mammograms = _run(folders[0], checkpoints, views=(View.R_MLO,))
    source = pydicom.dcmread(mammograms[View.R_MLO].source, stop_before_pixels=True)
    with caplog.at_level(logging.DEBUG):
        paths = export_exam(result, mammograms, Algorithm.of(checkpoints), tmp_path)
    identifiers = [str(source.PatientName), source.PatientID, source.AccessionNumber, source.StudyInstanceUID]
    for text in [*(path.name for path in paths), caplog.text]:
        for identifier in identifiers:
            assert identifier not in text


def test_an_exam_without_dicom_files_is_refused(reference_dir, tmp_path):
    exam = load_exam(reference_dir / "sample_exam")
    mammograms = load_standard_views(exam)
    checkpoints = [_checkpoint(0)]
    result = Predictor(checkpoints, device="cpu").predict(
        "0", {view: ViewImage(m.pixels, exam.horizontal_flip) for view, m in mammograms.items()}
    )
    with pytest.raises(ExportError, match="DICOM"):
        export_exam(result, mammograms, Algorithm.of(checkpoints), tmp_path)


def test_predict_keeps_a_result_whose_export_fails(reference_dir, tmp_path):
    from app.predict import predict_paths

    predictor = Predictor([_checkpoint(0)], device="cpu")
    run = predict_paths(predictor, [reference_dir / "sample_exam"], dicom_out=tmp_path / "dicom")
    assert [result.exam_id for result, _ in run.results] == ["0"]
    assert len(run.errors) == 1
    assert "DICOM" in run.errors[0]["error"]


def test_gmic_predict_writes_dicom_out(folders, tmp_path, capsys):
    from app.cli import main
    from gmic_core.model import save_checkpoint

    torch.manual_seed(0)
    card = ModelCard("tiny", "0", "none", "tests only; not for clinical use")
    weights = save_checkpoint(tmp_path / "tiny.pt", GMIC(GMICConfig.at_scale(0.25)).eval(), card)
    out = tmp_path / "dicom"
    assert (
        main(
            [
                "predict",
                str(folders[0]),
                "--weights",
                str(weights),
                "--device",
                "cpu",
                "--dicom-out",
                str(out),
            ]
        )
        == 0
    )
    names = sorted(path.name.split("_")[0] for path in out.iterdir())
    assert names == ["cad-sr", "measurement-report", "sc", *(f"seg-{view.value}" for view in sorted(View))]


DEMO_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "gmic-demo-r18.pt"
# With every breast malignant: fine linear branching calcifications on the right, a spiculated mass on
# the left, each in both views.
LESION_SEED, LESION_INDEX = 7, 0
NEAR_MM = 10.0


@pytest.mark.slow
@pytest.mark.parametrize("mirror", [False, True], ids=["as written", "mirrored"])
def test_the_demo_models_malignant_findings_lie_on_the_lesion_in_the_file_frame(tmp_path, mirror):
    """The demo model on a full-size synthetic exam: on a view with a malignant lesion, a malignant
    region's centre in the CAD SR lies within 1 cm of the lesion's mask, mapped to the file frame."""
    exam = generate_exam(
        LESION_SEED, LESION_INDEX, SynthesisConfig(malignant_fraction=1.0, benign_fraction=0.0)
    )
    written, folder = tmp_path / "written", tmp_path / "exam"
    written.mkdir()
    folder.mkdir()
    for view in View:
        write_image(written / f"{view.value}.dcm", exam, view, "explicit-little")
        if mirror:
            _mirrored(written / f"{view.value}.dcm", folder / f"{view.value}.dcm")
        else:
            shutil.copy(written / f"{view.value}.dcm", folder / f"{view.value}.dcm")
    checkpoints = [load_checkpoint(DEMO_MODEL)]
    result, mammograms = _run(folder, checkpoints)
    paths = _by_kind(export_exam(result, mammograms, Algorithm.of(checkpoints), tmp_path / "out"))
    document = pydicom.dcmread(paths["cad-sr"])
    centres: dict[str, list[np.ndarray]] = {}
    for finding in find_content_items(document, name=codes.DCM.SingleImageFinding, recursive=True):
        texts = [item.TextValue for item in find_content_items(finding, name=codes.DCM.AlgorithmParameters)]
        if any(text.startswith("malignant saliency") for text in texts):
            (centre,) = find_content_items(finding, name=codes.DCM.Center)
            uid = centre.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            centres.setdefault(uid, []).append(np.asarray(centre.GraphicData, np.float64))
    lesion_views = [view for view in View if exam.views[view].mask_malignant is not None]
    assert lesion_views
    nearest = {}
    for view in lesion_views:
        mammogram = mammograms[view]
        mask = FileFrame.of(mammogram).image(exam.views[view].mask_malignant)
        distance_mm = ndimage.distance_transform_edt(~mask, sampling=mammogram.pixel_spacing_mm)
        rows, columns = mask.shape
        nearest[view.value] = min(
            (
                float(distance_mm[min(int(row), rows - 1), min(int(column), columns - 1)])
                for column, row in centres.get(mammogram.sop_instance_uid, [])
            ),
            default=np.inf,
        )
    assert min(nearest.values()) <= NEAR_MM, f"nearest malignant centre per view (mm): {nearest}"
