"""The listener's store folder, which is also its queue: every state a study passes through is a file
or folder under ``DIR``, changed by an atomic rename, so that a restart (also after SIGKILL) resumes
from what is on disk.

::

    DIR/studies/STUDY_UID/SOP_UID.dcm   the received instances, kept (the store's exams point at them)
    DIR/pending/STUDY_UID               received, not yet scored and exported
    DIR/outbox/STUDY_UID/*.dcm          results exported, each deleted once the PACS accepted it
    DIR/sent/STUDY_UID                  results sent: a late instance of the study sends nothing again
    DIR/.partial/                       files being written; removed at start

The database keeps what it already keeps (the score, the failures); scoring twice is prevented by the
triage pipeline, which skips an exam its model has scored. Study folders are named by Study Instance
UID, the study key of every log line.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from gmic_core.errors import GMICError

# PS3.5 section 9.1: digits and dots, at most 64 characters; nothing else becomes a file name here.
_UID = re.compile(r"^[0-9][0-9.]{0,63}$")


class SpoolError(GMICError):
    """A received object that cannot be stored: a missing or malformed UID, or a full or read-only
    store folder."""


def check_uid(uid: str, what: str) -> str:
    if not _UID.match(uid) or ".." in uid:
        raise SpoolError(
            f"the object's {what} {uid!r} is not a DICOM UID; the modality sent a malformed object"
        )
    return uid


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_durably(target: Path, data: bytes, partial_dir: Path) -> None:
    """Write ``data`` to ``target`` so that a crash leaves either no file or the whole file: into
    ``partial_dir`` (same file system) first, fsync, rename, fsync of the folder."""
    partial = partial_dir / uuid.uuid4().hex
    with open(partial, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    partial.replace(target)
    _fsync_folder(target.parent)


class Spool:
    """The folders above, created on opening."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.studies, self.pending, self.outbox, self.sent = (
            root / name for name in ("studies", "pending", "outbox", "sent")
        )
        self._partial = root / ".partial"
        try:
            for folder in (self.studies, self.pending, self.outbox, self.sent):
                folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self._partial, ignore_errors=True)
            self._partial.mkdir()
        except OSError as error:
            raise SpoolError(
                f"{root}: cannot use it as the store folder ({error.strerror}); choose a writable folder"
            ) from error

    def store(self, study_uid: str, sop_uid: str, data: bytes) -> Path:
        """Write one instance's Part 10 bytes durably (temporary name, fsync, rename, fsync of the
        folder); after this and :meth:`mark_pending` the sender may hear "success". An instance
        received twice replaces the first copy."""
        folder = self.studies / check_uid(study_uid, "Study Instance UID")
        target = folder / f"{check_uid(sop_uid, 'SOP Instance UID')}.dcm"
        try:
            new_folder = not folder.is_dir()
            folder.mkdir(exist_ok=True)
            write_durably(target, data, self._partial)
            if new_folder:
                _fsync_folder(self.studies)
        except OSError as error:
            raise SpoolError(
                f"{target}: cannot be written ({error.strerror}); free space in the store folder"
            ) from error
        return target

    def mark_pending(self, study_uid: str) -> None:
        try:
            self._mark(self.pending / study_uid)
        except OSError as error:
            raise SpoolError(
                f"{self.pending}: cannot be written ({error.strerror}); free space in the store folder"
            ) from error

    def _mark(self, marker: Path) -> None:
        if not marker.exists():
            write_durably(marker, b"", self._partial)

    def pending_studies(self) -> list[str]:
        """Studies received and not yet exported, oldest marker first."""
        return [path.name for path in sorted(self.pending.iterdir(), key=lambda path: path.stat().st_mtime)]

    def was_sent(self, study_uid: str) -> bool:
        return (self.sent / study_uid).exists()

    def export_folder(self, study_uid: str) -> Path:
        """An empty folder to export a study's results into, to be handed to :meth:`queue_results`."""
        folder = self._partial / f"{study_uid}-{uuid.uuid4().hex}"
        folder.mkdir()
        return folder

    def queue_results(self, study_uid: str, exported: Path, files: Iterable[Path]) -> None:
        """Move the exported results into the outbox in one rename, then forget the pending mark."""
        for file in files:
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_folder(exported)
        exported.replace(self.outbox / study_uid)
        _fsync_folder(self.outbox)
        self.finish(study_uid)

    def finish(self, study_uid: str) -> None:
        """The study needs no more scoring or exporting (scored and queued, or nothing to send)."""
        (self.pending / study_uid).unlink(missing_ok=True)

    def outgoing(self) -> list[tuple[str, list[Path]]]:
        """The studies with results to send and their remaining files, oldest first."""
        folders = sorted(self.outbox.iterdir(), key=lambda path: path.stat().st_mtime)
        return [(folder.name, sorted(folder.glob("*.dcm"))) for folder in folders]

    def delivered(self, study_uid: str) -> None:
        """Every result of the study was accepted: mark it sent, then drop its outbox folder."""
        self._mark(self.sent / study_uid)
        shutil.rmtree(self.outbox / study_uid, ignore_errors=True)
