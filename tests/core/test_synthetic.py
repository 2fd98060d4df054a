"""gmic_core.synthetic: deterministic, consistent exams; DICOM and manifest that the reader and the
training code can use; gmic synth."""

from __future__ import annotations

import csv
import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from app.cli import main
from gmic_core.imaging import Laterality, Photometric, View, load_image, read_dicom, scan_folder
from gmic_core.synthetic import (
    FULL_SIZE,
    MANIFEST_COLUMNS,
    Lesion,
    SynthesisConfig,
    generate_exam,
    write_dataset,
)

SMALL = SynthesisConfig(size=(512, 416), malignant_fraction=0.5, benign_fraction=0.5)


def test_the_same_seed_gives_the_same_exam() -> None:
    first, again = generate_exam(11, 2, SMALL), generate_exam(11, 2, SMALL)
    other = generate_exam(12, 2, SMALL)
    assert first.exam_id == again.exam_id != other.exam_id
    for view in View:
        np.testing.assert_array_equal(first.views[view].pixels, again.views[view].pixels)
    assert not np.array_equal(first.views[View.L_CC].pixels, other.views[View.L_CC].pixels)


@pytest.mark.parametrize("index", range(6))
def test_views_look_like_a_screening_exam(index: int) -> None:
    exam = generate_exam(5, index, SMALL)
    for view, image in exam.views.items():
        pixels = image.pixels
        assert pixels.shape == SMALL.size
        assert pixels.dtype == np.uint16
        assert pixels.max() <= 4095
        breast = pixels > 0
        assert 0.25 < breast.mean() < 0.85
        # The chest wall is on the right of right views and on the left of left views.
        chest_wall, nipple_side = (
            (pixels[:, -4:], pixels[:, :4])
            if view.laterality is Laterality.RIGHT
            else (
                pixels[:, :4],
                pixels[:, -4:],
            )
        )
        assert (chest_wall > 0).mean() > 0.5
        assert (nipple_side > 0).mean() < 0.05
        # Fat near the skin is darker than the tissue inside.
        rim = breast & ~_eroded(breast, 8)
        assert pixels[rim].mean() < pixels[_eroded(breast, 40)].mean()


def _eroded(mask: np.ndarray, iterations: int) -> np.ndarray:
    return ndimage.binary_erosion(mask, iterations=iterations)


def test_mlo_views_show_the_pectoral_muscle() -> None:
    exam = generate_exam(5, 0, SMALL)
    for view in (View.L_MLO, View.R_MLO):
        pixels = exam.views[view].pixels.astype(float)
        corner = pixels[:60, :40] if view is View.L_MLO else pixels[:60, -40:]
        assert (corner > 0).all()
        assert corner.mean() > np.median(pixels[pixels > 0])


def test_lesions_appear_in_both_views_of_their_breast_with_masks() -> None:
    seen: set[Lesion] = set()
    for index in range(12):
        exam = generate_exam(3, index, SMALL)
        for laterality, breast in exam.breasts.items():
            benign, malignant = breast.labels
            seen.update(lesion.kind for lesion in breast.lesions)
            for view in (v for v in View if v.laterality is laterality):
                image = exam.views[view]
                assert (image.mask_benign is not None) == bool(benign)
                assert (image.mask_malignant is not None) == bool(malignant)
                for mask in (image.mask_benign, image.mask_malignant):
                    if mask is not None:
                        assert mask.shape == image.pixels.shape
                        assert 0 < mask.sum() < 0.1 * mask.size
                        assert (image.pixels[mask] > 0).all()
        assert exam.labels.of(Laterality.LEFT) == exam.breasts[Laterality.LEFT].labels
    assert len(seen) >= 5


def test_a_calcification_cluster_mask_is_one_region_even_when_the_cluster_is_sparse() -> None:
    """Exam 14 of seed 2026 (in the demo test set) holds a sparse fine pleomorphic cluster, whose
    mask used to come out empty at full size."""
    exam = generate_exam(2026, 14, SynthesisConfig(size=FULL_SIZE))
    (lesion,) = exam.breasts[Laterality.LEFT].lesions
    assert lesion.kind is Lesion.PLEOMORPHIC_CALCIFICATIONS
    for view in (View.L_CC, View.L_MLO):
        mask = exam.views[view].mask_malignant
        count = ndimage.label(mask)[1]
        assert count == 1
        assert 0.0005 < mask.mean() < 0.01
        assert ndimage.binary_fill_holes(mask).sum() == mask.sum()


def test_malignant_masses_stand_out_from_the_tissue_around_them_more_than_benign_ones() -> None:
    """Median contrast to noise of a mass against a ring of tissue around it: a malignant mass (high
    density) stands out from it, a benign one (equal density) much less."""
    contrast_to_noise: dict[bool, list[float]] = {False: [], True: []}
    for malignant, kind in ((True, Lesion.IRREGULAR_MASS), (False, Lesion.ROUND_MASS)):
        config = dataclasses.replace(
            SMALL,
            malignant_fraction=float(malignant),
            benign_fraction=float(not malignant),
            lesions=frozenset({kind}),
        )
        for index in range(6):
            for image in generate_exam(21, index, config).views.values():
                mask = image.mask_malignant if malignant else image.mask_benign
                assert mask is not None
                ring = _dilated(mask, 6) & ~_dilated(mask, 2) & (image.pixels > 0)
                pixels = image.pixels.astype(float)
                contrast_to_noise[malignant].append(
                    (pixels[mask].mean() - pixels[ring].mean()) / pixels[ring].std()
                )
    assert np.median(contrast_to_noise[True]) > 2.0
    assert np.median(contrast_to_noise[True]) > 1.5 * np.median(contrast_to_noise[False])


def _dilated(mask: np.ndarray, iterations: int) -> np.ndarray:
    return ndimage.binary_dilation(mask, iterations=iterations)


def test_lesions_are_not_the_brightest_pixels_nor_shift_the_mean() -> None:
    brightest_in_lesion = 0
    lesions = 0
    for index in range(16):
        exam = generate_exam(9, index, SMALL)
        for image in exam.views.values():
            if image.mask_malignant is None:
                continue
            lesions += 1
            pixels = image.pixels
            brightest_in_lesion += bool(image.mask_malignant[pixels == pixels.max()].any())
            assert image.mask_malignant.sum() < 0.03 * (pixels > 0).sum()  # too small to move the mean
    assert lesions >= 4
    assert brightest_in_lesion <= lesions // 2


def test_no_lesions_when_prevalence_is_zero() -> None:
    config = SynthesisConfig(size=(256, 208), malignant_fraction=0.0, benign_fraction=0.0)
    for index in range(4):
        exam = generate_exam(1, index, config)
        assert exam.labels.of(Laterality.LEFT) == exam.labels.of(Laterality.RIGHT) == (0, 0)


def test_dataset_on_disk_is_read_back_exactly(tmp_path: Path) -> None:
    size = (256, 208)
    manifest = write_dataset(tmp_path, exams=3, seed=4, size=size, transfer_syntax="jpeg2000-lossless")
    with manifest.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert len(rows) == 12
    result = scan_folder(tmp_path)
    assert result.failures == []
    exams = {exam.exam_id: exam for exam in result.exams}
    config = SynthesisConfig(size=size)
    for row in rows:
        exam = exams[row["exam_id"]]
        view = View(row["view"])
        assert exam.missing_views == []
        assert row["split"] in ("train", "val", "test")
        image = load_image(exam.images[view])
        assert image.source == tmp_path / row["file"]
        assert not image.mirrored
        assert image.voi.default.explanation == "NORMAL"
        generated = generate_exam(4, int(Path(row["file"]).parent.name.split("_")[1]), config)
        np.testing.assert_array_equal(image.pixels, generated.views[view].pixels)
        for kind in ("benign", "malignant"):
            mask_file = row[f"mask_{kind}"]
            assert bool(mask_file) == (row[kind] == "1")
            if mask_file:
                mask = np.asarray(Image.open(tmp_path / mask_file)) > 0
                np.testing.assert_array_equal(mask, getattr(generated.views[view], f"mask_{kind}"))


def test_14_bit_monochrome1_explicit_little_endian(tmp_path: Path) -> None:
    write_dataset(
        tmp_path,
        1,
        2,
        size=(256, 208),
        transfer_syntax="explicit-little",
        photometric="MONOCHROME1",
        bits_stored=14,
    )
    image = read_dicom(tmp_path / "exam_0000" / "L-MLO.dcm")
    assert image.photometric is Photometric.MONOCHROME1
    assert image.ref.bits_stored == 14
    assert image.pixels.max() > 4095
    assert image.pixels[0, -1] == 0  # background is black once inverted


def test_gmic_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", str(tmp_path), "--exams", "1", "--seed", "3", "--size", "256", "208"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "manifest.csv")
    assert len(scan_folder(tmp_path).exams) == 1


def test_gmic_synth_draws_only_the_kinds_of_finding_asked_for(tmp_path: Path) -> None:
    kinds = ["mass:irregular", "mass:round"]
    args = [
        "synth",
        str(tmp_path),
        "--exams",
        "8",
        "--seed",
        "3",
        "--size",
        "256",
        "208",
        "--lesions",
        *kinds,
    ]
    assert main([*args, "--malignant-fraction", "0.6", "--benign-fraction", "0.6"]) == 0
    with (tmp_path / "manifest.csv").open(newline="") as file:
        drawn = {kind for row in csv.DictReader(file) for kind in row["lesions"].split(";") if kind}
    assert drawn == set(kinds)


def test_a_class_with_none_of_its_kinds_drawn_gets_no_lesion() -> None:
    config = dataclasses.replace(SMALL, lesions=frozenset({Lesion.COARSE_CALCIFICATIONS}))
    breasts = [breast for index in range(8) for breast in generate_exam(3, index, config).breasts.values()]
    assert {lesion.kind for breast in breasts for lesion in breast.lesions} == {Lesion.COARSE_CALCIFICATIONS}
    assert not any(breast.labels[1] for breast in breasts)


def test_realistic_size_exam_is_generated_in_seconds() -> None:
    start = time.perf_counter()
    exam = generate_exam(0, 0, SynthesisConfig(size=FULL_SIZE))
    elapsed = time.perf_counter() - start
    assert exam.views[View.R_MLO].pixels.shape == FULL_SIZE
    assert elapsed < 30  # about 4 s on the 2-core CI machine
