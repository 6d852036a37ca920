"""Isolation and hardening on the real stack: what a user's container can reach, what one user's
browser session or token can do to another's server through Traefik, what a user's processes can
become, and where the hub's secrets stay."""

import ast
import ipaddress
import json
import stat
import time

import pytest
import requests

import harness

# Connects to each (host, port) at once from inside a container; prints what happened to each.
PROBE = """
import concurrent.futures, json, socket, sys
def probe(target):
    host, port = target
    try:
        socket.create_connection((host, port), timeout=4).close()
        return "open"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return e.strerror or type(e).__name__
targets = json.loads(sys.argv[1])
with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps(list(pool.map(probe, targets))))
"""


def probe(container: str, targets: list[tuple[str, int]]) -> dict:
    """(host, port) -> "open", or why not, as seen from inside the container."""
    out = harness.docker("exec", container, "python3", "-c", PROBE, json.dumps(targets))
    return dict(zip(targets, json.loads(out), strict=True))


def addresses(container: str) -> dict[str, str]:
    """network name -> the container's address on it."""
    networks = json.loads(harness.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container))
    return {name: n["IPAddress"] for name, n in networks.items()}


def in_container(container: str, code: str):
    """Runs Python in the container as its user; the printed repr comes back as a value."""
    return ast.literal_eval(harness.docker("exec", container, "python3", "-c", code))


@pytest.fixture(scope="module")
def two_users(stack):
    admin = harness.HubClient(stack)
    admin.login("admin", stack.admin_password())
    alba, bruno = (harness.native_user(stack, admin, name) for name in ("alba", "bruno"))
    for user in (alba, bruno):
        user.start_server()
    yield alba, bruno
    for user in (alba, bruno):
        user.stop_server()


def test_a_users_container_reaches_the_hub_api_and_the_outside_only(stack, two_users):
    alba, bruno = two_users
    a, b = stack.user_container("alba"), stack.user_container("bruno")
    hub, proxy, chp = (stack.container(service) for service in ("hub", "proxy", "chp"))
    # Bruno runs something of his own on an extra port, as a dask dashboard would.
    harness.docker("exec", "-d", b, "python3", "-m", "http.server", "9999")
    b_ip = next(iter(addresses(b).values()))
    others = [(b_ip, 8888), (b_ip, 9999)]
    others += [(ip, port) for ip in addresses(proxy).values() for port in (80, 443, 8080, 8082)]
    others += [(ip, port) for ip in addresses(hub).values() for port in (8000, 8001)]
    # The routing proxy is on Alba's network too (it reaches her server there), and serves nothing there.
    assert set(addresses(chp)) > set(addresses(a))
    others += [(ip, port) for ip in addresses(chp).values() for port in (8000, 8001)]

    # Seen from the hub, all of Bruno's ports answer: what Alba is refused below is really there.
    deadline = time.monotonic() + 20
    while probe(hub, [(b_ip, 9999)])[(b_ip, 9999)] != "open":
        assert time.monotonic() < deadline, "bruno's extra port never opened"
        time.sleep(1)
    assert set(probe(hub, [(b_ip, 8888), (b_ip, 9999)]).values()) == {"open"}

    seen = probe(a, [("hub", 8081), ("hub", 8001), ("hub", 8000)] + others)
    assert seen.pop(("hub", 8081)) == "open"
    assert {target: result for target, result in seen.items() if result == "open"} == {}

    # The hub API answers at the address the server was given; the Docker socket is nowhere.
    hub_api = "import json, os, urllib.request; print(repr(json.load(urllib.request.urlopen(os.environ['JUPYTERHUB_API_URL'] + '/'))))"
    assert "version" in in_container(a, hub_api)
    assert in_container(a, "import os; print(os.path.exists('/var/run/docker.sock'))") is False
    # The user's own Jupyter config files are ignored (they could undo the hub's settings).
    assert in_container(a, "import os; print(os.environ.get('JUPYTERHUB_DISABLE_USER_CONFIG'))") == 1
    # The outside world answers (the package index users pip install from). It is outside this
    # machine: a request that fails is asked again, up to three times, before the test says so.
    outside = """
import time, urllib.request
for attempt in range(3):
    try:
        print(urllib.request.urlopen('https://pypi.org/simple/pip/', timeout=30).status)
        break
    except OSError as e:
        error = e
        time.sleep(5)
else:
    print(repr(str(error)))
"""
    assert in_container(a, outside) == 200


def listening(container: str) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket in the container's network namespace, but
    the engine's own name server (127.0.0.11)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in harness.docker("exec", container, "cat", table).splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.split(":")
                raw = bytes.fromhex(address)
                ip = ipaddress.ip_address(raw[::-1] if len(raw) == 4 else b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                found.add((str(ip), int(port, 16)))
    return {(ip, port) for ip, port in found if ip != "127.0.0.11"}


def test_the_routing_proxy_serves_only_where_traefik_reaches_it_and_its_api_is_a_socket(stack, two_users):
    chp = stack.container("chp")
    front = addresses(chp)[f"{stack.project}_default"]
    assert listening(chp) == {(front, 8000)}  # no API port, nothing on the servers' networks
    # The API's socket and token: chp's own (it runs as nobody), in a volume no user server mounts.
    assert harness.docker("exec", chp, "stat", "-c", "%U %a", "/run/labhub-proxy", "/run/labhub-proxy/token").split("\n") \
        == ["nobody 700", "nobody 600"]
    assert harness.docker("exec", chp, "id", "-u") == "65534"
    for user in ("alba", "bruno"):
        mounts = json.loads(harness.docker("inspect", "-f", "{{json .Mounts}}", stack.user_container(user)))
        assert not [m for m in mounts if "proxy-api" in (m.get("Name") or "")], mounts


def test_a_server_sees_of_the_sites_files_only_bootstrap_and_welcome(stack, two_users):
    """jupyterhub_config.d/ is where the README sends LDAP passwords and service tokens."""
    site = stack.dir / "jupyterhub/context/jupyterhub_config.d/site.py"
    site.write_text("# c.LDAPAuthenticator.lookup_dn_search_password = 'Not-For-Users-4f1c'\n")
    try:
        a = stack.user_container("alba")
        assert harness.docker("exec", a, "ls", "-A", "/opt/labhub/context").split() == ["bootstrap.sh", "welcome"]
        assert harness.docker("exec", a, "grep", "-rl", "Not-For-Users-4f1c", "/opt/labhub", check=False) == ""
    finally:
        site.unlink()


def test_another_users_session_and_token_cannot_touch_a_server(stack, two_users):
    alba, bruno = two_users
    # API tokens live 30 days at most.
    assert alba.api("POST", "/users/alba/tokens", json={"expires_in": 31 * 24 * 3600}).status_code == 400
    token = alba.api("POST", "/users/alba/tokens", json={"note": "test", "expires_in": 3600}).json()["token"]
    as_alba = requests.Session()
    as_alba.trust_env, as_alba.verify = False, stack.ca_file
    as_alba.headers["Authorization"] = f"token {token}"

    for session, headers in ((alba.http, alba.xsrf_headers()), (as_alba, {})):
        # Users may look each other up by name, to share with (LABHUB_SHARING): the name, nothing else.
        looked_up = session.get(stack.url + "/hub/api/users/bruno", headers=headers)
        assert looked_up.status_code in (403, 404) or set(looked_up.json()) <= {"kind", "name", "admin", "user_info"}, \
            looked_up.text  # no servers, groups, activity or tokens
        assert session.post(stack.url + "/hub/api/users/bruno/server", headers=headers).status_code in (403, 404)
        assert session.delete(stack.url + "/hub/api/users/bruno/server", headers=headers).status_code in (403, 404)
        assert session.get(stack.url + "/user/bruno/api/contents", headers=headers).status_code == 403
    page = alba.http.get(stack.url + "/user/bruno/lab")
    assert page.status_code == 403 and "JupyterLab" not in page.text
    assert bruno.server_api("GET", "/status").status_code == 200  # still running, still his

    # A token in the URL is not a login, for the hub or for a server.
    bare = requests.Session()
    bare.trust_env, bare.verify = False, stack.ca_file
    assert bare.get(f"{stack.url}/hub/api/user?token={token}").status_code == 403
    assert bare.get(f"{stack.url}/user/alba/api/contents?token={token}", allow_redirects=False).status_code in (302, 403)

    # A cookie-authenticated POST without the XSRF token is refused, by the hub and by a server.
    assert alba.http.post(stack.url + "/hub/api/users/alba/tokens", json={"note": "x"}).status_code == 403
    assert alba.http.post(stack.url + "/user/alba/api/kernels", json={"name": "python3"}).status_code == 403


def test_running_servers_stay_reachable_when_the_hub_container_is_made_anew(stack, two_users):
    """A new hub container (an upgrade, `docker compose down` and up) joins the running servers'
    networks again."""
    container = stack.user_container("alba")
    stack.compose("up", "-d", "--wait", "--force-recreate", "hub")
    again = harness.HubClient(stack)
    again.login("alba", "Lab-Notebook-2026")
    again.wait_ready()
    assert stack.user_container("alba") == container
    assert again.execute(again.start_kernel(), "6*7") == "42"


def test_a_servers_network_outlives_it_until_the_hub_starts_again(stack, admin):
    """The next start finds the network made and the hub and chp on it; a hub start removes the
    networks of servers that are not running."""
    carla = harness.native_user(stack, admin, "carla")
    carla.start_server()
    (name,) = addresses(stack.user_container("carla"))
    made = harness.docker("network", "inspect", "-f", "{{.Id}}", name)
    carla.stop_server()
    members = harness.docker("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", name).split()
    stays = [harness.docker("inspect", "-f", "{{.Name}}", stack.container(service)).lstrip("/")
             for service in ("hub", "chp")]
    assert sorted(members) == sorted(stays), members
    carla.start_server()
    assert harness.docker("network", "inspect", "-f", "{{.Id}}", name) == made
    carla.stop_server()
    stack.compose("up", "-d", "--wait", "--force-recreate", "hub")
    assert harness.docker("network", "ls", "-q", "--filter", f"name=^{name}$") == ""


# The hub's own removal of kept networks, run in its container on the real engine, a day later.
REMOVE_A_DAY_LATER = """
import sys, time, docker
from labhub import network, settings, stack
engine = docker.from_env()
networks = network.ServerNetworks(engine, stack.own(engine), settings.load().user_subnets, with_proxy=True)
networks.keep(sys.argv[1], time.monotonic())
print(repr((networks.remove_unused(time.monotonic()), networks.remove_unused(time.monotonic() + network.KEEP_SECONDS))))
"""


def test_a_kept_network_is_removed_a_day_after_its_server_stopped(stack, admin):
    dora = harness.native_user(stack, admin, "dora")
    dora.start_server()
    (name,) = addresses(stack.user_container("dora"))
    dora.stop_server()
    hub = stack.container("hub")
    now, a_day_later = ast.literal_eval(harness.docker("exec", hub, "python3", "-c", REMOVE_A_DAY_LATER, name))
    assert (now, a_day_later) == ([], [name])
    assert harness.docker("network", "ls", "-q", "--filter", f"name=^{name}$") == ""
    assert name not in addresses(hub)
    dora.start_server()  # the hub makes it anew
    assert list(addresses(stack.user_container("dora"))) == [name]
    dora.stop_server()


def test_metrics_need_a_token_and_login_never_redirects_off_site(stack, admin):
    bare = requests.Session()
    bare.trust_env, bare.verify = False, stack.ca_file
    assert bare.get(stack.url + "/hub/metrics").status_code == 403

    for target in ("https://elsewhere.example", "//elsewhere.example/", "/\\elsewhere.example"):
        visitor = harness.HubClient(stack)
        visitor.http.get(visitor.url("/hub/login"), params={"next": target})
        r = visitor.http.post(visitor.url("/hub/login"), params={"next": target}, allow_redirects=False, data={
            "username": "admin", "password": stack.admin_password(), "_xsrf": visitor.http.cookies.get("_xsrf")})
        assert r.status_code == 302
        location = r.headers["Location"]
        assert location.startswith("/") and not location.startswith(("//", "/\\")), location


def test_the_hubs_login_cookie_never_reaches_a_users_server(admin):
    """A server runs its user's code: the cookies it receives must not log anyone in to the hub."""
    logins = [(c.name, c.path) for c in admin.http.cookies if c.name.endswith("jupyterhub-hub-login")]
    assert logins == [("jupyterhub-hub-login", "/hub/")], logins


def test_secrets_are_private_and_never_logged(stack, admin):
    extra = stack.secret / "smtp-password"  # a secret of the lab's own, written carelessly: 0644
    extra.write_text("an-smtp-secret-of-the-lab\n")
    try:
        stack.up()  # setup runs again
        assert "warning: secret/smtp-password: readable by others" in stack.service_log("setup")
        for rel in ("admin-passwords/admin", "labhub-ca.key", "tls/tls.key"):
            assert stat.S_IMODE((stack.secret / rel).stat().st_mode) == 0o600, rel

        hub = stack.container("hub")
        cookie_secret = "/srv/jupyterhub/data/jupyterhub_cookie_secret"
        assert harness.docker("exec", hub, "stat", "-c", "%a", cookie_secret) == "600"
        # The routing proxy's API token: chp's own (the hub reads it as root), in no environment
        # that `docker inspect` shows.
        chp = stack.container("chp")
        proxy_token = harness.docker("exec", chp, "cat", "/run/labhub-proxy/token")
        assert proxy_token not in harness.docker("inspect", chp, hub)
        secrets = {
            "cookie secret": harness.docker("exec", hub, "cat", cookie_secret),
            "proxy token": proxy_token,
            "admin password": stack.admin_password(),
            "the lab's own secret": "an-smtp-secret-of-the-lab",
            "TLS key": (stack.secret / "tls/tls.key").read_text().splitlines()[1],
        }
        assert all(len(value) >= 14 for value in secrets.values()), secrets.keys()
        logs = stack.compose("logs", "--no-color").stdout
        assert [name for name, value in secrets.items() if value in logs] == []
    finally:
        extra.unlink()


NO_ROOT = """
import os, socket, subprocess
def run(*cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        return 127, cmd[0] + ": not found"
    return r.returncode, (r.stdout + r.stderr).strip()
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    raw = "allowed"
except PermissionError:
    raw = "refused"
try:
    socket.socket().bind(("0.0.0.0", 711))  # NFS takes a request from below 1024 as a machine's root's
    port_711 = "bound"
except PermissionError:
    port_711 = "refused"
os.makedirs('/tmp/m', exist_ok=True)
print(repr({
    "uid": os.getuid(), "caps": status['CapEff'].strip(), "no_new_privs": status['NoNewPrivs'].strip(),
    "sudo": run('sudo', '-n', 'id', '-u'), "mount": run('mount', '-t', 'tmpfs', 'none', '/tmp/m')[0],
    "raw": raw, "port_711": port_711, "devices": sorted(os.listdir('/dev')),
}))
"""


# Every process forks for ever, and keeps trying when the kernel says no.
FORK_BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.05)
"""


def test_processes_cannot_become_root_and_a_fork_bomb_stays_inside(stack):
    with stack.configured(pids_limit="200", sudo_users="maint"):
        admin = harness.HubClient(stack)
        admin.login("admin", stack.admin_password())
        fay, gus, maint = (harness.native_user(stack, admin, name) for name in ("fay", "gus", "maint"))
        for user in (fay, gus, maint):
            user.start_server()
        a = stack.user_container("fay")

        seen = in_container(a, NO_ROOT)
        assert (seen["uid"], seen["caps"], seen["no_new_privs"]) == (1000, "0000000000000000", "1")
        assert seen["sudo"][0] != 0
        has_sudo = seen["sudo"][0] != 127  # a flavor without sudo (not FROM base) refuses it anyway
        assert "no new privileges" in seen["sudo"][1] or not has_sudo
        assert seen["mount"] != 0 and seen["raw"] == "refused" and seen["port_711"] == "refused"
        assert set(seen["devices"]) <= {"console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random",
                                        "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
        config = json.loads(harness.docker("inspect", "-f", "{{json .HostConfig}}", a))
        assert (config["Privileged"], config["Devices"] or [], config["PidsLimit"]) == (False, [], 200)
        # A fork bomb in Fay's container: it hits the limit there, Gus and the hub carry on.
        harness.docker("exec", "-d", a, "python3", "-c", FORK_BOMB)
        try:
            deadline = time.monotonic() + 60
            while int(harness.docker("stats", "--no-stream", "--format", "{{.PIDs}}", a)) < 190:
                assert time.monotonic() < deadline, "the fork bomb never reached the limit"
            for _ in range(3):
                start = time.monotonic()
                assert gus.server_api("GET", "/status", timeout=20).status_code == 200
                assert gus.api("GET", "/user", timeout=20).status_code == 200
                assert time.monotonic() - start < 20
                time.sleep(1)
            assert int(harness.docker("stats", "--no-stream", "--format", "{{.PIDs}}", a)) <= 200
        finally:
            harness.docker("kill", a, check=False)

        # A listed maintainer may use sudo in their own container.
        if not has_sudo:
            pytest.skip("the engine's base flavor image has no sudo (built from another tree)")
        assert harness.docker("exec", stack.user_container("maint"), "sudo", "-n", "id", "-u") == "0"


def test_a_name_that_would_share_anothers_home_is_refused(stack, admin):
    """DockerSpawner's escaping writes bytes below 0x10 with one hex digit: "\x0c3\x0bc" would be
    -c3-bc, as "ü" is: one home for two people. Names with control characters are refused."""
    twin = harness.HubClient(stack)
    twin.http.get(twin.url("/hub/signup")).raise_for_status()
    r = twin.http.post(twin.url("/hub/signup"), data={
        "username": "\x0c3\x0bc", "signup_password": "Lab-Notebook-2026",
        "signup_password_confirmation": "Lab-Notebook-2026", "_xsrf": twin.http.cookies.get("_xsrf")})
    assert "has been sent to the admin" not in r.text
    assert admin.api("GET", "/users/" + requests.utils.quote("\x0c3\x0bc", safe="")).status_code == 404
    harness.native_user(stack, admin, "\u00fc")  # the name it would have shared a home with


def test_locked_account_stays_locked_across_a_hub_restart(stack, admin):
    harness.native_user(stack, admin, "cleo")  # signed up, approved, logged in once
    for _ in range(5):
        assert "/hub/login" in harness.HubClient(stack).login("cleo", "wrong-password").url
    stack.compose("restart", "hub")
    stack.up()
    assert "/hub/login" in harness.HubClient(stack).login("cleo", "Lab-Notebook-2026").url


DATAGRAM = """
import socket, sys
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"", (sys.argv[1], int(sys.argv[2])))
    print(repr("sent"))
except OSError as e:
    print(repr(e.strerror))
"""


def test_private_ranges_can_be_shut_off_for_servers(stack):
    with stack.configured(block_private_networks="true"):
        admin = harness.HubClient(stack)
        admin.login("admin", stack.admin_password())
        hal, ida = (harness.native_user(stack, admin, name) for name in ("hal", "ida"))
        for user in (hal, ida):
            user.start_server()
        h, i = stack.user_container("hal"), stack.user_container("ida")
        (network,) = json.loads(harness.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", h)).values()

        # In force before the server started (its start command waited): a datagram to the host
        # is stopped inside the container; only a local rule answers EPERM.
        assert harness.docker("exec", h, "python3", "-c", DATAGRAM, network["Gateway"], "9") == "'Operation not permitted'"
        assert harness.docker("exec", h, "python3", "-c", DATAGRAM, "169.254.169.254", "80") == "'Operation not permitted'"
        # Private addresses are refused at once; the hub and the outside world still answer.
        proxy_ip = next(iter(addresses(stack.container("proxy")).values()))
        targets = [("hub", 8081), (network["Gateway"], 22), (proxy_ip, 443), (next(iter(addresses(i).values())), 8888)]
        assert list(probe(h, targets).values()) == ["open"] + ["Connection refused"] * 3
        assert in_container(h, "import urllib.request; print(urllib.request.urlopen('https://pypi.org/simple/pip/', timeout=30).status)") == 200
        assert hal.execute(hal.start_kernel(), "1+1") == "2"
