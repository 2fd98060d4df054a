"""Query and retrieve from a PACS: a study-level search, and the retrieval of one study into a folder,
over DIMSE (C-FIND; C-GET, or C-MOVE to a receiver of our own) or DICOMweb (QIDO-RS, WADO-RS).

Retrieval first lists the study's instances and fetches only those not yet in the folder (named
``SOP_INSTANCE_UID.dcm``, written durably), so an interrupted retrieval resumes where it stopped.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from app.node.config import PacsNode
from app.node.sender import association
from app.node.spool import check_uid, write_durably
from gmic_core.errors import GMICError

Progress = Callable[[int, int | None], None]  # (instances done, instances in all)
_DATE_RANGE = re.compile(r"^(\d{8})?-(\d{8})?$|^\d{8}$")


class QueryError(GMICError):
    """A query or retrieval the PACS refused or could not answer."""


@dataclass(frozen=True)
class StudyQuery:
    """Study-level matching keys; None matches anything. ``dates``: DICOM range ``FROM-TO``."""

    patient_id: str | None = None
    dates: str | None = None
    modality: str | None = "MG"

    @classmethod
    def of(cls, patient_id: str | None, dates: str | None, modality: str | None) -> StudyQuery:
        if dates is not None and not _DATE_RANGE.match(dates):
            raise QueryError(f"--date {dates!r}: write YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-")
        return cls(patient_id or None, dates or None, modality or None)


@dataclass(frozen=True)
class StudyRow:
    """One study found (the patient ID only as the PACS returned it, for the reader who asked)."""

    study_uid: str
    patient_id: str
    date: str
    description: str
    modalities: str
    instances: int | None


@dataclass(frozen=True)
class Retrieved:
    folder: Path
    received: int
    skipped: int


@dataclass(frozen=True)
class _Instance:
    series_uid: str
    sop_uid: str


def studies_table(studies: list[StudyRow]) -> str:
    header = f"{'study instance uid':<64}  {'patient id':<16}  {'date':<8}  {'mod':<6}  {'n':>5}  description"
    lines = [header] + [
        f"{row.study_uid:<64}  {row.patient_id:<16}  {row.date:<8}  {row.modalities:<6}  "
        f"{'' if row.instances is None else row.instances:>5}  {row.description}"
        for row in studies
    ]
    return "\n".join(lines)


def studies_json(studies: list[StudyRow]) -> str:
    return json.dumps([asdict(row) for row in studies], indent=1)


def _row(get: Callable[[str], str]) -> StudyRow:
    count = get("NumberOfStudyRelatedInstances")
    return StudyRow(
        get("StudyInstanceUID"),
        get("PatientID"),
        get("StudyDate"),
        get("StudyDescription"),
        get("ModalitiesInStudy"),
        int(count) if count else None,
    )


def _present(folder: Path) -> set[str]:
    return {path.stem for path in folder.glob("*.dcm")}


class _Receiver:
    """Writes received instances into the retrieval's folder and counts them."""

    def __init__(self, folder: Path, total: int, done: int, progress: Progress | None) -> None:
        self.folder, self.total, self.done, self.progress = folder, total, done, progress
        self.partial = folder / ".partial"
        self.partial.mkdir(parents=True, exist_ok=True)
        self.received = 0

    def store(self, data: bytes, sop_uid: str) -> None:
        write_durably(self.folder / f"{check_uid(sop_uid, 'SOP Instance UID')}.dcm", data, self.partial)
        self.received += 1
        if self.progress is not None:
            self.progress(self.done + self.received, self.total)

    def on_store(self, event) -> int:
        try:
            self.store(event.encoded_dataset(include_meta=True), str(event.request.AffectedSOPInstanceUID))
        except (GMICError, OSError):
            return 0xA700  # out of resources: the PACS reports the instance as failed
        return 0x0000

    def close(self) -> None:
        self.partial.rmdir()


@dataclass(frozen=True)
class DimseSource:
    """A PACS over DIMSE, as ``calling_ae``. ``move_port``: retrieve by C-MOVE to ``calling_ae``,
    receiving on this port (the PACS must know that AE at this host and port), instead of C-GET."""

    node: PacsNode
    calling_ae: str
    move_port: int | None = None

    def find(self, query: StudyQuery) -> list[StudyRow]:
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        for keyword in ("StudyInstanceUID", "StudyDescription", "NumberOfStudyRelatedInstances"):
            setattr(identifier, keyword, "")
        identifier.PatientID = query.patient_id or ""
        identifier.StudyDate = query.dates or ""
        identifier.ModalitiesInStudy = query.modality or ""
        return [
            _row(lambda keyword, found=found: _dataset_value(found, keyword))
            for found in self._find(identifier, FIND)
        ]

    def _find(self, identifier: Dataset, model) -> list[Dataset]:
        from pynetdicom.presentation import build_context

        assoc = association(self.node, self.calling_ae, [build_context(model)], "C-FIND")
        try:
            found = []
            for status, answer in assoc.send_c_find(identifier, model):
                code = getattr(status, "Status", None)
                if code is None or code not in (0x0000, 0xFF00, 0xFF01):
                    raise QueryError(
                        f"{self.node.address}: C-FIND failed (status {code}); see the PACS's log"
                    )
                if code in (0xFF00, 0xFF01) and answer is not None:
                    found.append(answer)
            return found
        finally:
            assoc.release()

    def _instances(self, study_uid: str) -> list[_Instance]:
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        identifier.StudyInstanceUID = study_uid
        identifier.SeriesInstanceUID = ""
        identifier.SOPInstanceUID = ""
        return [
            _Instance(str(found.SeriesInstanceUID), str(found.SOPInstanceUID))
            for found in self._find(identifier, FIND)
        ]

    def get(self, study_uid: str, out: Path, progress: Progress | None = None) -> Retrieved:
        """Retrieve the study's missing instances into ``out``, one request per instance."""
        from pynetdicom import StoragePresentationContexts, build_role, evt
        from pynetdicom.presentation import build_context
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

        study_uid = check_uid(study_uid, "Study Instance UID")
        instances = self._instances(study_uid)
        if not instances:
            raise QueryError(f"{self.node.address} has no instance of study {study_uid}")
        present = _present(out)
        missing = [instance for instance in instances if instance.sop_uid not in present]
        receiver = _Receiver(out, len(instances), len(instances) - len(missing), progress)
        handlers = [(evt.EVT_C_STORE, receiver.on_store)]
        server = None
        if self.move_port is None:
            model = GET
            contexts = [build_context(GET), *StoragePresentationContexts[:126]]
            roles = [build_role(context.abstract_syntax, scp_role=True) for context in contexts[1:]]
            assoc = association(self.node, self.calling_ae, contexts, "C-GET", roles, handlers)
        else:
            from pynetdicom import AE

            model = MOVE
            receiving = AE(ae_title=self.calling_ae)
            receiving.supported_contexts = StoragePresentationContexts
            # The PACS connects back: on a PACS of this machine, listen on the loopback address only.
            local = self.node.host in ("127.0.0.1", "localhost", "::1")
            address = ("127.0.0.1" if local else "0.0.0.0", self.move_port)
            server = receiving.start_server(address, block=False, evt_handlers=handlers)
            assoc = association(self.node, self.calling_ae, [build_context(MOVE)], "C-MOVE")
        try:
            for instance in missing:
                identifier = Dataset()
                identifier.QueryRetrieveLevel = "IMAGE"
                identifier.StudyInstanceUID = study_uid
                identifier.SeriesInstanceUID = instance.series_uid
                identifier.SOPInstanceUID = instance.sop_uid
                if server is None:
                    responses = assoc.send_c_get(identifier, model)
                else:
                    responses = assoc.send_c_move(identifier, self.calling_ae, model)
                for status, _ in responses:
                    code = getattr(status, "Status", None)
                    if code is None or (code not in (0x0000, 0xFF00) and code & 0xF000 != 0xB000):
                        raise QueryError(
                            f"{self.node.address}: retrieving instance {instance.sop_uid} of study {study_uid} "
                            f"failed (status {code}); run the same command again to resume"
                        )
        finally:
            assoc.release()
            if server is not None:
                server.shutdown()
            receiver.close()
        return Retrieved(out, receiver.received, len(instances) - len(missing))


@dataclass(frozen=True)
class DicomwebSource:
    """A DICOMweb service (QIDO-RS and WADO-RS) at ``url``."""

    url: str

    def _client(self):
        from dicomweb_client import DICOMwebClient

        return DICOMwebClient(self.url, timeout=30)

    def _call(self, what: str, call: Callable):
        from requests import RequestException

        try:
            return call()
        except (RequestException, OSError) as error:
            raise QueryError(
                f"{self.url}: {what} failed ({error}); check the URL and that the service runs"
            ) from error

    def find(self, query: StudyQuery) -> list[StudyRow]:
        filters = {
            keyword: value
            for keyword, value in (
                ("PatientID", query.patient_id),
                ("StudyDate", query.dates),
                ("ModalitiesInStudy", query.modality),
            )
            if value
        }
        fields = ["StudyDescription", "NumberOfStudyRelatedInstances", "ModalitiesInStudy"]
        found = self._call(
            "QIDO-RS",
            lambda: self._client().search_for_studies(search_filters=filters, fields=fields),
        )
        return [_row(lambda keyword, item=item: _json_value(item, keyword)) for item in found]

    def get(self, study_uid: str, out: Path, progress: Progress | None = None) -> Retrieved:
        client = self._client()
        study_uid = check_uid(study_uid, "Study Instance UID")
        found = self._call("QIDO-RS", lambda: client.search_for_instances(study_instance_uid=study_uid))
        instances = [
            _Instance(_json_value(item, "SeriesInstanceUID"), _json_value(item, "SOPInstanceUID"))
            for item in found
        ]
        if not instances:
            raise QueryError(f"{self.url} has no instance of study {study_uid}")
        present = _present(out)
        missing = [instance for instance in instances if instance.sop_uid not in present]
        receiver = _Receiver(out, len(instances), len(instances) - len(missing), progress)
        try:
            for instance in missing:
                dataset = self._call(
                    "WADO-RS",
                    lambda instance=instance: client.retrieve_instance(
                        study_uid, instance.series_uid, instance.sop_uid
                    ),
                )
                buffer = io.BytesIO()
                pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
                receiver.store(buffer.getvalue(), instance.sop_uid)
        finally:
            receiver.close()
        return Retrieved(out, receiver.received, len(instances) - len(missing))


def _dataset_value(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword, "")
    if isinstance(value, str | int | float):
        return str(value)
    return "\\".join(str(item) for item in value) if value else ""


def _json_value(item: dict, keyword: str) -> str:
    """One attribute of a DICOM JSON object (PS3.18 F.2) as text."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    element = item.get(f"{tag:08X}", {})
    values = element.get("Value", [])
    return "\\".join(str(value) for value in values)
