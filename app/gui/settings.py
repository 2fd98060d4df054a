"""The application's settings for one session, and where its files live (Qt-free)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

from app.defaults import DEMO_MODEL as DEMO_MODEL
from app.store.database import DATABASE_FILE
from gmic_core.choices import DEFAULT_PRECISION


def default_reader() -> str:
    """The login name of the user (a reader's id, not a patient's)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "reader"


@dataclass
class Settings:
    """``weights``: the checkpoints of the model (several make an ensemble; none: images only).
    ``db_url``: the database of readings and results (SQLAlchemy URL; default: a SQLite file in
    ``data_dir``). ``reader``: whose estimates the workstation records (outside reader studies)."""

    data_dir: Path
    weights: list[Path] = field(default_factory=list)
    device: str = "auto"
    precision: str = DEFAULT_PRECISION
    db_url: str = ""
    reader: str = field(default_factory=default_reader)

    def __post_init__(self) -> None:
        if not self.db_url:
            self.db_url = f"sqlite:///{(self.data_dir / DATABASE_FILE).as_posix()}"

    @property
    def demo_folder(self) -> Path:
        return self.data_dir / "demo"


def is_demo_model(name: str, intended_use: str) -> bool:
    """Whether a model card describes the synthetic demo model (or any model not for clinical use)."""
    return "demo" in name.lower() or "not for clinical use" in intended_use.lower()
