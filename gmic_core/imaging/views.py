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
