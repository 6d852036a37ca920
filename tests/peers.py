"""Test peers the stack talks to, each a container on a Docker network the test made: a mock OpenID
Connect provider (tests/peers/oidc), an OpenLDAP server (tests/peers/ldap), and Pebble, an ACME
server, with the DNS server it resolves through (tests/peers/pebble). Plain functions and
objects: the tests own the fixtures, the network and the cleanup (`remove()`)."""

import functools
import json
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import requests

from harness import REPO, docker, run

OIDC_IMAGE = "labhub-test/oidc:latest"
LDAP_IMAGE = "labhub-test/ldap:latest"
PEBBLE_IMAGE = "labhub-test/pebble:latest"
LDAP_SEED = REPO / "tests/peers/ldap/seed.ldif"


@functools.cache
def build_images() -> None:
    """Builds the images, once per process; Docker's layer cache makes a rebuild take seconds."""
    for image, peer in ((OIDC_IMAGE, "oidc"), (LDAP_IMAGE, "ldap"), (PEBBLE_IMAGE, "pebble")):
        docker("build", "--quiet", "-f", str(REPO / "tests/peers" / peer / "Dockerfile"), "-t", image, str(REPO))


def _direct() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # container IPs, never through a proxy from the environment
    return session


@dataclass
class Peer:
    name: str  # the container's
    ip: str  # on the test's network, reachable from the host and from the hub

    def logs(self) -> str:
        return docker("logs", self.name, check=False)

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


def _start(image: str, network: str, name: str, alias: str, *run_args: str, command: tuple[str, ...] = ()) -> str:
    """Starts a peer detached and returns its IP on `network`."""
    build_images()
    docker("rm", "-f", "-v", name, check=False)  # a leftover of an interrupted run
    docker("run", "-d", "--name", name, "--network", network, "--network-alias", alias, *run_args, image, *command)
    return docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', name)


def _wait(peer: Peer, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        running = docker("inspect", "-f", "{{.State.Running}}", peer.name, check=False) == "true"
        if not running or time.monotonic() > deadline:
            logs = peer.logs()
            peer.remove()
            raise RuntimeError(f"test peer {peer.name} did not come up:\n{logs[-3000:]}")
        time.sleep(0.3)


@dataclass
class OIDCProvider(Peer):
    """oidc-provider-mock: any client_id, client_secret and redirect_uri are accepted, nothing is
    registered. The issuer is taken from each request's Host, so the browser and the hub must both
    use `issuer` (the container's IP) for the tokens to match."""

    issuer: str = ""
    discovery: dict = field(default_factory=dict)  # authorization_endpoint, token_endpoint, userinfo_endpoint, ...

    def set_user(self, sub: str, **claims) -> None:
        """Replaces the claims of user `sub` for the tokens and userinfo issued from now on. Standard
        claims come back only for their scope (preferred_username: `profile`, email: `email`);
        others, like `groups`, always do."""
        _direct().put(f"{self.issuer}/users/{quote(sub, safe='')}", json=claims).raise_for_status()

    def login(self, session: requests.Session, page, sub: str, **claims) -> requests.Response:
        """Does the user's part of the authorization step: `page` is the provider's authorize form
        (the response `session` landed on after following the client's redirect) or its URL. Returns
        the response at the end of the redirects back to the client (its callback, e.g. the hub's)."""
        if isinstance(page, str):
            page = session.get(page)
        if page.status_code != 200 or not page.url.startswith(self.discovery["authorization_endpoint"]):
            raise AssertionError(f"not on the provider's authorize form: {page.status_code} {page.url}\n{page.text[:500]}")
        self.set_user(sub, **claims)
        # The form posts back to its own URL, which carries the client's request (client_id, state...).
        return session.post(page.url, data={"sub": sub})


def start_oidc(network: str, name: str, alias: str = "oidc", timeout: float = 60) -> OIDCProvider:
    provider = OIDCProvider(name, _start(OIDC_IMAGE, network, name, alias))
    provider.issuer = f"http://{provider.ip}:9400"

    def ready() -> bool:
        try:
            provider.discovery = _direct().get(f"{provider.issuer}/.well-known/openid-configuration", timeout=2).json()
            return True
        except (requests.ConnectionError, requests.Timeout, ValueError):
            return False

    _wait(provider, ready, timeout)
    return provider


def _seed() -> tuple[dict[str, str], dict[str, list[str]]]:
    """The users' passwords and the groups' members, read from the LDIF the image is seeded with."""
    passwords, groups = {}, {}
    for entry in LDAP_SEED.read_text().split("\n\n"):
        attrs = [line.split(": ", 1) for line in entry.splitlines() if line and not line.startswith("#")]
        values = {}
        for key, value in attrs:
            values.setdefault(key, []).append(value)
        if "userPassword" in values:
            passwords[values["uid"][0]] = values["userPassword"][0]
        if "groupOfNames" in values.get("objectClass", []):
            groups[values["cn"][0]] = [member.split(",")[0].removeprefix("uid=") for member in values["member"]]
    return passwords, groups


@dataclass
class LDAPServer(Peer):
    """slapd on `port` 389, plain LDAP and StartTLS, whose certificate names `host` (the network
    alias), the container's name and `ip`, signed by `ca_pem` (made when the container started)."""

    ca_pem: str = ""
    host: str = "ldap"
    port: int = 389
    base_dn: str = "dc=lab,dc=example"
    admin_dn: str = "cn=admin,dc=lab,dc=example"
    admin_password: str = "admin-pw"  # preseeded in tests/peers/ldap/Dockerfile
    passwords: dict[str, str] = field(default_factory=dict)  # uid -> password: alice, bob, carol, jo-anne
    groups: dict[str, list[str]] = field(default_factory=dict)  # cn -> member uids

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},ou=people,{self.base_dn}"

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},ou=groups,{self.base_dn}"


def start_ldap(network: str, name: str, alias: str = "ldap", timeout: float = 60) -> LDAPServer:
    server = LDAPServer(name, _start(LDAP_IMAGE, network, name, alias, "-e", f"TLS_NAMES={alias},{name}"), host=alias)
    server.passwords, server.groups = _seed()

    def ready() -> bool:  # StartTLS verified against the CA: the certificate is in place too
        probe = ["docker", "exec", "-e", "LDAPTLS_CACERT=/etc/ldap/tls/ca.crt", name,
                 "ldapwhoami", "-x", "-ZZ", "-o", "nettimeout=2", "-H", "ldap://127.0.0.1"]
        return run(*probe, check=False, timeout=10).returncode == 0

    _wait(server, ready, timeout)
    server.ca_pem = docker("exec", name, "cat", "/etc/ldap/tls/ca.crt") + "\n"
    return server


@dataclass
class DNSServer(Peer):
    """pebble-challtestsrv: a DNS server on `port` 8053 that answers every A question with `address`
    (none for AAAA) and the TXT records set through its HTTP API (`api`)."""

    api: str = ""
    port: int = 8053


def start_challtestsrv(network: str, name: str, address: str, alias: str = "challtestsrv", timeout: float = 60) -> DNSServer:
    # Its own challenge servers off: Traefik answers the challenges.
    command = ("-defaultIPv4", address, "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", "",
               "-doh", "", "-dns01", ":8053", "-management", ":8055")
    server = DNSServer(name, _start(PEBBLE_IMAGE, network, name, alias, "--entrypoint", "pebble-challtestsrv",
                                    command=command))
    server.api = f"http://{server.ip}:8055"

    def ready() -> bool:
        try:
            return _direct().post(f"{server.api}/clear-txt", json={"host": "ready."}, timeout=2).ok
        except requests.RequestException:
            return False

    _wait(server, ready, timeout)
    return server


def start_httpreq_adapter(network: str, name: str, image: str, dns: DNSServer, alias: str = "httpreq",
                          timeout: float = 60) -> Peer:
    """lego's httpreq DNS provider's endpoint, http://<alias>:8080, setting the TXT records in `dns`
    (tests/peers/pebble/httpreq.py, run by `image`, which has Python)."""
    script = REPO / "tests/peers/pebble/httpreq.py"
    adapter = Peer(name, _start(image, network, name, alias, "-v", f"{script}:/httpreq.py:ro", "--entrypoint", "python3",
                                command=("/httpreq.py", dns.api)))

    def ready() -> bool:
        try:
            _direct().get(f"http://{adapter.ip}:8080/", timeout=2)  # any answer will do: it takes POSTs only
            return True
        except requests.RequestException:
            return False

    _wait(adapter, ready, timeout)
    return adapter


@dataclass
class Pebble(Peer):
    """Pebble's ACME directory at `directory` (HTTPS, by a certificate signed by the test's CA). It
    resolves names through `dns`, validates http-01 and tls-alpn-01 on `ports` (http, https) of the
    address it gets, dns-01 by the TXT record, and issues from a root made at its start (`root_pem`)."""

    directory: str = ""
    root_pem: str = ""


def start_pebble(network: str, name: str, config_dir, ca_cert, ca_key, dns: DNSServer, ports: tuple[int, int] = (80, 443),
                 alias: str = "pebble", timeout: float = 60) -> Pebble:
    """config_dir receives Pebble's config and its HTTPS certificate (for `alias`, by the test CA)."""
    import pki  # only this peer needs a certificate made by the test

    cert, key = pki.server_certificate([alias, name], ca_cert, ca_key)
    (config_dir / "cert.pem").write_bytes(cert)
    (config_dir / "key.pem").write_bytes(key)
    (config_dir / "pebble-config.json").write_text(json.dumps({"pebble": {
        "listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
        "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem",
        "httpPort": ports[0], "tlsPort": ports[1], "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}))
    peer = Pebble(name, _start(PEBBLE_IMAGE, network, name, alias, "-v", f"{config_dir}:/etc/pebble:ro",
                               command=("-config", "/etc/pebble/pebble-config.json", "-dnsserver", f"{dns.ip}:{dns.port}")))
    peer.directory = f"https://{alias}:14000/dir"

    def ready() -> bool:
        try:  # by IP, which its certificate does not name: what is fetched is checked by the test's use
            peer.root_pem = _direct().get(f"https://{peer.ip}:15000/roots/0", verify=False, timeout=2).text
            return "BEGIN CERTIFICATE" in peer.root_pem
        except requests.RequestException:
            return False

    _wait(peer, ready, timeout)
    return peer
