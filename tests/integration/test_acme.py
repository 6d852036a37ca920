"""LABHUB_TLS=acme for real: Traefik gets the certificate from Pebble (an ACME server) by http-01
or tls-alpn-01, and the hub is served with it. Pebble reaches Traefik under the lab's host name
through Docker's DNS (a network alias set in a compose override, as a DNS record would)."""

import socket
import ssl
import time

import pytest
from cryptography import x509

import harness
import peers
import pki

HOST = "lab.test"


@pytest.fixture
def pebble(stack, tmp_path):
    ca_cert, ca_key = pki.certificate_authority("ACME Test CA")
    # The site's extra CAs are what Traefik trusts for its ACME server, read at run time.
    trusted = stack.dir / "ca-certificates" / "acme-test-ca.crt"
    trusted.write_bytes(pki.pem(ca_cert))
    override = stack.dir / "docker-compose.override.yml"
    override.write_text(f"services:\n  proxy:\n    networks:\n      default:\n        aliases: [{HOST}]\n")
    server = peers.start_pebble(f"{stack.project}_default", f"{stack.project}-pebble", tmp_path, ca_cert, ca_key)
    try:
        yield server
    finally:
        server.remove()
        override.unlink()
        trusted.unlink()
        # The account and certificate came from this Pebble, gone now: the next test starts afresh.
        stack.compose("exec", "-T", "proxy", "rm", "-f", "/etc/labhub-acme/acme.json", check=False)


def served(stack, root_pem: str, path: str) -> tuple[x509.Certificate, str]:
    """GET path over https://lab.test (connecting to this machine), verified against root_pem."""
    ctx = ssl.create_default_context(cadata=root_pem)
    with socket.create_connection(("127.0.0.1", harness.HTTPS_PORT), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=HOST) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)), response.decode(errors="replace")


@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
def test_traefik_gets_the_certificate_by_acme_and_serves_the_hub_with_it(stack, pebble, challenge):
    with stack.configured(tls="acme", hostname=HOST, acme_email="it@lab.test", acme_server=pebble.directory,
                          acme_challenge=challenge):
        deadline = time.monotonic() + 300  # a busy machine: Traefik asks, Pebble validates, issues
        while True:
            try:
                leaf, response = served(stack, pebble.root_pem, "/hub/login")
                break
            except (ssl.SSLError, OSError):
                assert time.monotonic() < deadline, "\n".join(l for l in stack.service_log("proxy").splitlines() if "acme" in l.lower() or "ERR" in l)[-3000:]
                time.sleep(1)
        assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName) == [HOST]
        assert response.startswith("HTTP/1.1 200") and 'name="password"' in response
        assert "Strict-Transport-Security: max-age=31536000" in response
        # Kept in the acme volume, so a restart does not ask the CA again.
        assert HOST in stack.compose("exec", "-T", "proxy", "cat", "/etc/labhub-acme/acme.json").stdout
        assert "labhub setup: Traefik gets the certificate for lab.test from https://pebble:14000/dir" in stack.service_log("setup")
