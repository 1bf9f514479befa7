"""The Deployment Engine's command lines, certificates and keys (fast; the slow test runs them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from node.cli.main import app
from node.learning.deploy import DeploymentError, make_tls, superlink_command, supernode_command


def test_a_secure_superlink_serves_tls_admits_registered_nodes_and_installs_nothing(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    args = superlink_command(tmp_path / "s.db", "127.0.0.1", 9092, tls)
    assert "--disable-runtime-dependency-installation" in args
    assert "--enable-supernode-auth" in args
    assert args[args.index("--ssl-certfile") + 1] == str(tls.cert)
    assert "--insecure" not in args


def test_an_insecure_superlink_still_installs_nothing(tmp_path: Path) -> None:
    args = superlink_command(tmp_path / "s.db", "127.0.0.1", 9092, None)
    assert "--insecure" in args
    assert "--disable-runtime-dependency-installation" in args


def test_a_supernode_passes_its_data_directory_and_authenticates_with_its_key(tmp_path: Path) -> None:
    args = supernode_command(tmp_path / "node", "link:9092", 9094, tmp_path / "ca.crt", tmp_path / "key")
    assert args[args.index("--node-config") + 1] == f"data-dir='{(tmp_path / 'node').resolve()}'"
    assert args[args.index("--auth-supernode-private-key") + 1] == str(tmp_path / "key")
    with pytest.raises(DeploymentError, match="both"):
        supernode_command(tmp_path / "node", "link:9092", 9094, tmp_path / "ca.crt", None)


def test_the_server_certificate_is_signed_by_the_run_ca_for_the_names_asked(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls", extra_names=["link.alliance.example", "10.0.0.7"])
    ca = x509.load_pem_x509_certificate(tls.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "link.alliance.example"} <= set(names.get_values_for_type(x509.DNSName))
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.0.0.7"}
    assert oct(tls.key.stat().st_mode & 0o777) == "0o600"


def test_keygen_writes_an_openssh_key_pair_for_node_authentication(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["federation", "keygen", "--name", "coffee", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "coffee.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
    assert b"OPENSSH PRIVATE KEY" in (tmp_path / "coffee").read_bytes()


def test_a_supernode_with_a_ca_but_no_key_is_refused_before_starting(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("x")
    r = CliRunner().invoke(
        app,
        [
            "federation",
            "supernode",
            "--data-dir",
            str(tmp_path),
            "--superlink",
            "x:1",
            "--ca",
            str(tmp_path / "ca.crt"),
        ],
    )
    assert r.exit_code == 2
    assert "both --ca and --key" in r.output
