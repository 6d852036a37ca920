"""The whole path a user takes: log in through Traefik, get a JupyterLab container, run code over
wss, keep files, and keep the server when the hub restarts."""

import harness


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
