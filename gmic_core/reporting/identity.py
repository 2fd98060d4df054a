"""Who made the objects: the algorithm (every member of the ensemble: name, version, checkpoint hash)
and the header values every exported object shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

from gmic_core.model import LoadedCheckpoint

MANUFACTURER = "GMIC Reader"
NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE"


@dataclass(frozen=True)
class ModelMember:
    name: str
    version: str
    sha256: str

    @property
    def label(self) -> str:
        """``name version (sha256:first 12)``: fits a DICOM LO (64 characters) for usual names."""
        return f"{self.name} {self.version} (sha256:{self.sha256[:12]})"


@dataclass(frozen=True)
class Algorithm:
    """The model that produced a result. ``not_for_clinical_use``: a member's card says so (the demo
    model, test models); every object then says it where a reader will see it."""

    members: tuple[ModelMember, ...]
    not_for_clinical_use: bool

    @classmethod
    def of(cls, checkpoints: Sequence[LoadedCheckpoint]) -> Algorithm:
        return cls(
            tuple(ModelMember(c.card.name, c.card.version, c.sha256) for c in checkpoints),
            any(NOT_FOR_CLINICAL_USE.lower() in c.card.intended_use.lower() for c in checkpoints),
        )

    @property
    def name(self) -> str:
        return "GMIC" if len(self.members) == 1 else f"GMIC ensemble of {len(self.members)}"

    @property
    def version(self) -> str:
        return " + ".join(member.version for member in self.members)

    @property
    def description(self) -> str:
        """Every member, for text items and burned-in captions."""
        return "; ".join(member.label for member in self.members)

    def marked(self, text: str) -> str:
        """``text`` followed by the demo marking where a member's card asks for it."""
        return f"{text} - {NOT_FOR_CLINICAL_USE}" if self.not_for_clinical_use else text

    @property
    def software_versions(self) -> tuple[str, ...]:
        """Software Versions (0018,1020): this program's, then each member's."""
        return (f"{MANUFACTURER} {metadata.version('gmic-reader')}", *(m.label for m in self.members))
