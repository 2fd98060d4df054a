"""The vocabulary of screening views."""

from __future__ import annotations

from enum import StrEnum


class Laterality(StrEnum):
    RIGHT = "R"
    LEFT = "L"


class ViewPosition(StrEnum):
    CC = "CC"  # cranio-caudal
    MLO = "MLO"  # medio-lateral oblique


class View(StrEnum):
    """One of the four standard screening views, in hanging-protocol order."""

    R_CC = "R-CC"
    L_CC = "L-CC"
    R_MLO = "R-MLO"
    L_MLO = "L-MLO"

    @property
    def laterality(self) -> Laterality:
        return Laterality(self.value[0])

    @property
    def position(self) -> ViewPosition:
        return ViewPosition(self.value.split("-", 1)[1])

    @property
    def is_mlo(self) -> bool:
        return self.position is ViewPosition.MLO

    @classmethod
    def of(cls, laterality: Laterality, position: ViewPosition) -> View:
        return cls(f"{laterality.value}-{position.value}")


# The order in which the published runner processes an exam's images (SPEC.md section 0).
PUBLISHED_VIEW_ORDER = (View.L_CC, View.R_CC, View.L_MLO, View.R_MLO)


class ViewCode(StrEnum):
    """Mammography projections: the ACR MQCM abbreviations that vendors write in View Position
    (0018,5101), matched with the codes of DICOM PS3.16 CID 4014 "View for Mammography"."""

    CC = "CC"  # cranio-caudal
    MLO = "MLO"  # medio-lateral oblique
    ML = "ML"  # medio-lateral
    LM = "LM"  # latero-medial
    LMO = "LMO"  # latero-medial oblique
    XCCL = "XCCL"  # cranio-caudal exaggerated laterally
    XCCM = "XCCM"  # cranio-caudal exaggerated medially
    FB = "FB"  # caudo-cranial ("from below")
    SIO = "SIO"  # superolateral to inferomedial oblique
    ISO = "ISO"  # inferomedial to superolateral oblique
    SPECIMEN = "SPECIMEN"  # tissue specimen from breast
    OTHER = "OTHER"  # a projection this workstation does not know (QC images, ...)

    @property
    def standard_position(self) -> ViewPosition | None:
        """The screening position this projection is, if it is one of the two."""
        if self is ViewCode.CC:
            return ViewPosition.CC
        if self is ViewCode.MLO:
            return ViewPosition.MLO
        return None


class ViewModifier(StrEnum):
    """DICOM PS3.16 CID 4015 "View Modifier for Mammography". Any modifier makes an image an
    extra view: it is shown, never fed to the model in place of a standard view."""

    SPOT_COMPRESSION = "spot compression"
    MAGNIFICATION = "magnification"
    IMPLANT_DISPLACED = "implant displaced"
    ROLLED_LATERAL = "rolled lateral"
    ROLLED_MEDIAL = "rolled medial"
    ROLLED_SUPERIOR = "rolled superior"
    ROLLED_INFERIOR = "rolled inferior"
    CLEAVAGE = "cleavage"
    AXILLARY_TAIL = "axillary tail"
    TANGENTIAL = "tangential"
    NIPPLE_IN_PROFILE = "nipple in profile"
    AXILLARY_TISSUE = "axillary tissue"
    INFRAMAMMARY_FOLD = "infra-mammary fold"
    ANTERIOR_COMPRESSION = "anterior compression"


class NotScreening(StrEnum):
    """Why an image is not a screening view and is never part of an exam (docs/imaging.md)."""

    STEREOTACTIC = "stereotactic, biopsy or localisation image"
    SPECIMEN = "specimen radiograph"
    TOO_SMALL = "smaller than a full-field mammogram"
