"""Swarm mode (labhub.swarm) on a real two-node swarm (tests/swarm.py): node1 the manager, where
the deployment runs, node2 a worker with one (fake) GPU; homes on storage both nodes mount at the
same path. Placement is forced with `./labhub nodes drain` (a node label and a constraint) and the
GPU generic resource. The tests share one swarm and deployment, and run in order: the last one
takes node2 away."""

import ast
import re
import time

import pytest

import harness
import swarm

pytestmark = pytest.mark.swarm

GPU_FLAVOR = "labhub/jupyterlab-gputest:latest"
# A GPU flavor for the test: the base image, labelled as one (no GPU software: nothing uses a GPU here).
GPU_DOCKERFILE = """FROM labhub/jupyterlab-base:latest
LABEL org.labhub.flavor=gputest org.opencontainers.image.title="GPU test" org.labhub.gpu=true
"""


@pytest.fixture(scope="module")
def lab(artifacts):
    ports = harness.free_ports()
    cluster = swarm.Swarm(ports)
    deployment = None
    try:
        cluster.start(["labhub/hub:latest", "labhub/proxy:latest", "traefik:v3.7", "labhub/jupyterlab-base:latest"])
        deployment = harness.Deployment("labhubswarm", ports, docker_host=cluster.manager.docker_host)
        deployment.set_env(swarm="true", home_root=swarm.HOME_ROOT, gpus_per_server="1", user_ids="per-user")
        result = deployment.up(check=False)
        assert result.returncode == 0, result.stdout[-3000:] + deployment.compose("logs", "--tail", "40", check=False).stdout
        deployment.cluster = cluster
        yield deployment
    finally:
        if deployment:
            (artifacts / "swarm.log").write_text(deployment.compose("logs", "--no-color", check=False).stdout)
            deployment.destroy()
        cluster.remove()


@pytest.fixture(scope="module")
def admin(lab) -> harness.HubClient:
    client = harness.HubClient(lab)
    assert "/hub/login" not in client.login("admin", lab.admin_password()).url
    return client


@pytest.fixture(scope="module")
def users(lab, admin) -> dict[str, harness.HubClient]:
    clients = {name: harness.native_user(lab, admin, name) for name in ("alice", "bob", "carol", "dave", "erin")}
    # A login starts the server straight away (one flavor: no form), wherever Swarm puts it: the
    # tests place each server themselves.
    for client in clients.values():
        if "" in client.api("GET", f"/users/{client.user}").json().get("servers", {}):
            client.wait_ready()
            client.stop_server()
    return clients


def labhub(lab, *args) -> str:
    """The admin command (what ./labhub runs), in the deployment on the swarm's manager."""
    result = lab.compose("run", "--rm", "-T", "admin", *args, check=False)
    assert result.returncode == 0, result.stdout
    return result.stdout


def push(lab, target: str) -> str:
    """The host's `./labhub nodes push`, from the swarm's manager to a node's engine."""
    result = harness.run(str(lab.dir / "labhub"), "nodes", "push", target, check=False, env=lab.env, timeout=900)
    assert result.returncode == 0, result.stdout
    return result.stdout


def only_on(lab, node: swarm.Node) -> None:
    swarm.only_on(lab, lab.cluster, node)


def node_of(lab, user: str) -> str:
    """The node `./labhub status` shows the user's server on."""
    status = labhub(lab, "status")
    for line in status.splitlines():
        if line.split()[:1] == [user]:
            return line.split()[-1]
    raise AssertionError(f"{user} has no server in ./labhub status:\n{status}")


def server_ip(lab, user: str) -> str:
    task = lab.docker("service", "ps", "-q", "--filter", "desired-state=running", f"labhubswarm-user-{user}")
    return lab.docker("inspect", "-f", "{{range .NetworksAttachments}}{{index .Addresses 0}}{{end}}", task).split("/")[0]


def refused_start(client: harness.HubClient, **options) -> str:
    """Why the hub could not start the client's server: a start that fails within the hub's first
    10 s answers the request itself, a later one ends its progress events."""
    r = client.request_server(**options)
    if r.status_code == 500:
        return r.json()["message"]
    assert r.status_code in (201, 202), r.text
    with pytest.raises(AssertionError) as failed:
        client.follow_progress(timeout=60)
    return str(failed.value)


def run_code(client: harness.HubClient, code: str) -> str:
    return client.execute(client.start_kernel(), code)


def test_check_finds_a_node_without_the_images_and_nodes_push_fills_it(lab):
    result = lab.compose("run", "--rm", "-T", "admin", "check", check=False)
    worker = lab.cluster.worker.name
    assert f"node {worker}: has no image labhub/jupyterlab-base:latest" in result.stdout, result.stdout
    assert "copying labhub/jupyterlab-base:latest" in push(lab, lab.cluster.worker.docker_host)
    again = push(lab, lab.cluster.worker.docker_host)  # only what a node lacks
    assert "has labhub/jupyterlab-base:latest" in again and "copying" not in again
    result = lab.compose("run", "--rm", "-T", "admin", "check", check=False)
    assert f"node {worker}" not in result.stdout, result.stdout


def test_servers_land_on_both_nodes_confined_and_kernels_run_through_traefik(lab, users):
    alice, bob = users["alice"], users["bob"]
    only_on(lab, lab.cluster.manager)
    alice.start_server()
    only_on(lab, lab.cluster.worker)  # alice's server stays where it runs
    bob.start_server()
    assert node_of(lab, "alice") == lab.cluster.manager.name and node_of(lab, "bob") == lab.cluster.worker.name
    nodes = labhub(lab, "nodes")
    assert lab.cluster.manager.name in nodes and "no (drained)" in nodes
    for client in (alice, bob):
        assert run_code(client, "6 * 7") == "42"
    # As on one machine, on the worker: first-login content (bootstrap.sh), the user's own host uid
    # (given out by the hub, LABHUB_USER_IDS=per-user) owning the home, no capabilities, no new
    # privileges, a process limit.
    assert bob.read_file("HowTo.md")
    uid, home_owner = ast.literal_eval(run_code(bob, "import os; (os.getuid(), os.stat(os.environ['HOME']).st_uid)"))
    assert uid == home_owner >= 20000 and uid != int(run_code(alice, "__import__('os').getuid()"))
    status = run_code(bob, "open('/proc/self/status').read()")
    assert "CapEff:\\t0000000000000000" in status and "NoNewPrivs:\\t1" in status
    assert run_code(bob, "open('/sys/fs/cgroup/pids.max').read().strip() if __import__('os').path.exists("
                         "'/sys/fs/cgroup/pids.max') else open('/sys/fs/cgroup/pids/pids.max').read().strip()") == "'4096'"


def test_a_server_reaches_the_hub_but_not_another_users_server_on_the_other_node(lab, users):
    alice, bob = users["alice"], users["bob"]
    reach = """
import urllib.request
def reach(url):
    try:
        return urllib.request.urlopen(url, timeout=5).read().decode()[:200]
    except Exception as e:
        return type(e).__name__
"""
    kernel = alice.start_kernel()
    assert '"version"' in alice.execute(kernel, reach + "reach('http://hub:8081/hub/api')")
    # Bob's server answers /user/bob/api with its version to anyone who reaches it: alice must not
    # (checked by content: this machine's network proxy accepts any connection out).
    bob_url = f"http://{server_ip(lab, 'bob')}:8888/user/bob/api"
    assert '"version"' in run_code(bob, reach + f"reach({bob_url!r})")  # it does answer, on its own network
    assert '"version"' not in alice.execute(kernel, reach + f"reach({bob_url!r})")


def test_a_home_moves_with_its_user_to_the_other_node(lab, users):
    alice = users["alice"]
    alice.write_file("moved.txt", "written on node1")
    alice.stop_server()
    only_on(lab, lab.cluster.worker)
    alice.start_server()
    assert node_of(lab, "alice") == lab.cluster.worker.name
    assert alice.read_file("moved.txt") == "written on node1"
    alice.stop_server()


def test_a_gpu_flavor_lands_where_a_gpu_is_free(lab, users):
    carol, dave = users["carol"], users["dave"]
    for node in (lab.cluster.manager, lab.cluster.worker):  # the same flavor built on each node
        node.docker("build", "-q", "-t", GPU_FLAVOR, "-", input=GPU_DOCKERFILE)
        labhub(lab, "nodes", "undrain", node.name)
    time.sleep(6)  # the hub's catalog looks at the images every 5 s
    carol.start_server(image="GPU test")
    assert node_of(lab, "carol") == lab.cluster.worker.name  # the only node with a GPU
    # Swarm hands the node's GPU to the task in its environment, where NVIDIA's runtime (swarm-resource)
    # reads it; the container's first process has it (the shell starting the server drops such names).
    assert "DOCKER_RESOURCE_NVIDIA-GPU=GPU-fake-0" in run_code(carol, "open('/proc/1/environ', 'rb').read()")
    assert "GPU-fake-0" in labhub(lab, "status")
    # Its one GPU is taken: a second GPU server has no node to go to, and is refused within seconds.
    began = time.monotonic()
    assert "no node has room for this server now" in refused_start(dave, image="GPU test")
    assert time.monotonic() - began < 30
    carol.stop_server()


def test_a_node_without_the_home_root_is_reported_and_refused(lab, users):
    worker = lab.cluster.worker
    worker.exec("mv", swarm.HOME_ROOT, swarm.HOME_ROOT + ".away")
    try:
        result = lab.compose("run", "--rm", "-T", "admin", "check", check=False)
        assert (f"LABHUB_HOME_ROOT: host folder {swarm.HOME_ROOT} is missing on node {worker.name}; "
                "mount the shared storage there") in result.stdout, result.stdout
        only_on(lab, worker)
        erin = users["erin"]
        why = refused_start(erin)
        assert re.search(f"bind source path does not exist: {swarm.HOME_ROOT}/erin.*every node needs the host folders",
                         why), why
    finally:
        worker.exec("mv", swarm.HOME_ROOT + ".away", swarm.HOME_ROOT)


def test_swarm_mode_refuses_homes_in_docker_volumes(lab):
    result = lab.compose("run", "--rm", "-T", "-e", "LABHUB_HOME_ROOT=", "-e", "LABHUB_USER_IDS=shared",
                         "admin", "check", check=False)
    assert result.returncode == 1
    assert ("LABHUB_SWARM: swarm mode needs homes that every node reaches, but homes are Docker volumes, which "
            "stay on one node; set LABHUB_HOME_ROOT to a folder shared") in result.stdout, result.stdout


def test_servers_on_both_nodes_carry_on_through_a_hub_restart(lab, users):
    alice, bob = users["alice"], users["bob"]
    only_on(lab, lab.cluster.manager)
    alice.start_server()
    only_on(lab, lab.cluster.worker)
    bob.start_server()
    kernels = {client.user: client.start_kernel() for client in (alice, bob)}
    lab.compose("up", "-d", "--wait", "--no-build", "--force-recreate", "hub")
    for client in (alice, bob):
        assert client.execute(kernels[client.user], "6 * 7") == "42"  # the route lives in chp
        again = harness.HubClient(lab)  # a new login to the server: it asks the new hub (as `hub`)
        again.login(client.user, "Lab-Notebook-2026")
        again.lab().raise_for_status()


def test_a_node_taken_away_its_servers_stop_and_start_again_elsewhere(lab, users):
    alice, bob = users["alice"], users["bob"]
    assert node_of(lab, "alice") == lab.cluster.manager.name and node_of(lab, "bob") == lab.cluster.worker.name
    harness.docker("kill", lab.cluster.worker.name)
    # Swarm marks the node down after about 12 s; the hub's next poll (every 10 s) stops bob's server.
    deadline = time.monotonic() + 120
    while "" in bob.api("GET", "/users/bob").json().get("servers", {}):
        assert time.monotonic() < deadline, "bob's server still shows as running on a node that is gone"
        time.sleep(2)
    assert run_code(alice, "1 + 1") == "2"  # everyone else carries on
    labhub(lab, "nodes", "undrain", lab.cluster.manager.name)
    bob.start_server()
    assert node_of(lab, "bob") == lab.cluster.manager.name
    assert "down" in labhub(lab, "nodes")
