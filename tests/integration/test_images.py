"""User images: the spawn form offers the built flavors, each flavor spawns and passes its smoke
notebook, nothing else may be spawned; limits, culling and named servers on the real stack."""

import subprocess
import time

import pytest

import harness

LOOK_SECONDS = 5.5  # labhub.images.LOOK_SECONDS, and a little

NOTEBOOKS = harness.REPO / "notebooks"
FLAVORS = {  # title -> smoke notebooks that must pass in it
    "Python (scientific)": ["smoke-python.ipynb", "smoke-data.ipynb"],
    "R and Python (data science)": ["smoke-python.ipynb", "smoke-r.ipynb"],
}


def run_notebook(stack, client, name: str) -> None:
    """Uploads a notebook to the user's home and executes it in their container with nbclient."""
    client.write_file(name, (NOTEBOOKS / name).read_text())
    container = stack.user_container(client.user, client.server)
    result = harness.run("docker", "exec", container, "jupyter", "nbconvert", "--to", "notebook",
                         "--execute", "--stdout", f"/home/jovyan/{name}", check=False)
    assert result.returncode == 0, result.stdout[-3000:]


def spawn_form(client) -> str:
    """The spawn page of a server that is not running (a new named one), as a browser gets it."""
    try:
        return client.http.get(client.url(f"/hub/spawn/{client.user}/form-check")).text
    finally:
        client.named("form-check").forget_server()


def test_spawn_form_lists_the_flavors_with_their_descriptions(admin):
    form = spawn_form(admin)
    for title in FLAVORS:
        assert title in form
    assert "numpy, scipy, pandas and matplotlib" in form
    assert "CPUs" in form


@pytest.mark.parametrize("title", FLAVORS)
def test_each_flavor_spawns_and_passes_its_smoke_notebooks(stack, admin, title):
    admin.start_server(image=title)
    try:
        for notebook in FLAVORS[title]:
            run_notebook(stack, admin, notebook)
        # Real-time collaboration is there to turn on (LABHUB_COLLABORATION): a notebook's room opens.
        r = admin.server_api("PUT", f"/collaboration/session/{FLAVORS[title][0]}", json={"format": "json", "type": "notebook"})
        assert r.status_code in (200, 201) and r.json()["fileId"], r.text
    finally:
        admin.stop_server()


def test_an_image_not_on_the_list_is_refused_and_not_remembered(stack, admin):
    refused = admin.named("elsewhere")  # a server of its own: the hub remembers a server's options
    try:
        r = refused.request_server(image="debian:trixie-slim")
        assert r.status_code == 400 and "'debian:trixie-slim' is not offered here" in r.text
        assert stack.user_container("admin", "elsewhere") is None
        # The admin's plain start (no options: the last ones again) starts the default flavor.
        refused.start_server()
        assert image_of(stack.user_container("admin", "elsewhere")) == "labhub/jupyterlab-base:latest"
    finally:
        refused.forget_server()


def image_of(container: str) -> str:
    return harness.docker("inspect", "-f", "{{.Config.Image}}", container)


def built_flavor(name: str, labels: dict) -> str:
    """A flavor image of the base image with these labels, as a maintainer's Dockerfile would make."""
    tag = f"labhub-test/jupyterlab-{name}:latest"
    dockerfile = "FROM labhub/jupyterlab-base:latest\n" + "".join(f'LABEL "{k}"="{v}"\n' for k, v in
                                                                 {"org.labhub.flavor": name, **labels}.items())
    result = subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=dockerfile, text=True,
                            capture_output=True)
    assert result.returncode == 0, result.stderr
    time.sleep(LOOK_SECONDS)  # the hub looks at the engine's images at most this often
    return tag


def test_a_flavors_own_limit_applies_at_its_first_choice_and_a_removed_flavor_falls_back(stack, admin):
    tag = built_flavor("small", {"org.opencontainers.image.title": "Small", "org.labhub.mem-limit": "300M"})
    small = admin.named("small")
    try:
        small.start_server(image="Small")  # this server's first start, and its first choice
        container = stack.user_container("admin", "small")
        assert image_of(container) == tag
        assert harness.docker("inspect", "-f", "{{.HostConfig.Memory}}", container) == str(300 * 2**20)
        small.stop_server()

        harness.docker("rmi", tag)
        time.sleep(LOOK_SECONDS)
        small.start_server()  # a plain start remembers "Small", which is no longer offered
        assert image_of(stack.user_container("admin", "small")) == "labhub/jupyterlab-base:latest"
        assert "the remembered choice 'Small' is not offered any more; starting the default" in stack.service_log("hub")
    finally:
        small.forget_server()
        harness.docker("rmi", "-f", tag, check=False)


def test_named_servers_run_side_by_side(stack, admin):
    admin.start_server()
    project = admin.named("project")
    project.start_server(image="R and Python (data science)")
    assert stack.user_container("admin") != stack.user_container("admin", "project") != None
    assert project.execute(project.start_kernel(), "1+2") == "3"
    project.stop_server()
    assert stack.user_container("admin", "project") is None and stack.user_container("admin")


def cgroup_limits(container) -> list[str]:
    """CPU quota, period and memory limit as the kernel enforces them (cgroup v2, or v1)."""
    read = ('cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max 2>/dev/null || cat '
            '/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/memory/memory.limit_in_bytes')
    return harness.docker("exec", container, "sh", "-c", read).split()


def test_limits_and_culling(stack):
    with stack.configured(mem_limit="400M", cpu_limit="0.5", idle_timeout="20"):
        admin = harness.HubClient(stack)
        admin.login("admin", stack.admin_password())
        limited = harness.native_user(stack, admin, "limited")  # a server started under these limits
        limited.start_server()
        container = stack.user_container("limited")
        assert cgroup_limits(container) == ["50000", "100000", str(400 * 2**20)]

        # Past the limit, the kernel is killed: not the server, not the hub.
        kernel = limited.start_kernel()
        with pytest.raises(harness.KernelDied):
            limited.execute(kernel, "b = bytearray(800 * 2**20); b[::4096] = b'x' * len(b[::4096])", timeout=60)
        assert limited.server_api("GET", "/status").status_code == 200
        assert stack.user_container("limited") == container

        # Culling: with no activity the server is stopped; one kept busy keeps running.
        busy = harness.native_user(stack, admin, "busy")
        busy.start_server()
        deadline = time.monotonic() + 120
        while stack.user_container("limited") and time.monotonic() < deadline:
            assert busy.server_api("GET", "/contents").status_code == 200
            time.sleep(3)
        assert stack.user_container("limited") is None, "the idle server was not culled"
        assert stack.user_container("busy"), "the busy server was culled"


def test_no_gpu_is_requested_on_a_machine_without_one(stack, admin):
    admin.start_server()
    requests = harness.docker("inspect", "-f", "{{json .HostConfig.DeviceRequests}}", stack.user_container("admin"))
    assert requests in ("null", "[]")
    assert "No NVIDIA GPU in this Docker engine" in stack.service_log("hub")


def test_gpu_flavor_is_marked_unavailable_here(admin):
    if harness.run("docker", "image", "inspect", "labhub/jupyterlab-gpu:latest", check=False).returncode:
        pytest.skip("the gpu flavor is not built (LABHUB_BUILD_GPU=1 tests/run builds it)")
    form = spawn_form(admin)
    assert "Python with PyTorch (GPU)" in form and "unavailable: this machine has no GPU" in form
    assert admin.request_server(image="Python with PyTorch (GPU)").status_code == 400


def test_gpu_flavor_carries_pytorch_and_the_hubs_jupyterhub():
    """The opt-in check of the gpu flavor on a machine without GPUs: what it can check here."""
    if harness.run("docker", "image", "inspect", "labhub/jupyterlab-gpu:latest", check=False).returncode:
        pytest.skip("the gpu flavor is not built (LABHUB_BUILD_GPU=1 tests/run builds it)")
    out = harness.docker("run", "--rm", "--entrypoint", "python", "labhub/jupyterlab-gpu:latest", "-c",
                         "import torch, jupyterhub; print(torch.__version__, torch.version.cuda, jupyterhub.__version__)")
    torch_version, cuda, hub_version = out.split()
    assert cuda != "None", "PyTorch was installed without CUDA"
    pinned = next(line.split("==")[1] for line in (harness.REPO / "jupyterhub/requirements.txt").read_text().splitlines()
                  if line.startswith("jupyterhub=="))
    assert hub_version == pinned
