"""Flower's Deployment Engine for the alliance: a SuperLink, one SuperNode per node, the run.

Every process gets the flags that matter here: runtime dependency installation disabled (else the
SuperLink runs `uv sync` and can pull a CUDA build of torch over the CPU one), telemetry and update
checks off, ``FLWR_HOME`` pointing into the work directory (``flwr run`` rewrites configuration it
finds there), and ports chosen free on 127.0.0.1. With ``secure`` the SuperLink serves TLS with a
certificate from a CA made for the run and admits only SuperNodes whose public keys were
registered (``--enable-supernode-auth``); each SuperNode proves its identity with its own EC key.

A real alliance runs the SuperLink at one operator and each SuperNode at its brand; this module
runs them all on one machine, which is what the tests and the demo's ``--deployment`` need, and
writes every command it runs to the work directory's log so an operator can copy them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node.core.processes import free_port

APP_NAME = "alliance-churn"
SERVER_APP = "federation.server_app:app"
CLIENT_APP = "node.clientapp:app"


class DeploymentError(RuntimeError):
    """A Flower process would not start, or the run failed."""


def flower_env(home: Path) -> dict[str, str]:
    """The environment every Flower process gets."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }


def _bin(name: str) -> str:
    """A Flower executable of this environment."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


@dataclass(frozen=True)
class Tls:
    """A CA and the SuperLink's certificate for 127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path, days: int = 30, extra_names: list[str] | None = None) -> Tls:
    """Create a CA and a server certificate signed by it (EC P-384) for 127.0.0.1, localhost and
    ``extra_names`` (host names or IP addresses the SuperLink is reached by)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alliance federation CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(_names(["localhost", "127.0.0.1", *(extra_names or [])])), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    tls = Tls(directory / "ca.crt", directory / "server.pem", directory / "server.key")
    tls.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    tls.key.chmod(0o600)
    return tls


def _names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def make_supernode_key(directory: Path, name: str) -> tuple[Path, Path]:
    """An EC P-384 key pair in OpenSSH format for one SuperNode: (private, public)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private, public = directory / name, directory / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b"\n"
    )
    return private, public


def write_app(
    directory: Path, run_config: dict[str, str | int | float | bool], apps: tuple[str, str] = (SERVER_APP, CLIENT_APP)
) -> Path:
    """The Flower app: a pyproject naming our ServerApp and ClientApp (their code is installed, not bundled)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "{APP_NAME}"',
        'version = "1.0.0"',
        'dependencies = ["flwr==1.41.0"]',
        "",
        "[tool.flwr.app]",
        'publisher = "alliance"',
        "",
        "[tool.flwr.app.components]",
        f'serverapp = "{apps[0]}"',
        f'clientapp = "{apps[1]}"',
        "",
        "[tool.flwr.app.config]",
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in run_config.items()]
    (directory / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def superlink_command(database: Path, host: str, port: int, tls: Tls | None) -> list[str]:
    """The SuperLink's command line: TLS and SuperNode authentication when ``tls`` is given, else
    ``--insecure``; never any runtime dependency installation."""
    args = [
        _bin("flower-superlink"),
        "--disable-runtime-dependency-installation",
        "--database",
        str(database),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if tls is None:
        return [args[0], "--insecure", *args[1:]]
    return [
        *args,
        "--ssl-ca-certfile",
        str(tls.ca),
        "--ssl-certfile",
        str(tls.cert),
        "--ssl-keyfile",
        str(tls.key),
        "--enable-supernode-auth",
    ]


def supernode_command(data_dir: Path, superlink: str, port: int, ca: Path | None, key: Path | None) -> list[str]:
    """A SuperNode's command line for the node in ``data_dir``: TLS against ``ca`` and authentication
    with ``key`` when both are given, else ``--insecure``."""
    args = [
        _bin("flower-supernode"),
        "--superlink",
        superlink,
        "--port",
        str(port),
        "--node-config",
        f"data-dir='{Path(data_dir).resolve()}'",
    ]
    if ca is None or key is None:
        if (ca is None) != (key is None):
            raise DeploymentError("a secure SuperNode needs both the CA certificate and its private key")
        return [args[0], "--insecure", *args[1:]]
    return [*args, "--root-certificates", str(ca), "--auth-supernode-private-key", str(key)]


@dataclass
class LocalFederation:
    """A SuperLink and SuperNodes for ``nodes`` (data directories) under ``work``, on 127.0.0.1."""

    work: Path
    nodes: list[Path]
    secure: bool = False
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    tls: Tls | None = None
    keys: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    apps: tuple[str, str] = (SERVER_APP, CLIENT_APP)  # the ServerApp and ClientApp (module:attribute)

    @property
    def home(self) -> Path:
        """FLWR_HOME of every process started here."""
        return self.work / "flwr-home"

    @property
    def address(self) -> str:
        """Where the SuperLink listens."""
        return f"127.0.0.1:{self.port}"

    def _log(self, message: str) -> None:
        with (self.work / "commands.log").open("a", encoding="utf-8") as f:
            f.write(message + "\n")

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self._log(" ".join(args))
        log = (self.work / "logs" / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=flower_env(self.home), start_new_session=True
        )
        self.processes[name] = proc
        return proc

    def _connection(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        lines = ["[superlink.alliance]", f'address = "{self.address}"']
        lines += [f'root-certificates = "{self.tls.ca}"'] if self.tls else ["insecure = true"]
        (self.home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, timeout: float = 60.0) -> None:
        """Start the SuperLink, register the SuperNodes' keys (secure mode) and start the SuperNodes."""
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        if self.secure:
            self.tls = make_tls(self.work / "tls")
            self.keys = {f"node{i}": make_supernode_key(self.work / "keys", f"node{i}") for i in range(len(self.nodes))}
        self._connection()
        link = superlink_command(self.work / "superlink.db", "127.0.0.1", self.port, self.tls)
        self._start("superlink", link)
        self._wait_for("superlink", lambda _text: _port_open(self.port), timeout)
        for name, (_, public) in self.keys.items():
            self.flwr(["supernode", "register", str(public), "alliance", "--name", name], timeout=timeout)
        for i, data_dir in enumerate(self.nodes):
            self.start_supernode(f"node{i}", data_dir)
        self.wait_for_nodes(len(self.nodes), timeout)

    def start_supernode(self, name: str, data_dir: Path, key: Path | None = None) -> subprocess.Popen[bytes]:
        """One SuperNode for the node in ``data_dir`` (``key``: its auth key, default the registered one)."""
        args = supernode_command(
            data_dir,
            self.address,
            free_port(),
            self.tls.ca if self.tls else None,
            (key or self.keys[name][0]) if self.tls else None,
        )
        return self._start(name, args)

    def _wait_for(self, name: str, ready: Callable[[str], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        log = self.work / "logs" / f"{name}.log"
        while time.monotonic() < deadline:
            proc = self.processes[name]
            if proc.poll() is not None:
                raise DeploymentError(f"{name} exited with {proc.returncode}: see {log}")
            if ready(log.read_text(errors="replace") if log.exists() else ""):
                return
            time.sleep(0.3)
        raise DeploymentError(f"{name} did not start within {timeout:.0f} s: see {log}")

    def wait_for_nodes(self, count: int, timeout: float) -> None:
        """Wait until ``count`` SuperNodes have been activated by the SuperLink."""
        self._wait_for("superlink", lambda text: text.count("Activated node_id=") >= count, timeout)

    def flwr(self, args: list[str], timeout: float = 120.0) -> str:
        """Run a ``flwr`` CLI command against this federation; its output, or :class:`DeploymentError`."""
        cmd = [_bin("flwr"), *args]
        self._log(" ".join(cmd))
        done = subprocess.run(cmd, env=flower_env(self.home), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise DeploymentError(
                f"`flwr {' '.join(args[:2])}` failed ({done.returncode}): {done.stdout[-800:]}{done.stderr[-800:]}"
            )
        return done.stdout

    def run(self, run_config: dict[str, Any], timeout: float = 1800.0) -> Iterator[dict[str, Any]]:
        """``flwr run --stream`` the app; yield the ServerApp's progress lines (per round, then the report)."""
        app = write_app(self.work / "app", run_config, self.apps)
        cmd = [_bin("flwr"), "run", str(app), "alliance", "--stream"]
        self._log(" ".join(cmd))
        log = (self.work / "logs" / "run.log").open("a", encoding="utf-8")
        proc = subprocess.Popen(
            cmd,
            env=flower_env(self.home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.processes["run"] = proc  # type: ignore[assignment]
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        reported = False
        for line in proc.stdout:
            log.write(line)
            text = line.strip()
            if text.startswith('{"round"') or text.startswith('{"report"'):
                event = json.loads(text)
                reported = reported or "report" in event
                yield event
            if time.monotonic() > deadline:
                _stop(proc, 5)
                raise DeploymentError(f"the run took longer than {timeout:.0f} s")
        proc.wait()
        log.close()
        if proc.returncode != 0 or not reported:
            raise DeploymentError(
                f"`flwr run` ended with {proc.returncode} and no report: see {self.work / 'logs' / 'run.log'}"
            )

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the SuperNodes, then the SuperLink (each with its children); SIGKILL what lingers."""
        order = [n for n in self.processes if n not in ("superlink", "run")] + ["run", "superlink"]
        for name in order:
            proc = self.processes.get(name)
            if proc is not None:
                _stop(proc, grace)
        self.processes.clear()

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop(proc: subprocess.Popen[Any], grace: float) -> None:
    """Terminate ``proc``'s process group, then kill it if it outlives ``grace`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):  # children (flower-superexec) of a finished leader too
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(5)


def _port_open(port: int) -> bool:

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
