"""Trivial image statistics as classifiers, to show that a dataset is not solved by them: a model's
AUC means something only where the maximum pixel value, the mean intensity and a blob count do not
already separate the classes (issue 4/7's check on the synthetic exams)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_erosion
from skimage.feature import blob_log
from skimage.filters import threshold_otsu
from skimage.transform import downscale_local_mean

BASELINES = ("max_pixel", "mean_intensity", "blob_count")
BLOB_SCALE = 8  # blobs are sought at 1/8 resolution: 0.56 mm pixels for a full-size image
BLOB_SIGMAS = (2.0, 10.0)  # Laplacian-of-Gaussian scales, pixels at 1/8: lesions of about 2-16 mm


def image_statistics(pixels: np.ndarray) -> dict[str, float]:
    """The three baseline scores of one stored image (MONOCHROME2, brighter is denser)."""
    small = downscale_local_mean(pixels.astype(np.float32), (BLOB_SCALE, BLOB_SCALE))
    breast = small > threshold_otsu(small)
    inside = small[breast]
    span = float(inside.max() - inside.min()) or 1.0
    normalised = np.where(breast, (small - inside.min()) / span, 0.0)
    blobs = blob_log(
        normalised, min_sigma=BLOB_SIGMAS[0], max_sigma=BLOB_SIGMAS[1], num_sigma=5, threshold=0.1
    )
    rows, columns = blobs[:, 0].astype(int), blobs[:, 1].astype(int)
    interior = binary_erosion(breast, iterations=int(2 * BLOB_SIGMAS[1]))  # the skin edge is no blob
    return {
        "max_pixel": float(pixels.max()),
        "mean_intensity": float(inside.mean()),
        "blob_count": float(np.count_nonzero(interior[rows, columns])),
    }
