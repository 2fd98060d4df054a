"""Sending DICOM objects to a PACS: C-STORE over one association per batch, or STOW-RS in one
request. A file is reported as accepted only after the PACS answered success for it, so that the
caller can forget it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pynetdicom import AE
from pynetdicom.presentation import build_context

from app.node.config import PacsNode
from gmic_core.errors import GMICError

log = logging.getLogger(__name__)

# Seconds for the association, each DIMSE reply and the network; a PACS slower than this is retried.
TIMEOUT_S = 30.0


class SendError(GMICError):
    """A PACS that did not accept an object: unreachable, refusing the association or the object."""


Accepted = Callable[[Path], None]


def association(
    node: PacsNode,
    calling_ae: str,
    contexts: Sequence,
    what: str,
    roles: Sequence = (),
    handlers: Sequence = (),
):
    """An established association with ``node`` proposing ``contexts`` (and SCP/SCU ``roles``, with
    event ``handlers``); raises SendError naming the node when it cannot be made."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    ae.connection_timeout = TIMEOUT_S
    tls = None if node.tls is None else (node.tls.client_context(), node.host)
    assoc = ae.associate(
        node.host,
        node.port,
        list(contexts),
        ae_title=node.ae_title,
        ext_neg=list(roles),
        tls_args=tls,
        evt_handlers=list(handlers),
    )
    if not assoc.is_established:
        raise SendError(
            f"{node.address}: no association for {what} (refused, aborted or unreachable); check that the "
            f"PACS runs and knows the calling AE title {calling_ae}"
        )
    return assoc


@dataclass(frozen=True)
class StoreDestination:
    """C-STORE to ``node`` as ``calling_ae``."""

    node: PacsNode
    calling_ae: str

    def send(self, files: Sequence[Path], accepted: Accepted) -> None:
        headers = {file: pydicom.dcmread(file, stop_before_pixels=True) for file in files}
        syntaxes: dict[str, set[str]] = {}
        for header in headers.values():
            syntaxes.setdefault(header.SOPClassUID, set()).add(header.file_meta.TransferSyntaxUID)
        contexts = [build_context(sop_class, sorted(found)) for sop_class, found in syntaxes.items()]
        assoc = association(self.node, self.calling_ae, contexts, "sending results")
        try:
            for file in files:
                try:
                    status = assoc.send_c_store(file)
                except (RuntimeError, ValueError, OSError) as error:  # no accepted context, a broken link
                    raise SendError(
                        f"{self.node.address}: {file.name} could not be sent ({error})"
                    ) from error
                code = getattr(status, "Status", None)
                if code is None or code not in (0x0000, 0xB000, 0xB006, 0xB007):
                    raise SendError(f"{self.node.address} refused {file.name} (status {code}); see its log")
                accepted(file)
        finally:
            assoc.release()


@dataclass(frozen=True)
class StowDestination:
    """STOW-RS to the DICOMweb service at ``url``, the batch in one request. A file is accepted once
    the response's Referenced SOP Sequence lists it (PS3.18 10.5.3); the Failed SOP Sequence is
    present, and empty, in a full success."""

    url: str

    def send(self, files: Sequence[Path], accepted: Accepted) -> None:
        from dicomweb_client import DICOMwebClient
        from requests import RequestException

        client = DICOMwebClient(self.url, timeout=TIMEOUT_S)
        datasets = [pydicom.dcmread(file) for file in files]
        try:
            response = client.store_instances(datasets)
        except (RequestException, OSError) as error:
            raise SendError(f"{self.url}: STOW-RS failed ({error}); is the service up?") from error
        stored = {str(item.ReferencedSOPInstanceUID) for item in response.get("ReferencedSOPSequence", [])}
        refused = []
        for file, dataset in zip(files, datasets, strict=True):
            if str(dataset.SOPInstanceUID) in stored:
                accepted(file)
            else:
                refused.append(file.name)
        if refused:
            raise SendError(f"{self.url} refused {', '.join(refused)}; see the service's log")


Destination = StoreDestination | StowDestination
