"""The public-dataset layouts: each read from a small tree laid out as published, with and without its
label files; labels, masks in the stored frame, the manifest an import writes, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli import LAYOUTS, main
from gmic_core.config import GMICConfig
from gmic_core.dataset import read_manifest
from gmic_core.errors import ExamError
from gmic_core.imaging import read_dicom
from gmic_core.imaging.layouts import LayoutKind, Polygon, import_layout, mask_in_stored_frame, read_layout
from gmic_core.imaging.views import Laterality, View
from gmic_core.inference import Predictor
from gmic_core.model import GMIC, ModelCard, save_checkpoint
from gmic_core.training.evaluate import evaluate
from tests.core import layout_factory as factory

LEFT, RIGHT = Laterality.LEFT, Laterality.RIGHT


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """An untrained GMIC at an eighth of the published input size, seeded."""
    torch.manual_seed(0)
    model = GMIC(GMICConfig.at_scale(0.125))
    return save_checkpoint(
        tmp_path_factory.mktemp("model") / "tiny.pt", model, ModelCard("tiny", "0", "none", "tests")
    )


@pytest.fixture(scope="module")
def cbis(tmp_path_factory):
    return factory.write_cbis_ddsm(tmp_path_factory.mktemp("cbis"))


@pytest.fixture(scope="module")
def cbis_without_csvs(tmp_path_factory):
    return factory.write_cbis_ddsm(tmp_path_factory.mktemp("cbis_bare"), with_csvs=False)


@pytest.fixture(scope="module")
def predictable_cbis(tmp_path_factory):
    """The CBIS-DDSM tree at a size the published preprocessing can crop."""
    return factory.write_cbis_ddsm(tmp_path_factory.mktemp("cbis_large"), size=factory.PREDICTABLE)


def _mask(path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 0


def _overlap(mask: np.ndarray, expected: np.ndarray) -> float:
    return float((mask & expected).sum() / (mask | expected).sum())


def test_the_cli_names_every_layout():
    assert tuple(LayoutKind) == LAYOUTS


# CBIS-DDSM ----------------------------------------------------------------------------------------


def test_cbis_ddsm_without_its_csvs_groups_patients_from_the_folder_names(cbis_without_csvs):
    dataset = read_layout("cbis-ddsm", cbis_without_csvs)
    assert not dataset.label_files
    exams = {layout_exam.exam.exam_id: layout_exam.exam for layout_exam in dataset.exams}
    assert set(exams) == {"P_00001", "P_00002"}
    assert set(exams["P_00001"].images) == {View.L_CC, View.L_MLO, View.R_CC}
    assert set(exams["P_00002"].images) == {View.R_MLO}
    ref = exams["P_00001"].images[View.R_CC]
    assert ref.laterality_source == "CBIS-DDSM folder name"
    assert ref.position.source == "CBIS-DDSM folder name"
    # The left CC image is in both the Mass and the Calc set: one of them is counted.
    (duplicate,) = [(path, reason) for path, reason in dataset.left_out if "counted once" in reason]
    assert "Mass-Training_P_00001_LEFT_CC" in str(duplicate[0])  # Calc- sorts first
    assert exams["P_00001"].extra_images == []
    # Labels need the CSVs; the images decode without them, mirrored by the reader.
    assert all(not layout_exam.breast_labels for layout_exam in dataset.exams)
    image = read_dicom(ref.source, ref.hints)
    assert image.mirrored
    np.testing.assert_array_equal(image.pixels, factory.stored_pixels(View.R_CC))


def test_cbis_ddsm_labels_split_and_findings_from_csv_paths_that_match_no_folder(cbis):
    dataset = read_layout("cbis-ddsm", cbis)
    assert len(dataset.label_files) == 4
    exams = {layout_exam.exam.exam_id: layout_exam for layout_exam in dataset.exams}
    first, second = exams["P_00001"], exams["P_00002"]
    # Left: a malignant mass and a benign-without-callback calcification; right: benign.
    assert first.breast_labels == {LEFT: (1, 1), RIGHT: (1, 0)}
    assert first.exam.labels is not None
    assert first.exam.labels.of(LEFT) == (1, 1)
    assert second.breast_labels == {RIGHT: (1, 0)}
    assert second.exam.labels is None  # the left breast is not in the dataset
    # P_00001 has folders in Training and Test: a test exam, so no patient is in both splits.
    assert (first.split, second.split) == ("test", "train")
    assert first.lesions == {LEFT: ("calcification", "mass"), RIGHT: ("calcification",)}
    kinds = sorted((finding.view.value, finding.malignant, finding.kind) for finding in first.findings)
    assert kinds == [
        ("L-CC", False, "calcification"),
        ("L-CC", True, "mass"),
        ("L-MLO", True, "mass"),
        ("R-CC", False, "calcification"),
    ]
    # The ROI folder holding the mask and the crop in one series: the mask is the full-size file.
    (right_cc,) = [finding for finding in first.findings if finding.view is View.R_CC]
    assert right_cc.region.path.name == "1-2.dcm"


def test_cbis_ddsm_import_writes_masks_on_the_lesion_in_the_stored_frame(cbis, tmp_path):
    summary = import_layout(read_layout("cbis-ddsm", cbis), tmp_path)
    assert (summary.exams, summary.images) == (2, 4)
    assert summary.breasts == {"benign": 3, "malignant": 1, "normal": 0}
    exams = {exam.exam_id: exam for exam in read_manifest(summary.manifest)}
    right_cc = exams["P_00001"].images[View.R_CC]
    assert right_cc.path.is_absolute()
    assert right_cc.path.is_relative_to(cbis)
    assert right_cc.split == "test"
    assert right_cc.labels == (1, 0)
    assert right_cc.mask_malignant is None
    expected = factory.lesion_mask()
    stored = _mask(right_cc.mask_benign)
    np.testing.assert_array_equal(stored, expected)  # mirrored with the image: on the lesion
    assert not np.array_equal(stored, factory.file_frame(expected, View.R_CC))
    left_cc = exams["P_00001"].images[View.L_CC]
    np.testing.assert_array_equal(_mask(left_cc.mask_malignant), expected)
    np.testing.assert_array_equal(_mask(left_cc.mask_benign), expected)
    assert left_cc.lesions == ("calcification", "mass")


def test_cbis_ddsm_import_needs_the_csvs(cbis_without_csvs, tmp_path):
    with pytest.raises(ExamError, match="no label files of cbis-ddsm"):
        import_layout(read_layout("cbis-ddsm", cbis_without_csvs), tmp_path)


def test_mask_in_stored_frame_follows_the_readers_mirror(cbis):
    file = next(cbis.glob("Calc-Test_P_00001_RIGHT_CC/*/*/1-1.dcm"))
    image = read_dicom(file, read_layout("cbis-ddsm", cbis).exams[0].exam.images[View.R_CC].hints)
    in_file = factory.file_frame(factory.lesion_mask(), View.R_CC)
    np.testing.assert_array_equal(mask_in_stored_frame(in_file, image), factory.lesion_mask())
    with pytest.raises(ExamError, match="a mask of 10 x 10"):
        mask_in_stored_frame(np.zeros((10, 10), bool), image)


# VinDr-Mammo --------------------------------------------------------------------------------------


def test_vindr_mammo_views_labels_and_box_masks(tmp_path):
    root = factory.write_vindr_mammo(tmp_path / "vindr")
    dataset = read_layout("vindr-mammo", root)
    exams = {layout_exam.exam.exam_id: layout_exam for layout_exam in dataset.exams}
    first, second = (exams[study] for study in factory.VINDR_STUDIES)
    assert set(first.exam.images) == set(View)
    assert first.exam.images[View.R_MLO].position.source == "VinDr-Mammo breast-level_annotations.csv"
    # BI-RADS 1 normal, 4 malignant; 2 and 3 benign.
    assert first.breast_labels == {LEFT: (0, 0), RIGHT: (0, 1)}
    assert second.breast_labels == {LEFT: (1, 0), RIGHT: (1, 0)}
    assert (first.split, second.split) == ("train", "test")
    assert first.lesions == {RIGHT: ("mass",)}
    assert second.lesions == {RIGHT: ("suspicious calcification",)}
    summary = import_layout(dataset, tmp_path / "out")
    assert (summary.exams, summary.images) == (2, 8)
    manifest = {exam.exam_id: exam for exam in read_manifest(summary.manifest)}
    malignant = manifest[next(iter(factory.VINDR_STUDIES))].images[View.R_CC]
    np.testing.assert_array_equal(_mask(malignant.mask_malignant), factory.lesion_mask())
    benign = manifest[list(factory.VINDR_STUDIES)[1]].images[View.R_MLO]
    assert benign.mask_malignant is None
    np.testing.assert_array_equal(_mask(benign.mask_benign), factory.lesion_mask())


def test_vindr_mammo_without_its_tables_takes_the_views_from_the_pixels(tmp_path):
    root = factory.write_vindr_mammo(tmp_path / "vindr", with_csvs=False)
    dataset = read_layout("vindr-mammo", root)
    for layout_exam in dataset.exams:
        assert set(layout_exam.exam.images) == set(View)
        assert not layout_exam.exam.extra_images
        sources = {(ref.position.source, ref.laterality_source) for ref in layout_exam.exam.images.values()}
        assert sources == {("pixels", "ImageLaterality")}


# CMMD ---------------------------------------------------------------------------------------------


def test_cmmd_labels_per_breast_and_breasts_without_a_row_left_out(tmp_path):
    root = factory.write_cmmd(tmp_path)
    dataset = read_layout("cmmd", root)
    exams = {layout_exam.exam.exam_id: layout_exam for layout_exam in dataset.exams}
    assert exams["D1-0001"].breast_labels == {LEFT: (0, 1)}
    assert exams["D2-0001"].breast_labels == {RIGHT: (1, 0)}
    assert set(exams["D2-0001"].exam.images) == {View.R_CC, View.R_MLO}  # R-MLO's view from the pixels
    assert exams["D2-0001"].exam.images[View.R_MLO].position.source == "pixels"
    summary = import_layout(dataset, tmp_path / "out")
    assert (summary.exams, summary.images) == (2, 4)
    assert summary.breasts == {"benign": 1, "malignant": 1, "normal": 0}
    reasons = [reason for _, reason in summary.left_out]
    assert sum("not known to be normal" in reason for reason in reasons) == 2  # D1-0001's right views
    assert {exam.split for exam in read_manifest(summary.manifest)} == {"test"}


def test_cmmd_reads_without_its_table(tmp_path):
    dataset = read_layout("cmmd", factory.write_cmmd(tmp_path, with_table=False))
    assert [len(layout_exam.exam.images) for layout_exam in dataset.exams] == [4, 2]
    with pytest.raises(ExamError, match="no label files of cmmd"):
        import_layout(dataset, tmp_path / "out")


# INbreast -----------------------------------------------------------------------------------------


def test_inbreast_views_from_file_names_labels_and_outlines(tmp_path):
    root = factory.write_inbreast(tmp_path)
    dataset = read_layout("inbreast", root)
    (layout_exam,) = dataset.exams
    assert layout_exam.exam.exam_id == f"{factory.INBREAST_PATIENT}_201001"
    assert set(layout_exam.exam.images) == set(View)
    assert layout_exam.exam.images[View.R_MLO].position.source == "INbreast file name"
    assert layout_exam.breast_labels == {RIGHT: (0, 1), LEFT: (0, 0)}  # 4c malignant, 1 normal
    summary = import_layout(dataset, tmp_path / "out")
    (exam,) = read_manifest(summary.manifest)
    mask = _mask(exam.images[View.R_MLO].mask_malignant)
    assert _overlap(mask, factory.lesion_mask()) > 0.85
    assert _overlap(mask, factory.file_frame(factory.lesion_mask(), View.R_MLO)) == 0
    assert exam.images[View.R_MLO].lesions == ("mass",)


def test_inbreast_without_its_table_groups_by_patient(tmp_path):
    dataset = read_layout("inbreast", factory.write_inbreast(tmp_path, with_table=False))
    (layout_exam,) = dataset.exams
    assert layout_exam.exam.exam_id == factory.INBREAST_PATIENT
    assert not layout_exam.breast_labels
    assert set(layout_exam.exam.images) == set(View)


def test_a_polygon_of_one_point_marks_that_pixel():
    mask = Polygon(((3.0, 4.0),)).rasterise((8, 8))
    assert np.argwhere(mask).tolist() == [[3, 4]]


# The command line ---------------------------------------------------------------------------------


def test_gmic_dataset_import_end_to_end(cbis, tmp_path, capsys):
    assert main(["dataset", "import", "cbis-ddsm", str(cbis), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "2 exams, 4 images; breasts: 3 benign, 1 malignant, 0 normal" in printed
    assert "counted once" in printed
    assert len(read_manifest(tmp_path / "manifest.csv")) == 2


def test_gmic_dataset_import_reports_a_missing_root(tmp_path, capsys):
    assert main(["dataset", "import", "inbreast", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_gmic_predict_with_a_layout_groups_cbis_ddsm_without_csvs(weights, tmp_path):
    root = factory.write_cbis_ddsm(tmp_path, with_csvs=False, size=factory.PREDICTABLE)
    out = tmp_path / "results.json"
    argv = ["predict", str(root), "--weights", str(weights), "--device", "cpu"]
    # 3: the image listed in both the Mass and the Calc set is left out once, and named on stderr.
    assert main([*argv, "--layout", "cbis-ddsm", "--out", str(out)]) == 3
    document = json.loads(out.read_text())
    assert sorted(exam["exam_id"] for exam in document["exams"]) == ["P_00001", "P_00002"]
    assert [error["error"] for error in document["errors"] if "counted once" not in error["error"]] == []


def test_evaluate_reads_an_imported_layout(predictable_cbis, weights, tmp_path):
    argv = ["evaluate", str(weights), str(predictable_cbis), "--layout", "cbis-ddsm", "--out", str(tmp_path)]
    assert main([*argv, "--device", "cpu", "--bootstrap", "20"]) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["exams"] == 2
    assert report["breast"]["malignant"] == {"n": 3, "positives": 1} | {
        key: report["breast"]["malignant"][key] for key in ("auc", "auc_ci", "pr_auc", "pr_auc_ci")
    }
    assert report["dsc"]["benign"]["images"] == 3
    assert (tmp_path / "dataset" / "manifest.csv").is_file()
    predictor = Predictor.from_files([weights], device="cpu")
    assert (
        evaluate(predictor, tmp_path / "dataset" / "manifest.csv", tmp_path / "again", resamples=5)["exams"]
        == 2
    )
