"""The PACS nodes: read from and written to one TOML file, which the commands read and the
workstation's settings edit.

::

    calling_ae = "GMIC"                  # this node's AE title (default GMIC)

    [nodes.archive]
    ae_title = "ORTHANC"
    host = "10.0.0.5"
    port = 4242
    dicomweb = "https://pacs.example/dicom-web"   # optional: QIDO-RS / WADO-RS / STOW-RS
    tls = { ca = "/etc/gmic/ca.pem", cert = "/etc/gmic/node.pem", key = "/etc/gmic/node.key" }  # optional

A command's ``--pacs`` takes a node's name from this file or an address ``AE@HOST:PORT``.
"""

from __future__ import annotations

import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from app.store.database import user_data_dir
from gmic_core.errors import GMICError

NODES_FILE = "pacs.toml"
DEFAULT_CALLING_AE = "GMIC"
# PS3.5 section 6.2: an AE title is at most 16 characters of the default repertoire, no backslash.
_AE_TITLE = re.compile(r"^[ -\[\]-~]{1,16}$")
_ADDRESS = re.compile(r"^(?P<ae>[^@]+)@(?P<host>[^:]+):(?P<port>\d{1,5})$")


class NodeConfigError(GMICError):
    """A PACS node configuration that cannot be used: an unreadable file, a bad AE title, host or port."""


@dataclass(frozen=True)
class Tls:
    """TLS for DIMSE associations: ``ca`` verifies the peer; ``cert`` and ``key`` identify this node."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
        context.check_hostname = False  # PACS certificates name AEs, rarely hosts
        if self.cert is not None:
            context.load_cert_chain(self.cert, self.key)
        return context

    def server_context(self) -> ssl.SSLContext:
        if self.cert is None:
            raise NodeConfigError("TLS for the listener needs a certificate: give cert (and key)")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.ca)
        context.load_cert_chain(self.cert, self.key)
        if self.ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass(frozen=True)
class PacsNode:
    """One DICOM peer: where to reach it over DIMSE and, optionally, DICOMweb."""

    name: str
    ae_title: str
    host: str
    port: int
    dicomweb: str | None = None
    tls: Tls | None = None

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title)
        if not 0 < self.port < 65536:
            raise NodeConfigError(f"PACS node {self.name!r}: port {self.port} is not 1-65535")
        if not self.host:
            raise NodeConfigError(f"PACS node {self.name!r}: no host")

    @property
    def address(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class NodeConfig:
    """What the nodes file holds: this node's AE title and the PACS nodes by name."""

    calling_ae: str = DEFAULT_CALLING_AE
    nodes: dict[str, PacsNode] = field(default_factory=dict)


def default_nodes_file() -> Path:
    return user_data_dir() / NODES_FILE


def check_ae_title(title: str) -> str:
    if not _AE_TITLE.match(title) or not title.strip():
        raise NodeConfigError(
            f"{title!r} is not an AE title: use 1-16 printable ASCII characters, no backslash"
        )
    return title


def parse_address(text: str) -> PacsNode:
    """``AE@HOST:PORT`` as a node named after it."""
    match = _ADDRESS.match(text)
    if match is None:
        raise NodeConfigError(
            f"{text!r} is not a DICOM address: write AE@HOST:PORT, e.g. ORTHANC@10.0.0.5:4242"
        )
    return PacsNode(text, check_ae_title(match["ae"]), match["host"], int(match["port"]))


def read_nodes(path: Path | None = None) -> NodeConfig:
    """The nodes file at ``path`` (default: ``pacs.toml`` in the user data folder); an absent file is
    an empty configuration."""
    path = path or default_nodes_file()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return NodeConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise NodeConfigError(
            f"{path}: cannot read the PACS nodes ({error}); fix or remove the file"
        ) from error
    try:
        nodes = {name: _node(name, table) for name, table in document.get("nodes", {}).items()}
        return NodeConfig(check_ae_title(document.get("calling_ae", DEFAULT_CALLING_AE)), nodes)
    except (KeyError, TypeError, ValueError) as error:
        raise NodeConfigError(
            f"{path}: a PACS node lacks or garbles {error}; see README, Connecting to a PACS"
        ) from error


def _node(name: str, table: dict) -> PacsNode:
    tls = table.get("tls")
    return PacsNode(
        name,
        str(table["ae_title"]),
        str(table["host"]),
        int(table["port"]),
        table.get("dicomweb") or None,
        None
        if tls is None
        else Tls(*(Path(tls[key]) if tls.get(key) else None for key in ("ca", "cert", "key"))),
    )


def write_nodes(config: NodeConfig, path: Path | None = None) -> Path:
    """Write ``config`` to ``path`` (default: the user's nodes file), replacing it atomically."""
    path = path or default_nodes_file()
    lines = [f"calling_ae = {_string(config.calling_ae)}"]
    for node in config.nodes.values():
        lines += ["", f"[nodes.{_string(node.name)}]"]
        lines += [
            f"ae_title = {_string(node.ae_title)}",
            f"host = {_string(node.host)}",
            f"port = {node.port}",
        ]
        if node.dicomweb:
            lines.append(f"dicomweb = {_string(node.dicomweb)}")
        if node.tls is not None:
            parts = [f"{key} = {_string(str(value))}" for key, value in vars(node.tls).items() if value]
            lines.append("tls = { " + ", ".join(parts) + " }")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def _string(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def resolve_node(text: str, config: NodeConfig) -> PacsNode:
    """``--pacs``: a node's name from the nodes file, else an address ``AE@HOST:PORT``."""
    if text in config.nodes:
        return config.nodes[text]
    if "@" not in text:
        known = ", ".join(sorted(config.nodes)) or "none configured"
        raise NodeConfigError(f"no PACS node named {text!r} (known: {known}); or write AE@HOST:PORT")
    return parse_address(text)
