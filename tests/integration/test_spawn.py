"""The whole path a user takes: log in through Traefik, get a JupyterLab container, run code over
wss, keep files, and keep the server when the hub restarts."""

import re
from concurrent.futures import ThreadPoolExecutor

import requests

import harness
from labhub import spawner


def test_the_hub_knows_every_option_labhub_sets(stack):
    """JupyterHub ignores a config option it does not know, with only a warning in its log."""
    unknown = [line for line in stack.service_log("hub").splitlines() if "not recognized" in line]
    assert not unknown, unknown


def test_admin_spawns_jupyterlab_and_runs_code_over_wss(admin):
    server = admin.start_server()
    assert server["url"] == "/user/admin/"
    lab = admin.lab()
    assert lab.status_code == 200 and lab.url.endswith("/user/admin/lab")
    assert "JupyterLab" in lab.text
    kernel = admin.start_kernel()
    assert admin.execute(kernel, "5*4") == "20"


def test_spawned_image_carries_the_hubs_jupyterhub_version(admin, stack):
    admin.start_server()
    kernel = admin.start_kernel()
    pinned = next(line.split("==")[1] for line in (harness.REPO / "jupyterhub/requirements.txt").read_text().splitlines()
                  if line.startswith("jupyterhub=="))
    assert admin.execute(kernel, "import jupyterhub; jupyterhub.__version__") == repr(pinned)


def test_a_crowd_beyond_the_spawn_limit_is_told_when_to_try_again_and_then_served(admin, stack):
    """More servers asked for at once than the hub starts at once (10 per CPU): the rest get a clear
    "try again in N seconds" (429 with Retry-After), never a failed spawn, and get their server
    when they ask again."""
    limit = spawner.SPAWNS_PER_CPU * int(harness.docker("info", "-f", "{{.NCPU}}"))
    names = [f"crowd{i:02d}" for i in range(limit + 2)]
    assert admin.api("POST", "/users", json={"usernames": names}).status_code == 201
    token = admin.api("POST", "/users/admin/tokens", json={"expires_in": 600}).json()["token"]

    def ask(name: str) -> requests.Response:  # one session per person, as a class has
        return requests.post(admin.url(f"/hub/api/users/{name}/server"), headers={"Authorization": f"token {token}"},
                             verify=stack.ca_file, timeout=120)

    servers = {name: admin.for_user(name) for name in names}
    try:
        with ThreadPoolExecutor(len(names)) as pool:
            answers = dict(zip(names, pool.map(ask, names)))
        refused = [name for name, answer in answers.items() if answer.status_code == 429]
        assert refused, {name: answer.status_code for name, answer in answers.items()}
        for name in refused:
            message, retry_after = answers[name].json()["message"], int(answers[name].headers["Retry-After"])
            assert re.fullmatch(r"Too many users trying to log in right now\. Try again in \d+ seconds\.", message)
            assert spawner.RETRY_SECONDS[0] <= retry_after <= spawner.RETRY_SECONDS[1]
        assert all(answers[name].status_code in (201, 202) for name in names if name not in refused), \
            {name: (answer.status_code, answer.text[:200]) for name, answer in answers.items()}
        for name in names:
            if name not in refused:
                servers[name].wait_ready()
        for name in refused:  # asking again once the crowd is in
            assert ask(name).status_code in (201, 202)
            servers[name].wait_ready()
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda server: server.stop_server(), servers.values()))
        for name in names:
            admin.api("DELETE", f"/users/{name}")


def test_home_survives_server_restart_and_compose_down_up(admin, stack):
    admin.start_server()
    admin.write_file("persist.txt", "kept")
    admin.stop_server()
    admin.start_server()
    assert admin.read_file("persist.txt") == "kept"
    admin.stop_server()

    stack.compose("down", "--timeout", "10")
    result = stack.up(check=False)
    assert result.returncode == 0, result.stdout

    again = harness.HubClient(stack)
    again.login("admin", stack.admin_password())
    again.start_server()
    assert again.read_file("persist.txt") == "kept"


def test_user_server_survives_hub_restart(admin, stack):
    admin.start_server()
    container = stack.user_container("admin")
    kernel = admin.start_kernel()
    assert admin.execute(kernel, "x = 41; x + 1") == "42"

    stack.compose("restart", "hub")
    stack.up()  # waits until the hub is healthy again

    assert stack.user_container("admin") == container
    again = harness.HubClient(stack)
    again.login("admin", stack.admin_password())
    again.wait_ready()
    assert again.execute(kernel, "x") == "41"
