"""The GMIC network and its checkpoints."""

from gmic_core.model.checkpoint import (
    LoadedCheckpoint,
    ModelCard,
    load_checkpoint,
    published_to_project_names,
    save_checkpoint,
    save_release,
)
from gmic_core.model.gmic import GMIC, GMICOutput

__all__ = [
    "GMIC",
    "GMICOutput",
    "LoadedCheckpoint",
    "ModelCard",
    "load_checkpoint",
    "published_to_project_names",
    "save_checkpoint",
    "save_release",
]
