"""The Predictor on the real sample exam: ensembles, results in stored-image pixels, JSON and CSV."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from app.cli import main
from gmic_core.errors import UsageError
from gmic_core.imaging import load_exam
from gmic_core.imaging.views import Laterality, View
from gmic_core.inference import (
    ExamResult,
    ModelIdentity,
    Predictor,
    ViewImage,
    load_standard_views,
    resolve_precision,
    supported_precisions,
)
from gmic_core.model import LoadedCheckpoint, ModelCard
from gmic_core.visualize import MARGIN, PATCH_SIZE, _patch_row, draw_rois
from tests.core.published_weights import published_state_dict
from tests.core.reference import seeded_model


def _checkpoint(reference_dir, seed: int) -> LoadedCheckpoint:
    card = ModelCard(name=f"seed {seed}", version="0", training_data="none", intended_use="tests")
    return LoadedCheckpoint(seeded_model(seed, 0.03), card, f"{seed:064d}", reference_dir, True)


@pytest.fixture(scope="module")
def exam(reference_dir):
    return load_exam(reference_dir / "sample_exam")


@pytest.fixture(scope="module")
def images(exam):
    return {view: ViewImage(m.pixels, exam.horizontal_flip) for view, m in load_standard_views(exam).items()}


@pytest.fixture(scope="module")
def single_runs(reference_dir, images):
    return [
        Predictor([_checkpoint(reference_dir, seed)], device="cpu").predict("0", images) for seed in (2, 3)
    ]


def test_predictions_match_the_published_reference(single_runs, reference_dir):
    expected = json.loads((reference_dir / "expected_seed2_t003.json").read_text())["views"]
    for view, result in single_runs[0].views.items():
        np.testing.assert_allclose(result.y_fusion, expected[view.value]["y_fusion"], atol=1e-4)
        assert [list(p) for p in result.patch_locations] == expected[view.value]["patch_locations"]


def test_ensemble_is_the_mean_of_its_members(reference_dir, images, single_runs):
    predictor = Predictor([_checkpoint(reference_dir, 2), _checkpoint(reference_dir, 3)], device="cpu")
    ensemble = predictor.predict("0", images)
    assert ensemble.model.checkpoint_sha256 == (f"{2:064d}", f"{3:064d}")
    for view, result in ensemble.views.items():
        members = [run.views[view] for run in single_runs]
        for name in ("y_global", "y_local", "y_fusion"):
            np.testing.assert_allclose(
                getattr(result, name), np.mean([getattr(m, name) for m in members], axis=0), atol=1e-6
            )
        np.testing.assert_allclose(result.saliency, np.mean([m.saliency for m in members], axis=0), atol=1e-6)
        assert result.roi_boxes == members[0].roi_boxes + members[1].roi_boxes
        assert result.roi_member == (0,) * 6 + (1,) * 6
    for side in (Laterality.LEFT, Laterality.RIGHT):
        breast = ensemble.breasts[side]
        assert breast.malignant == pytest.approx(
            np.mean([r.breasts[side].malignant for r in single_runs]), abs=1e-6
        )


def test_roi_boxes_cover_exactly_the_pixels_the_model_saw(single_runs, images):
    """Inside each box, the stored image (mirrored back for flip-at-load views) is the part of the
    patch the local network saw that is not padding, up to the per-image standardisation."""
    for view, result in single_runs[0].views.items():
        stored = images[view].pixels.astype(np.float64)
        geometry = result.geometry
        crop_top, _, crop_left, crop_right = geometry.crop_box
        fits = []
        for (top, left, bottom, right), _, _, index in result.rois:
            (row, col), patch = result.patch_locations[index], result.patches[index]
            seen = stored[top:bottom, left:right]
            if geometry.flipped:
                seen = seen[:, ::-1]
                crop_cols = (crop_right - crop_left) - np.array([right, left]) + crop_left
            else:
                crop_cols = np.array([left, right]) - crop_left
            first_row = round(float(geometry.rows.to_model(top - crop_top))) - row
            first_col = round(float(geometry.cols.to_model(crop_cols[0]))) - col
            visible = patch[first_row : first_row + seen.shape[0], first_col : first_col + seen.shape[1]]
            assert visible.shape == seen.shape
            assert seen.size >= 256 * 64  # every published patch lies mostly on the breast crop
            fits.append(np.polyfit(seen.ravel(), visible.astype(np.float64).ravel(), 1))
            np.testing.assert_allclose(np.polyval(fits[-1], seen), visible, atol=1e-4)
        slopes, offsets = np.array(fits).T
        assert np.all(slopes > 0)
        np.testing.assert_allclose(slopes, slopes[0], rtol=1e-5)  # one standardisation per view
        np.testing.assert_allclose(offsets, offsets[0], atol=1e-4)


@pytest.fixture(scope="module")
def padding_result(tmp_path_factory):
    """A breast 900 of the window's 1920 columns wide, run by an ensemble of the seeded weights and
    the same weights with the saliency head negated, whose saliency is highest in the padding: the
    published selection places all of that member's patches there, wholly outside the image."""
    models = [seeded_model(2, 0.03), seeded_model(2, 0.03)]
    with torch.no_grad():
        models[1].saliency_head.conv.weight.neg_()
    card = ModelCard(name="seed 2", version="0", training_data="none", intended_use="tests")
    folder = tmp_path_factory.mktemp("padding")
    predictor = Predictor(
        [LoadedCheckpoint(model, card, f"{i:064d}", folder, True) for i, model in enumerate(models)],
        device="cpu",
    )
    pixels = np.zeros((2944, 1920), np.uint16)
    pixels[200:2700, :900] = np.random.default_rng(0).integers(500, 3000, (2500, 900))
    return predictor.predict("narrow", {View.L_CC: ViewImage(pixels)})


def test_patches_in_the_padding_are_flagged_and_have_no_box(padding_result):
    view = padding_result.views[View.L_CC]
    assert view.patch_outside_image == (False,) * 6 + (True,) * 6
    assert [(roi.patch, roi.member) for roi in view.rois] == [(i, 0) for i in range(6)]
    assert [roi.attention for roi in view.rois] == list(view.attention[:6])
    assert all(bottom > top and right > left for top, left, bottom, right in view.roi_boxes)
    document = padding_result.to_json()["views"]["L-CC"]
    assert [patch["outside_image"] for patch in document["patch_locations"]] == [False] * 6 + [True] * 6
    assert document["roi_boxes"] == [list(box) for box in view.roi_boxes]
    restored = ExamResult.from_json(json.loads(json.dumps(padding_result.to_json())))
    assert restored.views[View.L_CC].rois == view.rois


def test_results_stored_before_the_flag_load_with_it(padding_result):
    """Earlier versions wrote [row, column] pairs and a zero-area box for a patch outside the image."""
    document = padding_result.to_json()
    view = document["views"]["L-CC"]
    view["patch_locations"] = [[patch["row"], patch["column"]] for patch in view["patch_locations"]]
    view["roi_boxes"] += [[496, 0, 752, 0]] * 6
    restored = ExamResult.from_json(document).views[View.L_CC]
    assert restored.rois == padding_result.views[View.L_CC].rois
    assert restored.patch_outside_image == (False,) * 6 + (True,) * 6


def test_pictures_show_only_the_patches_inside_the_image(padding_result):
    """``gmic predict --visualize``'s patch row and the patch map's boxes."""
    view = padding_result.views[View.L_CC]
    assert _patch_row(view).width == 6 * (PATCH_SIZE + MARGIN)
    boxes = []
    draw_rois(
        SimpleNamespace(rectangle=lambda xy, **_: boxes.append(xy), text=lambda *_, **__: None), view, 1.0
    )
    assert boxes == [(left, top, right, bottom) for top, left, bottom, right in view.roi_boxes]


def test_breast_is_the_mean_of_cc_and_mlo(single_runs):
    result = single_runs[0]
    for side, (cc, mlo) in {
        Laterality.LEFT: (View.L_CC, View.L_MLO),
        Laterality.RIGHT: (View.R_CC, View.R_MLO),
    }.items():
        assert result.breasts[side].malignant == pytest.approx(
            (result.views[cc].malignant + result.views[mlo].malignant) / 2
        )
        assert result.breasts[side].missing_views == ()
    assert result.malignancy_score == max(b.malignant for b in result.breasts.values())


def test_missing_views_are_explicit(reference_dir, images):
    predictor = Predictor([_checkpoint(reference_dir, 2)], device="cpu")
    result = predictor.predict("0", {View.L_CC: images[View.L_CC]})
    assert set(result.views) == {View.L_CC}
    assert result.breasts[Laterality.LEFT].views == (View.L_CC,)
    assert result.breasts[Laterality.LEFT].missing_views == (View.L_MLO,)
    assert Laterality.RIGHT not in result.breasts
    assert result.to_json()["breasts"]["R"] is None


def test_json_round_trip(single_runs):
    document = single_runs[0].to_json()
    restored = ExamResult.from_json(json.loads(json.dumps(document)))
    assert restored.to_json() == document
    view = restored.views[View.R_CC]
    np.testing.assert_array_equal(
        view.saliency_in_stored(), single_runs[0].views[View.R_CC].saliency_in_stored()
    )


def test_saliency_in_stored_frame_lines_up_with_the_boxes(single_runs):
    view = single_runs[0].views[View.R_MLO]
    maps = view.saliency_in_stored()
    assert maps.shape == (2, *view.geometry.stored_shape)
    top, left, _, right = view.roi_boxes[0]
    row, col = view.patch_locations[0]
    cell = view.saliency[:, row // 64, col // 64]
    corner_col = right - 1 if view.geometry.flipped else left
    np.testing.assert_allclose(maps[:, top, corner_col], cell)


def test_test_time_augmentation_is_seeded(reference_dir, images):
    subset = {View.L_CC: images[View.L_CC]}
    runs = [
        Predictor([_checkpoint(reference_dir, 2)], device="cpu", tta=2, seed=seed).predict("0", subset)
        for seed in (0, 0, 1)
    ]
    assert runs[0].views[View.L_CC].y_fusion == runs[1].views[View.L_CC].y_fusion
    assert runs[0].views[View.L_CC].y_fusion != runs[2].views[View.L_CC].y_fusion
    assert runs[0].views[View.L_CC].roi_boxes == runs[2].views[View.L_CC].roi_boxes  # from the fixed window
    assert runs[0].model.tta == 2


@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_bf16_and_the_default_precision_are_close_to_fp32(reference_dir, images, single_runs, precision):
    """The bf16 tolerance, for bf16 asked for and for "auto" (every command's default), which picks bf16
    on a CPU with native bf16."""
    if precision == "bf16" and "bf16" not in supported_precisions(torch.device("cpu")):
        pytest.skip("CPU without bf16")
    result = Predictor([_checkpoint(reference_dir, 2)], device="cpu", precision=precision).predict(
        "0", images
    )
    assert result.model.precision == resolve_precision(torch.device("cpu"), precision)
    for view, fp32 in single_runs[0].views.items():
        np.testing.assert_allclose(result.views[view].y_fusion, fp32.y_fusion, atol=0.02)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"), [(False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")]
)
def test_auto_precision_is_bf16_only_on_a_cpu_that_computes_it_natively(
    monkeypatch, avx512_bf16, amx, expected
):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision(torch.device("cpu"), "auto") == expected
    assert resolve_precision(torch.device("cpu"), "fp32") == "fp32"
    with pytest.raises(UsageError, match="fp16 is not supported on CPU"):
        resolve_precision(torch.device("cpu"), "fp16")


def test_the_model_key_names_the_resolved_precision(reference_dir):
    automatic = Predictor([_checkpoint(reference_dir, 2)], device="cpu", precision="auto")
    named = Predictor([_checkpoint(reference_dir, 2)], device="cpu", precision=automatic.precision)
    assert automatic.precision in ("fp32", "bf16")
    assert automatic.identity == named.identity
    assert automatic.identity.key.endswith(f"|{automatic.precision}|tta0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_cuda_matches_cpu(reference_dir, images, single_runs):
    result = Predictor([_checkpoint(reference_dir, 2)], device="cuda").predict("0", images)
    for view, cpu in single_runs[0].views.items():
        np.testing.assert_allclose(result.views[view].y_fusion, cpu.y_fusion, atol=1e-3)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "seed2.pt"
    torch.save(published_state_dict(2), path)
    return path


def _predict(weights, out, *arguments) -> int:
    """``gmic predict`` with the seeded reference weights (a published-format file, top-t 0.03)."""
    return main(
        ["predict", *map(str, arguments), "--weights", str(weights), "--top-t", "0.03", "--out", str(out)]
    )


def test_predict_command_json_with_a_bad_exam(reference_dir, weights_file, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "exam.json").write_text("{not json")
    out = tmp_path / "results.json"
    assert _predict(weights_file, out, reference_dir / "sample_exam", broken) == 3  # some inputs failed
    document = json.loads(out.read_text())
    (exam,) = document["exams"]
    assert exam["exam_id"] == "0"
    assert set(exam["views"]) == {"L-CC", "R-CC", "L-MLO", "R-MLO"}
    view = exam["views"]["R-CC"]
    for key in ("benign", "malignant"):
        assert isinstance(view[key], float)
    for key in ("y_global", "y_local", "y_fusion"):
        assert len(view[key]) == 2
    assert len(view["attention"]) == len(view["patch_locations"]) == len(view["roi_boxes"]) == 6
    assert not any(patch["outside_image"] for patch in view["patch_locations"])
    assert set(exam["breasts"]) == {"L", "R"}
    assert document["errors"][0]["path"] == str(broken / "exam.json")
    assert document["errors"][0]["exam_id"] is None
    assert "broken" in capsys.readouterr().err


def test_predict_command_fails_when_nothing_could_be_processed(weights_file, tmp_path):
    assert _predict(weights_file, tmp_path / "r.json", tmp_path) == 1
    assert json.loads((tmp_path / "r.json").read_text())["exams"] == []


def test_predict_command_csv_and_pictures(reference_dir, weights_file, tmp_path):
    out = tmp_path / "results.csv"
    assert (
        _predict(weights_file, out, reference_dir / "sample_exam", "--visualize", tmp_path / "pictures") == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert [row["image_index"] for row in rows] == ["0_L-CC", "0_R-CC", "0_L-MLO", "0_R-MLO", "0_L", "0_R"]
    assert list(rows[0]) == [
        "image_index",
        "benign_pred",
        "malignant_pred",
        "benign_label",
        "malignant_label",
    ]
    assert rows[1]["benign_label"] == "1"
    assert float(rows[5]["malignant_pred"]) == pytest.approx(
        (float(rows[1]["malignant_pred"]) + float(rows[3]["malignant_pred"])) / 2
    )
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == [
        "0_L-CC.png",
        "0_L-MLO.png",
        "0_R-CC.png",
        "0_R-MLO.png",
    ]


def test_predict_command_on_synthetic_dicom_and_real_files(reference_dir, weights_file, tmp_path):
    assert (
        main(
            [
                "synth",
                str(tmp_path / "synth"),
                "--exams",
                "2",
                "--seed",
                "3",
                "--size",
                "1536",
                "1248",
                "--transfer-syntax",
                "explicit-little",
            ]
        )
        == 0
    )
    out = tmp_path / "results.json"
    # 3: some inputs failed (the reference folder holds non-images and a tomosynthesis stub), the others done
    assert _predict(weights_file, out, tmp_path / "synth", reference_dir / "dicom") == 3
    document = json.loads(out.read_text())
    synthetic = [exam for exam in document["exams"] if len(exam["views"]) == 4]
    assert len(synthetic) == 2
    real = [exam for exam in document["exams"] if len(exam["views"]) < 4]
    assert real, "the real MG1 mammogram (a left MLO) is analysed"
    assert all(exam["breasts"]["R"] is None for exam in real)
    failed = {Path(error["path"]).name for error in document["errors"]}
    assert {"BTO_stub_3frames.dcm", "MG-RDSR-Hologic_2D.dcm"} <= failed  # MG1_JPLY: its duplicates decode


# torch.compile imports torch._inductor, which imports torch.utils.mkldnn, whose classes torch 2.13 still
# defines with torch.jit.script_method: 14 DeprecationWarnings from torch's own import, none from us
# (the project never scripts a model).
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.script_method` is deprecated:DeprecationWarning")
def test_compiled_predictor_matches_eager(tmp_path):
    """The compiled path (torch.compile with frozen weights), on a quarter-scale model to keep the
    compilation short."""
    from gmic_core.config import GMICConfig
    from gmic_core.model import GMIC
    from tests.core.test_preprocess import _breast

    torch.manual_seed(0)
    checkpoint = LoadedCheckpoint(
        GMIC(GMICConfig.at_scale(0.25)).eval(),
        ModelCard("small", "0", "none", "tests"),
        "0" * 64,
        tmp_path,
        False,
    )
    images = {
        View.L_CC: ViewImage(_breast(1400, 1000, True)),
        View.R_MLO: ViewImage(_breast(1400, 1000, False)),
    }
    eager = Predictor([checkpoint], device="cpu").predict("e", images)
    predictor = Predictor([checkpoint], device="cpu", compile=True)
    compiled = predictor.predict("e", images)
    for view, result in eager.views.items():
        np.testing.assert_allclose(compiled.views[view].y_fusion, result.y_fusion, atol=1e-4)
        np.testing.assert_allclose(compiled.views[view].saliency, result.saliency, atol=1e-4)
        assert compiled.views[view].roi_boxes == result.roi_boxes
    # A second batch size (two exams per call, as triage batches them on a GPU) compiles again, for that shape:
    # torch 2.13's dynamic-shape recompilation fails on oneDNN's fused convolutions.
    prepared = predictor.prepare("e", images)
    for batched in predictor.run_batch([prepared, prepared], keep_patches=False):
        for view, result in eager.views.items():
            np.testing.assert_allclose(batched.views[view].y_fusion, result.y_fusion, atol=1e-4)


def test_picture_names_stay_in_the_folder_and_never_collide():
    from app.predict import picture_stem

    taken: set[str] = set()
    stems = [picture_stem(exam_id, taken) for exam_id in ("1.2.3", "1.2.3", "../../etc/x", "..", "1.2.3")]
    assert stems == ["1.2.3", "1.2.3-2", "_.._etc_x", "exam", "1.2.3-3"]
    assert all("/" not in stem and not stem.startswith(".") for stem in stems)


def test_the_model_key_changes_with_top_t():
    identity = ModelIdentity(("m",), ("a" * 64,), (0.03,), "fp32", "CPU", 0)
    other = dataclasses.replace(identity, top_t=tuple(t * 2 for t in identity.top_t))
    assert other.key != identity.key
    assert dataclasses.replace(identity, device="elsewhere").key == identity.key
