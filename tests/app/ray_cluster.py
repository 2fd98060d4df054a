"""A real Ray cluster on this machine for the cluster tests: a head node and worker nodes, each a
``ray start --block`` process of its own session, addressed at 127.0.0.1, with one CPU.

``ray start --block`` owns its node's processes (GCS, raylet, agents, workers) and, on SIGTERM, drains
the node and stops them all; every process of a node shares the process group of that command, so
a node that does not stop in time is killed by its group id. Ray's session files go to a short
temporary folder (its socket paths must stay under the 107 bytes a Unix socket name allows), removed
at the end. Ray's gRPC servers listen on every interface (Ray has no option to narrow that); the
nodes address one another at 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
DRAIN_S = "2"  # how long a SIGTERMed node drains its work (Ray's default, 30 s, is for real clusters)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Node:
    process: subprocess.Popen
    log: Path

    def raylet_pid(self) -> int:
        """The PID of this node's raylet (a child of its ``ray start``)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if name == "raylet" and int(rest[1]) == self.process.pid:
                return int(entry.name)
        raise LookupError(f"no raylet under ray start (PID {self.process.pid})")


@dataclass
class LocalCluster:
    """Start with :meth:`start`; :meth:`add_worker` adds a node; :meth:`stop` stops every node."""

    temp_dir: Path
    port: int = field(default_factory=_free_port)
    nodes: list[Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        paths = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(paths),
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": DRAIN_S,
        }

    def _start_node(self, *arguments: str) -> Node:
        log = self.temp_dir / f"node{len(self.nodes)}.log"
        command = [
            str(Path(sys.executable).parent / "ray"),
            "start",
            *arguments,
            "--num-cpus=1",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={self.temp_dir}",
            "--block",
            "--disable-usage-stats",
        ]
        with log.open("w") as output:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                start_new_session=True,
            )
        node = Node(process, log)
        self.nodes.append(node)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "block forever" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"a Ray node did not start in {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        return node

    def start(self) -> LocalCluster:
        self._start_node("--head", f"--port={self.port}", "--include-dashboard=false")
        return self

    def add_worker(self) -> Node:
        return self._start_node(f"--address={self.address}")

    def stop(self) -> None:
        """Workers first, then the head: SIGTERM, then the process group's SIGKILL after the timeout."""
        for node in reversed(self.nodes):
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(STOP_TIMEOUT_S)
            # Whatever of the node outlived it: its process group's id is its ray start's PID.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait()


def start_cluster(workers: int = 1) -> LocalCluster:
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="gmic-ray-", dir="/tmp")))
    try:
        cluster.start()
        for _ in range(workers):
            cluster.add_worker()
    except BaseException:
        cluster.stop()
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
        raise
    return cluster
