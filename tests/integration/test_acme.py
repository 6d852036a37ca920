"""LABHUB_TLS=acme for real: Traefik gets the certificate from Pebble (an ACME server) by http-01,
tls-alpn-01 or dns-01, and the hub is served with it. Pebble resolves names through challtestsrv, a
DNS server: every host name there points at this machine (its address on the stack's network),
where Traefik's ports are published, as the lab's DNS records would; dns-01's TXT records come from
Traefik through lego's httpreq provider and a small adapter (tests/peers/pebble/httpreq.py)."""

import os
import socket
import ssl
import time

import pytest
from cryptography import x509

import harness
import peers
import pki

HOST = "lab.test"
ACME = {"tls": "acme", "hostname": HOST, "acme_email": "it@lab.test"}


@pytest.fixture
def dns(stack):
    network = f"{stack.project}_default"
    machine = harness.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", network)
    server = peers.start_challtestsrv(network, f"{stack.project}-dns", machine)
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pebble(stack, dns, tmp_path):
    ca_cert, ca_key = pki.certificate_authority("ACME Test CA")
    # The site's extra CAs are what Traefik trusts for its ACME server, read at run time: the tests
    # bring the stack up with the images as built (build=False), which do not have this CA.
    trusted = stack.dir / "ca-certificates" / "acme-test-ca.crt"
    trusted.write_bytes(pki.pem(ca_cert))
    server = peers.start_pebble(f"{stack.project}_default", f"{stack.project}-pebble", tmp_path, ca_cert, ca_key, dns,
                                stack.ports)
    try:
        yield server
    finally:
        server.remove()
        trusted.unlink()
        # The account and certificate came from this Pebble, gone now: the next test starts afresh.
        stack.compose("exec", "-T", "proxy", "rm", "-f", "/etc/labhub-acme/acme.json", check=False)


@pytest.fixture
def httpreq(stack, dns):
    """The DNS provider's API for dns-01, and its credentials where the admin puts them."""
    hub_image = harness.docker("inspect", "-f", "{{.Image}}", stack.container("hub"))
    adapter = peers.start_httpreq_adapter(f"{stack.project}_default", f"{stack.project}-httpreq", hub_image, dns)
    credentials = stack.secret / "acme-dns.env"
    credentials.write_text("HTTPREQ_ENDPOINT=http://httpreq:8080\n")
    os.chmod(credentials, 0o600)
    try:
        yield adapter
    finally:
        adapter.remove()
        credentials.unlink(missing_ok=True)


def served(stack, root_pem: str, host: str, path: str) -> tuple[x509.Certificate, str]:
    """GET path over https://host (connecting to this machine), verified against root_pem."""
    ctx = ssl.create_default_context(cadata=root_pem)
    with socket.create_connection(("127.0.0.1", stack.ports[1]), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)), response.decode(errors="replace")


def first_served(stack, pebble, path: str) -> tuple[x509.Certificate, str]:
    """served(), once Traefik has the certificate: it asks, Pebble validates and issues."""
    deadline = time.monotonic() + 300  # a busy machine
    while True:
        try:
            return served(stack, pebble.root_pem, HOST, path)
        except (ssl.SSLError, OSError):
            assert time.monotonic() < deadline, "\n".join(
                line for line in stack.service_log("proxy").splitlines() if "acme" in line.lower() or "ERR" in line)[-3000:]
            time.sleep(1)


def names(leaf: x509.Certificate) -> list[str]:
    return leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
def test_traefik_gets_the_certificate_by_acme_and_serves_the_hub_with_it(stack, pebble, challenge):
    with stack.configured(**ACME, build=False, acme_server=pebble.directory, acme_challenge=challenge):
        leaf, response = first_served(stack, pebble, "/hub/login")
        assert names(leaf) == [HOST]
        assert response.startswith("HTTP/1.1 200") and 'name="password"' in response
        assert "Strict-Transport-Security: max-age=31536000" in response
        # Kept in the acme volume, so a restart does not ask the CA again.
        assert HOST in stack.compose("exec", "-T", "proxy", "cat", "/etc/labhub-acme/acme.json").stdout
        assert "labhub setup: Traefik gets the certificate for lab.test from https://pebble:14000/dir" in stack.service_log("setup")


def test_with_user_subdomains_dns_01_gets_one_certificate_for_the_hub_and_every_users_host(stack, pebble, httpreq):
    # lego first checks that the TXT record has reached the zone's own DNS servers, which a name of
    # the test has none of: the admin's copy of traefik.toml turns that check off, as an admin's
    # would where the lab's DNS cannot be asked from the machine.
    site_static = stack.dir / "reverse-proxy" / "traefik.toml"
    site_static.write_text((stack.dir / "reverse-proxy" / "traefik.toml.template").read_text() +
                           "\n[certificatesResolvers.acme.acme.dnsChallenge.propagation]\n  disableChecks = true\n")
    with stack.configured(**ACME, build=False, acme_server=pebble.directory, acme_challenge="dns-01", acme_dns_provider="httpreq",
                          user_subdomains="true"):
        try:
            leaf, response = first_served(stack, pebble, "/hub/login")
            assert names(leaf) == [HOST, f"*.{HOST}"]
            assert response.startswith("HTTP/1.1 200") and 'name="password"' in response
            # A user's own host, on the same certificate, verified for that name (what answers is
            # the hub's business: alice has no server).
            user_leaf, user_response = served(stack, pebble.root_pem, f"alice.{HOST}", "/user/alice/lab")
            assert user_leaf == leaf and user_response.startswith("HTTP/1.1 ")
            assert "POST /present" in httpreq.logs() and "POST /cleanup" in httpreq.logs()
            # The DNS provider's credentials are Traefik's alone, never in the hub's environment.
            environment = {service: harness.docker("inspect", "-f", "{{json .Config.Env}}", stack.container(service))
                           for service in ("proxy", "hub")}
            assert "HTTPREQ_ENDPOINT=" in environment["proxy"] and "HTTPREQ_ENDPOINT" not in environment["hub"]
            assert (f"labhub setup: Traefik gets the certificate for lab.test, *.lab.test from {pebble.directory} "
                    "(dns-01 through httpreq)") in stack.service_log("setup")
        finally:
            site_static.unlink()  # before the stack goes back to its defaults


def test_a_dns_provider_lego_does_not_know_is_named_by_labhub_check(stack, pebble, httpreq):
    with stack.configured(**ACME, build=False, acme_server=pebble.directory, acme_challenge="dns-01", acme_dns_provider="no-such-dns"):
        deadline = time.monotonic() + 120
        while "unrecognized DNS provider" not in stack.service_log("proxy"):
            assert time.monotonic() < deadline, stack.service_log("proxy")[-3000:]
            time.sleep(1)
        check = stack.compose("run", "--rm", "-T", "admin", "check", check=False)
        assert ("LABHUB_ACME_DNS_PROVIDER: Traefik's ACME client (lego) knows no DNS provider 'no-such-dns'; set its "
                "code from https://go-acme.github.io/lego/dns/ (in .env, see .env.template)") in check.stdout.splitlines()
