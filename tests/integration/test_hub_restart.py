"""Open notebooks through a hub restart, on the real stack: the routes to user servers live in the
chp service (labhub.chp), so a restarted, recreated or killed hub cuts nobody off; the hub's own
pages show the restart page meanwhile; and the routes are made true again when the hub or chp
comes back."""

import json
import subprocess
import time

import pytest

import harness

# Asks chp's API (a unix socket in the proxy-api volume) from inside the hub, with the token or without.
ROUTES = """
import http.client, json, socket, sys
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect('/run/labhub-proxy/api.sock')
token = open('/run/labhub-proxy/token').read().strip()
conn = Unix('localhost')
conn.request('GET', '/api/routes', headers={'Authorization': 'token ' + token} if sys.argv[1] == 'token' else {})
r = conn.getresponse()
body = r.read()
print(json.dumps([r.status, json.loads(body) if r.status == 200 else None]))
"""


def chp_routes(stack, token=True) -> tuple[int, dict | None]:
    hub = stack.container("hub")
    status, routes = json.loads(harness.docker("exec", hub, "python3", "-c", ROUTES, "token" if token else "none"))
    return status, routes


def login_page(stack):
    with stack.session() as front:
        return front.get(stack.url + "/hub/login", timeout=10)


def wait_for_login_page(stack, timeout=120) -> None:
    deadline = time.monotonic() + timeout
    while login_page(stack).status_code != 200:
        assert time.monotonic() < deadline, "the hub's login page did not come back"
        time.sleep(0.5)


def status_watch(stack, user: harness.HubClient, token: str) -> harness.Watch:
    return harness.Watch(stack, stack.url + user.server_path + "api/status", {"Authorization": f"token {token}"})


@pytest.fixture(scope="module")
def rosa(stack):
    """A user with a running server, and a token to poll it with."""
    # Converged first: a deployment of another test re-tags the shared image names, which a later
    # `up` would act on in the middle of a test.
    stack.up()
    admin = harness.HubClient(stack)
    admin.login("admin", stack.admin_password())
    user = harness.native_user(stack, admin, "rosa")
    user.start_server()
    token = user.api("POST", "/users/rosa/tokens", json={"note": "poll", "expires_in": 3600}).json()["token"]
    yield user, token
    user.stop_server()


def test_a_kernel_and_its_websocket_keep_working_while_the_hub_restarts(stack, rosa):
    user, token = rosa
    kernel = user.start_kernel()
    socket = user.kernel_socket(kernel)
    results, errors = [], []
    try:
        assert socket.run("n = 0; n") == "0"
        with status_watch(stack, user, token) as watch:
            restart = subprocess.Popen(["docker", "compose", "-p", stack.project, "restart", "hub"], cwd=stack.dir,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            # Code runs over the open websocket all through the restart, until the hub is back.
            while restart.poll() is None or login_page(stack).status_code != 200:
                try:
                    results.append(socket.run("n += 1; n", timeout=10))
                except Exception as e:  # recorded: the assertion below names it
                    errors.append(repr(e))
                    break
                time.sleep(0.3)
            assert restart.wait() == 0, restart.stdout.read()
        assert errors == [], f"the kernel's websocket broke during the restart: {errors}"
        assert results == [str(i) for i in range(1, len(results) + 1)] and len(results) >= 3, results
        assert watch.failures == [], f"requests to the server failed during the restart: {watch.failures[:10]}"
        assert socket.run("n") == str(len(results))  # the same socket, the same kernel, afterwards too
    finally:
        socket.close()


def test_while_the_hub_is_down_its_pages_say_so_and_servers_answer(stack, rosa):
    """`docker kill` of the hub (a crash), then `docker compose up -d`."""
    user, token = rosa
    with status_watch(stack, user, token) as watch:
        harness.docker("kill", stack.container("hub"))
        front = stack.session()
        for path in ("/hub/login", "/", "/hub/api/"):
            page = front.get(stack.url + path, timeout=10, allow_redirects=False)
            assert page.status_code == 503, (path, page.status_code, page.text[:300])
            assert page.headers["Retry-After"].isdigit(), page.headers
            assert "LabHub is restarting" in page.text
            assert page.headers.get("Strict-Transport-Security"), "the restart page goes through the same headers"
        # Down for longer than a server keeps the hub's answers (10 s): it goes on with the last one.
        time.sleep(12)
        assert user.server_api("GET", "/status").status_code == 200  # a browser session too, not only a token
        stack.compose("up", "-d", "--wait")
        wait_for_login_page(stack)
    assert watch.failures == [], f"requests to the server failed through the kill: {watch.failures[:10]}"
    assert len(watch.looks) > 10


def test_a_settings_change_restarts_the_hub_alone_and_cuts_nobody_off(stack, rosa):
    """`docker compose up -d` after a change in .env recreates the hub (and setup, proxy-config),
    never chp or Traefik: compose would, were they to depend on any of those."""
    user, token = rosa
    routing = {service: stack.container(service) for service in ("chp", "proxy")}
    with status_watch(stack, user, token) as watch:
        with stack.configured(idle_timeout=7200):
            wait_for_login_page(stack)
        wait_for_login_page(stack)
    assert watch.failures == [], f"requests to the server failed through the change: {watch.failures[:10]}"
    assert {service: stack.container(service) for service in routing} == routing


def test_routes_are_made_true_again_when_the_hub_comes_back(stack, rosa):
    """While the hub is down: one server starts just before, one stops, and chp restarts (losing
    every route, as a crash of chp would); the hub's start routes the first and not the second."""
    admin = harness.HubClient(stack)
    admin.login("admin", stack.admin_password())
    sam = harness.native_user(stack, admin, "sam")
    sam.start_server()
    rosa_user, _ = rosa
    hub = stack.container("hub")
    harness.docker("kill", hub)
    harness.docker("stop", stack.user_container("rosa"))
    harness.docker("restart", stack.container("chp"))
    stack.compose("up", "-d", "--wait")
    wait_for_login_page(stack)
    status, routes = chp_routes(stack)
    assert status == 200
    assert "/user/sam" in routes and "/user/rosa" not in routes, sorted(routes)
    assert sam.server_api("GET", "/status").status_code == 200
    assert "" not in admin.api("GET", "/users/rosa").json()["servers"]  # the hub saw it stop
    sam.stop_server()
    rosa_user.start_server()  # for the tests after this one


def test_a_chp_made_anew_gets_the_servers_networks_and_routes_from_the_running_hub(stack, rosa):
    """chp removed and made again while the hub runs (an upgrade of configurable-http-proxy): the
    hub joins the new container to every server's network and routes the servers again."""
    user, token = rosa
    hub = stack.container("hub")
    harness.docker("rm", "-f", stack.container("chp"))
    stack.compose("up", "-d", "--wait", "chp")
    deadline = time.monotonic() + 30
    with status_watch(stack, user, token) as watch:
        while not watch.looks or not watch.looks[-1][2]:
            assert time.monotonic() < deadline, f"the server is not routed again: {watch.failures[-3:]}"
            time.sleep(0.5)
    assert chp_routes(stack)[1].keys() >= {"/", "/user/rosa"}
    assert stack.container("hub") == hub  # the hub carried on


def test_the_proxy_api_wants_its_token(stack):
    status, routes = chp_routes(stack, token=False)
    assert status == 403 and routes is None
