"""``gmic listen``: a DICOM node that receives exams (C-ECHO and C-STORE SCP), scores each study once it
has been quiet for a while, and sends the results to a PACS.

Receiving runs in pynetdicom's association threads: each instance is written durably into the
:class:`~app.node.spool.Spool` before the success status goes back. The thread that calls
:meth:`Listener.serve` scores complete studies one at a time through the triage pipeline
(:func:`app.triage.run_triage`: score stored, failures recorded, worklist updated) and exports the
stored result as DICOM objects into the outbox; a sender thread delivers the outbox with exponential
backoff, so an unreachable PACS delays the results and loses none. A restart resumes from the spool.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass

import pydicom
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from app.node.config import Tls
from app.node.sender import Destination, SendError
from app.node.spool import Spool, SpoolError
from app.store import Store
from app.store.results import load_exam_result
from app.triage.run import find_exams, run_triage
from gmic_core.errors import GMICError
from gmic_core.inference import Predictor, load_standard_views
from gmic_core.reporting.export import export_exam
from gmic_core.reporting.identity import Algorithm

log = logging.getLogger(__name__)

# PS3.4 Annex B.2.3 C-STORE statuses.
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
FIRST_RETRY_S = 1.0
# How long shutdown waits for associations in progress to end.
DRAIN_S = 30.0


@dataclass(frozen=True)
class ListenerOptions:
    """``allow``: the calling AE titles that may associate (empty: any). ``quiet_s``: a study is
    complete once no instance of it arrived for this long. ``retry_max_s``: the longest wait between
    two tries to send."""

    ae_title: str = "GMIC"
    host: str = "127.0.0.1"
    port: int = 11112
    quiet_s: float = 30.0
    allow: tuple[str, ...] = ()
    retry_max_s: float = 60.0
    tls: Tls | None = None


class Listener:
    """One node: :meth:`serve` until the event is set."""

    def __init__(
        self,
        spool: Spool,
        store: Store,
        predictor: Predictor,
        destination: Destination | None,
        options: ListenerOptions,
    ) -> None:
        self.spool, self.store, self.predictor = spool, store, predictor
        self.destination, self.options = destination, options
        self._lock = threading.Lock()
        # Study key -> monotonic time of its last instance; every pending study is here.
        self._arrivals = dict.fromkeys(spool.pending_studies(), time.monotonic())
        self._outbox_changed = threading.Event()
        self._stopping = threading.Event()

    def serve(self, stop: threading.Event) -> None:
        """Receive, score and send until ``stop`` is set; then stop receiving, finish the study in
        hand and the object being sent, and return. What is left stays in the spool for the next start."""
        ae = AE(ae_title=self.options.ae_title)
        ae.supported_contexts = [*AllStoragePresentationContexts]
        ae.add_supported_context(Verification)
        ae.maximum_associations = 16
        if self.options.allow:
            ae.require_calling_aet = list(self.options.allow)
        else:
            log.warning("listen: every calling AE title may send (give --allow to restrict)")
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda event: SUCCESS)]
        context = None if self.options.tls is None else self.options.tls.server_context()
        server = ae.start_server(
            (self.options.host, self.options.port), block=False, evt_handlers=handlers, ssl_context=context
        )
        sender = threading.Thread(target=self._send_loop, name="gmic-listen-sender", daemon=True)
        if self.destination is not None:
            sender.start()
        log.info(
            "listen: %s on %s:%d, %d studies pending",
            self.options.ae_title,
            self.options.host,
            self.options.port,
            len(self._arrivals),
        )
        try:
            while not stop.is_set():
                study = self._next_complete()
                if study is None:
                    stop.wait(0.2)
                else:
                    self._complete(study)
        finally:
            server.shutdown()
            deadline = time.monotonic() + DRAIN_S
            for assoc in list(server.active_associations):
                assoc.join(max(0.0, deadline - time.monotonic()))
            self._stopping.set()
            self._outbox_changed.set()
            if sender.is_alive():
                sender.join()
            log.info("listen: stopped")

    def _on_store(self, event) -> int:
        try:
            data = event.encoded_dataset(include_meta=True)
            header = pydicom.dcmread(
                io.BytesIO(data), stop_before_pixels=True, specific_tags=["StudyInstanceUID"]
            )
            study = str(header.get("StudyInstanceUID", ""))
            self.spool.store(study, str(event.request.AffectedSOPInstanceUID), data)
            with self._lock:
                self.spool.mark_pending(study)
                self._arrivals[study] = time.monotonic()
        except (InvalidDicomError, ValueError, EOFError) as error:
            log.warning(
                "listen: an object from %s could not be read: %s", event.assoc.requestor.ae_title, error
            )
            return CANNOT_UNDERSTAND
        except SpoolError as error:
            log.warning("listen: %s", error)
            return OUT_OF_RESOURCES if isinstance(error.__cause__, OSError) else CANNOT_UNDERSTAND
        return SUCCESS

    def _next_complete(self) -> str | None:
        now = time.monotonic()
        with self._lock:
            quiet = [study for study, last in self._arrivals.items() if now - last >= self.options.quiet_s]
            if not quiet:
                return None
            study = min(quiet, key=self._arrivals.__getitem__)
            del self._arrivals[study]
            return study

    def _complete(self, study: str) -> None:
        """Score the study (the pipeline skips it where the model scored it before), then queue its
        results unless they were sent already and nothing new was scored."""
        folder = self.spool.studies / study
        summary = run_triage(self.store, self.predictor, [folder])
        log.info(
            "listen: study %s complete: %d scored, %d failures", study, summary.scored, len(summary.failed)
        )
        exported = None
        if summary.scored or not self.spool.was_sent(study):
            exported = self._export(study)
        with self._lock:
            if study in self._arrivals:
                return  # an instance arrived meanwhile: the study stays pending and comes round again
            if exported is None:
                self.spool.finish(study)
            else:
                self.spool.queue_results(study, *exported)
                self._outbox_changed.set()

    def _export(self, study: str):
        """The folder and files of the study's stored result as DICOM objects, or None when the
        study has no result of this model (it failed; the failure is recorded)."""
        model_key = self.predictor.identity.key
        for exam in find_exams([self.spool.studies / study]).exams:
            with self.store.session() as session:
                result = load_exam_result(session, exam.exam_id, model_key)
            if result is None:
                continue
            folder = self.spool.export_folder(study)
            try:
                files = export_exam(
                    result, load_standard_views(exam), Algorithm.of(self.predictor.checkpoints), folder
                )
            except (GMICError, ValueError) as error:  # ValueError: a source header highdicom refuses
                log.warning("listen: study %s: results not exported: %s", study, error)
                return None
            return folder, files
        return None

    def _send_loop(self) -> None:
        assert self.destination is not None
        delay = FIRST_RETRY_S
        while not self._stopping.is_set():
            self._outbox_changed.clear()
            for study, files in self.spool.outgoing():
                if self._stopping.is_set():
                    break
                try:
                    if files:
                        self.destination.send(files, lambda file: file.unlink())
                except SendError as error:
                    log.warning(
                        "listen: study %s: results not sent (%s); next try in %.0f s", study, error, delay
                    )
                    self._stopping.wait(delay)
                    delay = min(2 * delay, self.options.retry_max_s)
                    break
                self.spool.delivered(study)
                delay = FIRST_RETRY_S
                log.info("listen: study %s: %d results sent", study, len(files))
            else:
                self._outbox_changed.wait(1.0)
