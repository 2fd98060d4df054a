"""The coded concepts the objects use, from pydicom's tables of PS3.16 where they have a keyword."""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from gmic_core.reporting.findings import SaliencyKind

PERCENT = Code("%", "UCUM", "Percent")
NO_UNITS = Code("1", "UCUM", "no units")  # probabilities in [0, 1]
DECILE_UNIT = Code("{decile}", "UCUM", "decile")
ALGORITHM_FAMILY = codes.DCM.ArtificialIntelligence  # CID 7162
MAMMOGRAPHY = codes.SCT.Mammography  # CID 100 Quantitative Diagnostic Imaging Procedure
SEGMENT_CATEGORY = codes.SCT.MorphologicallyAbnormalStructure  # CID 7150
SEGMENT_TYPE = {  # CID 7151's neoplasm codes
    SaliencyKind.BENIGN: Code("3898006", "SCT", "Neoplasm, benign"),
    SaliencyKind.MALIGNANT: codes.SCT.MalignantNeoplasmPrimary,
}
LATERALITY = {"R": codes.SCT.Right, "L": codes.SCT.Left}  # CID 6022 Side
# A saliency region is a CAD "Selected Region" (CID 6014).
SELECTED_REGION = codes.DCM.SelectedRegion
PROBABILITY_OF_CANCER = codes.DCM.ProbabilityOfCancer  # CID 6048
CERTAINTY_OF_FINDING = codes.DCM.CertaintyOfFinding  # CID 6048
BREAST = codes.SCT.Breast
# What PS3.16 has no concept for, in this program's private coding scheme (PS3.16 8.2: "99" prefix).
PRIVATE_SCHEME = "99GMIC"
BENIGN_PROBABILITY = Code("benign", PRIVATE_SCHEME, "Probability of a benign finding")
ATTENTION = Code("attention", PRIVATE_SCHEME, "Attention weight of the ROI patch")
ROI_PATCH = Code("roi-patch", PRIVATE_SCHEME, "ROI patch of the local network")
# A site's calibration (gmic calibrate) of the malignancy probability, and its 1-10 decile score.
CALIBRATED_PROBABILITY = Code("calibrated", PRIVATE_SCHEME, "Site-calibrated probability of cancer")
DECILE_SCORE = Code("decile", PRIVATE_SCHEME, "Decile of the site's exam scores (1-10)")
# pydicom's table carries a zero-width space in this meaning, which no DICOM character set encodes.
INDIVIDUAL_IMPRESSION = Code(
    codes.DCM.IndividualImpressionRecommendation.value, "DCM", "Individual Impression/Recommendation"
)
