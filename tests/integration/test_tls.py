"""The TLS front door for real: Traefik's protocol and cipher policy, strict SNI, no dashboard,
certificates rotated while users work, WebSockets that outlive Traefik's default timeouts."""

import socket
import ssl
import time

import pytest
import requests
from cryptography import x509

import harness
import pki


def handshake(stack, version=None, ciphers=None, server_name="localhost", ca_file=None, verify=True):
    """A TLS handshake with the stack's Traefik; returns (protocol, cipher, leaf certificate).
    verify=False (and always without a server name) accepts any certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca_file or stack.ca_file)
    # Offer whatever the test asks for, however weak: refusing it must be the server's doing.
    ctx.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    if server_name is None or not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", harness.HTTPS_PORT), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=server_name) as tls:
            leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            return tls.version(), tls.cipher()[0], leaf


def refused(stack, **kw) -> ssl.SSLError:
    with pytest.raises(ssl.SSLError) as e:
        handshake(stack, **kw)
    return e.value


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")  # offering them is the point
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_1_0_and_1_1_are_refused(stack, version):
    assert refused(stack, version=version).reason == "TLSV1_ALERT_PROTOCOL_VERSION"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_served(stack, version):
    protocol, _, leaf = handshake(stack, version=version)
    assert protocol == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert leaf.subject.rfc4514_string() == "CN=localhost"


@pytest.mark.parametrize("cipher", [
    "ECDHE-ECDSA-AES128-SHA",  # CBC with SHA-1: Go offers it by default, Mozilla intermediate does not
    "ECDHE-ECDSA-AES256-SHA",
    "AES128-GCM-SHA256",  # no forward secrecy
])
def test_weak_tls_1_2_ciphers_are_refused(stack, cipher):
    assert refused(stack, version=ssl.TLSVersion.TLSv1_2, ciphers=cipher).reason == "SSLV3_ALERT_HANDSHAKE_FAILURE"


def test_intermediate_ciphers_are_served(stack):
    for cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"):
        assert handshake(stack, version=ssl.TLSVersion.TLSv1_2, ciphers=cipher)[1] == cipher


def test_unknown_or_missing_host_name_gets_no_certificate(stack):
    """Strict SNI: a scanner asking for another name (or none, by IP) learns nothing. The client
    accepts any certificate, so a failed handshake is Traefik refusing it (with an alert), never
    the client's own verdict on a certificate it was shown (the wrong name, an unknown CA)."""
    assert handshake(stack, verify=False)[2].subject.rfc4514_string() == "CN=localhost"  # the lab's name is served
    for name in ("not-this-lab.example.org", None):
        # Traefik's alert unrecognized_name (112), as OpenSSL names it.
        assert refused(stack, server_name=name, verify=False).reason == "TLSV1_UNRECOGNIZED_NAME", name


def test_security_headers_are_sent(stack):
    session = requests.Session()
    session.trust_env = False
    r = session.get(stack.url + "/hub/login", verify=stack.ca_file)
    assert int(r.headers["Strict-Transport-Security"].split("max-age=")[1].split(";")[0]) >= 15552000
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert "camera=()" in r.headers["Permissions-Policy"]


def test_traefik_dashboard_and_api_are_not_reachable(stack):
    proxy = stack.container("proxy")
    published = harness.docker("port", proxy).splitlines()
    assert {line.split("/")[0] for line in published} == {"80", "443"}, published
    ip = next(iter(harness.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", proxy).split()))
    with pytest.raises(OSError):  # nothing listens on Traefik's API port, even inside the network
        socket.create_connection((ip, 8080), timeout=3).close()
    session = requests.Session()
    session.trust_env = False
    for path in ("/api/rawdata", "/api/overview", "/dashboard/"):
        r = session.get(stack.url + path, verify=stack.ca_file, allow_redirects=False)
        assert "routers" not in r.text and "traefik" not in r.headers.get("Content-Type", ""), path


def served_leaf(stack, ca_file=None) -> x509.Certificate:
    return handshake(stack, ca_file=ca_file or stack.ca_file)[2]


def wait_for_leaf(stack, expected: x509.Certificate, ca_file: str, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if served_leaf(stack, ca_file) == expected:
                return
        except ssl.SSLError:
            pass  # still the previous certificate, not signed by ca_file
        assert time.monotonic() < deadline, "the new certificate was not served"
        time.sleep(0.5)


def started_at(stack, service: str) -> str:
    return harness.docker("inspect", "-f", "{{.State.StartedAt}}", stack.container(service))


def test_a_replaced_certificate_is_served_without_restart_or_dropped_sessions(stack, admin, tmp_path):
    admin.start_server()
    kernel = admin.kernel_socket(admin.start_kernel())
    try:
        assert kernel.run("6*7") == "42"
        before = {service: started_at(stack, service) for service in ("proxy", "hub")}

        lab = pki.lab_certificate(names=("localhost",), root_name="Rotation Test Root")
        root = tmp_path / "lab-root.pem"
        root.write_bytes(lab.root_pem)
        lab.install(stack.secret, order=(2, 1, 0))  # root first: the chain is reordered
        wait_for_leaf(stack, lab.leaf, str(root))
        assert kernel.run("6*9") == "54"  # the open WebSocket is still the same session

        fresh = harness.HubClient(stack)
        fresh.http.verify = str(root)
        assert fresh.login("admin", stack.admin_password()).status_code == 200

        # A key that does not belong: refused, logged, and the good certificate stays served.
        (stack.secret / "tls/tls.key").write_bytes(pki.key_pem(pki.lab_certificate().key))
        deadline = time.monotonic() + 30
        while "secret/tls/tls.key: does not match secret/tls/tls.crt" not in stack.service_log("proxy-config"):
            assert time.monotonic() < deadline, stack.service_log("proxy-config")
            time.sleep(0.5)
        assert ("labhub proxy-config: error: secret/tls/tls.key: does not match secret/tls/tls.crt; put the private "
                "key that belongs to this certificate there (still serving the previous certificate)") in stack.service_log("proxy-config")
        assert served_leaf(stack, str(root)) == lab.leaf
        assert {service: started_at(stack, service) for service in ("proxy", "hub")} == before
    finally:
        kernel.close()
        for name in ("tls.crt", "tls.key"):
            (stack.secret / "tls" / name).unlink(missing_ok=True)
    # Back to a self-made certificate from the stack's own CA (auto mode), again without restart.
    deadline = time.monotonic() + 30
    while True:
        try:
            if served_leaf(stack).issuer.rfc4514_string() == "CN=LabHub local CA":
                break
        except ssl.SSLError:
            pass
        assert time.monotonic() < deadline, stack.service_log("proxy-config")
        time.sleep(0.5)


def with_traefik_setting(stack, old: str, new: str):
    """The stack's Traefik with one line of its static config changed (a site copy), restarted."""
    site = stack.dir / "reverse-proxy/traefik.toml"
    if new == old:
        site.unlink(missing_ok=True)
        stack.wait_until_published("traefik.toml", old)
    else:
        template = (stack.dir / "reverse-proxy/traefik.toml.template").read_text()
        assert old in template
        site.write_text(template.replace(old, new))
        stack.wait_until_published("traefik.toml", new)
    stack.compose("restart", "proxy")
    stack.up()


def slow_upload(admin, seconds: float, chunks=10) -> int:
    """PUTs a file whose body arrives over `seconds`, as a large upload on a slow link does."""
    def body():
        yield b'{"type": "file", "format": "text", "content": "'
        for _ in range(chunks):
            time.sleep(seconds / chunks)
            yield b"x" * 1000
        yield b'"}'
    if not admin._server_xsrf():
        admin.lab().raise_for_status()
    try:
        r = admin.http.put(admin.url(admin.server_path + "api/contents/slow-upload.txt"), data=body(),
                           headers={"X-XSRFToken": admin._server_xsrf(), "Content-Type": "application/json"}, timeout=60)
    except requests.ConnectionError:
        return 0
    return r.status_code


def test_a_slow_upload_outlives_a_read_timeout(stack, admin):
    """Traefik's default read timeout (60 s) would cut any upload that takes longer; LabHub sets
    none. The control shortens it to 2 s, and the upload takes 5 s."""
    admin.start_server()
    shipped = 'readTimeout = "0s"'
    try:
        with_traefik_setting(stack, shipped, 'readTimeout = "2s"')
        assert slow_upload(admin, seconds=5) not in (200, 201)  # the control: such a timeout cuts it
    finally:
        with_traefik_setting(stack, shipped, shipped)
    assert slow_upload(admin, seconds=5) in (200, 201)
    assert admin.read_file("slow-upload.txt") == "x" * 10_000


def test_an_idle_kernel_websocket_answers_after_longer_than_traefiks_default_read_timeout(stack, admin):
    """Idle for longer than Traefik's default read timeout (60 s): neither Traefik (which leaves
    an upgraded connection alone), nor the hub's proxy, nor the server may drop it."""
    admin.start_server()
    kernel = admin.kernel_socket(admin.start_kernel(), timeout=90)
    try:
        assert kernel.run("1+1") == "2"
        time.sleep(65)
        assert kernel.run("2+3") == "5"
    finally:
        kernel.close()
