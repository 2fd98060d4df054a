"""The servers of the DICOM node tests, each bound to 127.0.0.1 on a free port, bounded in time and
stopped by its own PID: Orthanc started by ``.ci/orthanc``, and ``gmic listen`` processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.conftest import REPO_ROOT

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.2):
    """``condition()``'s first truthy value, polled until ``timeout_s``; fails naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def stop_process(pid: int, process: subprocess.Popen | None = None, sig: int = signal.SIGTERM) -> None:
    """Signal ``pid``, then SIGKILL it if it has not ended within the stop timeout."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return
        if process is None:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (started by the script): poll its existence
                finished = 0 if _alive(pid) else pid
            if finished:
                return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait(STOP_TIMEOUT_S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Orthanc:
    """An Orthanc of ``.ci/orthanc`` in ``folder``; it knows the modality ``GMIC`` at ``move_port``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.dicom_port, self.http_port, self.move_port = free_port(), free_port(), free_port()
        self.pid: int | None = None

    @property
    def address(self) -> str:
        return f"ORTHANC@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def start(self) -> None:
        started = subprocess.run(
            [
                REPO_ROOT / ".ci" / "orthanc",
                self.folder,
                str(self.dicom_port),
                str(self.http_port),
                f"GMIC@127.0.0.1:{self.move_port}",
            ],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=True,
        )
        self.pid = int(started.stdout.split()[-1])

    def stop(self) -> None:
        if self.pid is not None:
            stop_process(self.pid)
            self.pid = None

    def rest(self, path: str, body: object | None = None):
        data = None if body is None else json.dumps(body).encode()
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(urllib.request.Request(url, data), timeout=10) as response:
            return json.loads(response.read())

    def study_instances(self, study_uid: str) -> list[dict]:
        """Every instance of the study in Orthanc, with its main tags."""
        found = self.rest(
            "/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}, "Expand": True}
        )
        return [self.rest(f"/instances/{instance['ID']}/simplified-tags") for instance in found]


class ListenProcess:
    """``gmic listen`` as a child process, answering C-ECHO before :meth:`start` returns."""

    def __init__(
        self,
        store: Path,
        db_url: str,
        weights: Path,
        extra: Sequence[str] = (),
        probe: Callable[[str, str], bool] | None = None,
    ) -> None:
        """``probe(host, port)``: True once the listener answers (default: a plain C-ECHO)."""
        self.store, self.db_url, self.weights, self.extra = store, db_url, weights, list(extra)
        self.probe = probe or (lambda host, port: echo("MODALITY", host, port))
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = store.parent / f"{store.name}-listen.log"

    @property
    def address(self) -> tuple[str, str]:
        return "127.0.0.1", str(self.port)

    def start(self) -> None:
        command = [sys.executable, "-m", "app.cli", "-v", "listen", "--ae-title", "GMIC"]
        command += ["--port", str(self.port), "--store", str(self.store), "--db", self.db_url]
        command += ["--weights", str(self.weights), "--device", "cpu", *self.extra]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
            )
        wait_for(self._answers, START_TIMEOUT_S, f"gmic listen to answer C-ECHO (log: {self.log})", 0.5)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"gmic listen exited: {self.log.read_text()[-3000:]}")
        return self.probe(*self.address)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_process(self.process.pid, self.process, sig)
            self.process = None


def echo(calling_ae: str, host: str, port: str) -> bool:
    return (
        subprocess.run(
            ["echoscu", "-aet", calling_ae, "-aec", "GMIC", host, port], capture_output=True, timeout=30
        ).returncode
        == 0
    )


def storescu(
    calling_ae: str, called_ae: str, host: str, port: str, files: Sequence[Path]
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["storescu", "-aet", calling_ae, "-aec", called_ae, host, port, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throwaway CA and, signed by it, a certificate and key for ``server`` and for ``client``
    (EC P-256, valid two days), made with the openssl command: ``{name}.pem``, ``{name}.key``."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*arguments: str) -> None:
        subprocess.run(["openssl", *arguments], cwd=folder, capture_output=True, timeout=60, check=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=gmic test CA"
    )
    (folder / "leaf.ext").write_text(
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    for name in ("server", "client"):
        openssl(
            "req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=gmic test {name}"
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        )
    return {path.name: path for path in folder.iterdir() if path.suffix in (".pem", ".key")}
