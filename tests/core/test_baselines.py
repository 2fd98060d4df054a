import numpy as np

from gmic_core.training.baselines import image_statistics


def _breast(blobs: int) -> np.ndarray:
    rows, columns = np.mgrid[0:1024, 0:832]
    image = np.where((rows - 512) ** 2 / 450**2 + columns**2 / 700**2 < 1, 1500.0, 50.0)
    rng = np.random.default_rng(0)
    for row, column in zip(rng.integers(200, 800, blobs), rng.integers(60, 500, blobs), strict=True):
        image += 800 * np.exp(-((rows - row) ** 2 + (columns - column) ** 2) / (2 * 40.0**2))
    return image.astype(np.uint16)


def test_blob_count_counts_planted_blobs_and_the_other_statistics_are_plain():
    empty, three = image_statistics(_breast(0)), image_statistics(_breast(3))
    assert empty["blob_count"] == 0
    assert three["blob_count"] >= 2
    assert empty["max_pixel"] == 1500
    assert three["max_pixel"] == _breast(3).max()
    assert 1400 < empty["mean_intensity"] <= 1500
