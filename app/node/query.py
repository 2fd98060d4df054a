"""Query and retrieve from a PACS: a study-level search, and the retrieval of one study into a folder,
over DIMSE (C-FIND; C-GET, or C-MOVE to a receiver of our own) or DICOMweb (QIDO-RS, WADO-RS).

Retrieval first lists the study's instances and fetches only those not yet in the folder (named
``SOP_INSTANCE_UID.dcm``, written durably), so an interrupted retrieval resumes where it stopped:
the whole study in one request when none of it is there, else one request per missing instance
(a request per instance costs a round trip each; see README, Connecting to a PACS).
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from app.node.config import PacsNode
from app.node.sender import association
from app.node.spool import check_uid, write_durably
from gmic_core.errors import GMICError

Progress = Callable[[int, int | None], None]  # (instances done, instances in all)
Cancelled = Callable[[], bool]  # asked between instances; True stops the retrieval (InterruptedError)
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


def _never() -> bool:
    return False


@dataclass(frozen=True)
class _Plan:
    """What a retrieval asks for: the study's instances (from the PACS's own list) and those of them
    not yet in the folder."""

    study_uid: str
    instances: list[_Instance]
    missing: list[_Instance]
    folder: Path
    source: str

    @classmethod
    def of(cls, study_uid: str, instances: list[_Instance], folder: Path, source: str) -> _Plan:
        if not instances:
            raise QueryError(f"{source} has no instance of study {study_uid}")
        present = _present(folder)
        missing = [instance for instance in instances if instance.sop_uid not in present]
        return cls(study_uid, instances, missing, folder, source)

    @property
    def skipped(self) -> int:
        return len(self.instances) - len(self.missing)

    def identifiers(self) -> list[Dataset]:
        """C-GET / C-MOVE keys: the study when nothing is here yet, else each missing instance."""
        if not self.skipped:
            return [_identifier("STUDY", StudyInstanceUID=self.study_uid)]
        return [
            _identifier(
                "IMAGE",
                StudyInstanceUID=self.study_uid,
                SeriesInstanceUID=instance.series_uid,
                SOPInstanceUID=instance.sop_uid,
            )
            for instance in self.missing
        ]

    def check(self, received: int) -> Retrieved:
        """The retrieval's summary, once every instance listed is in the folder."""
        absent = {instance.sop_uid for instance in self.instances} - _present(self.folder)
        if absent:
            raise QueryError(
                f"{self.source}: {len(absent)} instances of study {self.study_uid} did not arrive; "
                "run the same command again to resume"
            )
        return Retrieved(self.folder, received, self.skipped)


def _identifier(level: str, **keys: str) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    return identifier


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
        # after a cancel, a C-MOVE's store association may still be writing: nothing here is complete
        shutil.rmtree(self.partial, ignore_errors=True)


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

        identifier = _identifier("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID="", SOPInstanceUID="")
        return [
            _Instance(str(found.SeriesInstanceUID), str(found.SOPInstanceUID))
            for found in self._find(identifier, FIND)
        ]

    def get(
        self, study_uid: str, out: Path, progress: Progress | None = None, cancelled: Cancelled = _never
    ) -> Retrieved:
        """Retrieve the study's missing instances into ``out``: one study-level request when none is
        there yet, else one request per missing instance. Cancelling aborts the association."""
        from pynetdicom import StoragePresentationContexts, build_role, evt
        from pynetdicom.presentation import build_context
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

        study_uid = check_uid(study_uid, "Study Instance UID")
        plan = _Plan.of(study_uid, self._instances(study_uid), out, self.node.address)
        receiver = _Receiver(out, len(plan.instances), plan.skipped, progress)
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
            for identifier in plan.identifiers():
                if server is None:
                    responses = assoc.send_c_get(identifier, model)
                else:
                    responses = assoc.send_c_move(identifier, self.calling_ae, model)
                for status, _ in responses:
                    if cancelled():
                        assoc.abort()
                        raise InterruptedError(f"retrieving study {study_uid} cancelled")
                    code = getattr(status, "Status", None)
                    if code is None or (code not in (0x0000, 0xFF00) and code & 0xF000 != 0xB000):
                        raise QueryError(
                            f"{self.node.address}: retrieving study {study_uid} failed (status {code}); "
                            "run the same command again to resume"
                        )
        finally:
            if assoc.is_established:
                assoc.release()
            if server is not None:
                server.shutdown()
            receiver.close()
        return plan.check(receiver.received)


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

    def get(
        self, study_uid: str, out: Path, progress: Progress | None = None, cancelled: Cancelled = _never
    ) -> Retrieved:
        """As :meth:`DimseSource.get`: the whole study in one streamed WADO-RS request when none of
        it is there yet, else the missing instances one by one."""
        client = self._client()
        study_uid = check_uid(study_uid, "Study Instance UID")
        found = self._call("QIDO-RS", lambda: client.search_for_instances(study_instance_uid=study_uid))
        instances = [
            _Instance(_json_value(item, "SeriesInstanceUID"), _json_value(item, "SOPInstanceUID"))
            for item in found
        ]
        plan = _Plan.of(study_uid, instances, out, self.url)
        if plan.skipped:
            datasets = (
                client.retrieve_instance(study_uid, instance.series_uid, instance.sop_uid)
                for instance in plan.missing
            )
        else:
            datasets = client.iter_study(study_uid)
        receiver = _Receiver(out, len(plan.instances), plan.skipped, progress)
        try:
            self._call("WADO-RS", lambda: self._receive(datasets, receiver, study_uid, cancelled))
        finally:
            receiver.close()
        return plan.check(receiver.received)

    @staticmethod
    def _receive(datasets: Iterator[Dataset], receiver: _Receiver, study_uid: str, cancelled: Cancelled):
        for dataset in datasets:
            if cancelled():
                raise InterruptedError(f"retrieving study {study_uid} cancelled")
            buffer = io.BytesIO()
            pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
            receiver.store(buffer.getvalue(), str(dataset.SOPInstanceUID))


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
