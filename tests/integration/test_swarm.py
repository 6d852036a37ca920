"""Swarm mode (labhub.swarm) on a real two-node swarm (tests/swarm.py): node1 the manager, where
the deployment runs, node2 a worker with one (fake) GPU; homes on storage both nodes mount at the
same path. Placement is forced with `./labhub nodes drain` (a node label and a constraint) and the
GPU generic resource. The tests share one swarm and deployment, and run in order: the last one
takes node2 away."""

import ast
import contextlib
import ipaddress
import json
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


SETTINGS = {"swarm": "true", "home_root": swarm.HOME_ROOT, "gpus_per_server": "1", "user_ids": "per-user",
            "COMPOSE_PROFILES": "monitoring"}
# In the site's own hub settings, where the README sends LDAP passwords and service tokens.
SITE_SECRET = "ldap-password-Not-For-Users-4f1c"


@pytest.fixture(scope="module")
def lab(artifacts):
    ports = harness.free_ports()
    cluster = swarm.Swarm(ports)
    deployment = None
    try:
        cluster.start(["labhub/hub:latest", "labhub/proxy:latest", "traefik:v3.7", "labhub/jupyterlab-base:latest",
                       "labhub/monitoring:latest"])
        deployment = harness.Deployment("labhubswarm", ports, docker_host=cluster.manager.docker_host)
        deployment.set_env(**SETTINGS)
        (deployment.dir / "jupyterhub/context/jupyterhub_config.d/site.py").write_text(
            f"# c.LDAPAuthenticator.lookup_dn_search_password = {SITE_SECRET!r}\n")
        result = deployment.up(check=False)
        assert result.returncode == 0, result.stdout[-3000:] + deployment.compose("logs", "--tail", "40", check=False).stdout
        deployment.cluster = cluster
        yield deployment
    finally:
        if deployment:
            (artifacts / "swarm.log").write_text(deployment.compose("logs", "--no-color", check=False).stdout)
            (artifacts / "swarm-guard.log").write_text(deployment.docker(
                "service", "logs", "--timestamps", f"{deployment.project}-guard", check=False))
            deployment.destroy()
        cluster.remove()


@pytest.fixture(scope="module")
def admin(lab) -> harness.HubClient:
    return harness.logged_in_admin(lab)


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
    task = lab.docker("service", "ps", "-q", "--filter", "desired-state=running", f"{lab.project}-user-{user}")
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


def test_nodes_push_says_it_reaches_the_nodes_with_ssh_before_copying_anything(lab):
    # No Docker hosts named: the other nodes as ssh://<node>, which nothing here answers.
    result = harness.run(str(lab.dir / "labhub"), "nodes", "push", check=False, env=lab.env, timeout=300)
    worker = lab.cluster.worker.name
    assert result.returncode == 1 and "copying" not in result.stdout, result.stdout
    said = result.stdout.splitlines()
    assert said[0].startswith(f"labhub nodes push: reaching the other nodes with ssh, as ssh://{worker} "
                              "(your ssh login there must be allowed to run docker"), said
    assert said[1].startswith(f"labhub nodes push: cannot reach ssh://{worker}: "), said


def test_check_finds_a_node_without_the_images_and_nodes_push_fills_it(lab):
    before = lab.compose("run", "--rm", "-T", "admin", "check", check=False).stdout
    pushed = push(lab, lab.cluster.worker.docker_host)
    again = push(lab, lab.cluster.worker.docker_host)  # only what a node lacks
    after = lab.compose("run", "--rm", "-T", "admin", "check", check=False).stdout
    worker = lab.cluster.worker.name
    # The hub's runs the guard there, the monitoring's node-exporter.
    for image in ("labhub/jupyterlab-base:latest", "labhub/hub:latest", "labhub/monitoring:latest"):
        assert f"node {worker}: has no image {image}" in before, before
        assert f"copying {image}" in pushed and f"has {image}" in again, pushed + again
    assert "copying" not in again
    assert f"node {worker}: has no image" not in after, after


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


def test_a_servers_log_is_its_services(lab, users):
    # Its container is <service>.1.<task>, so `docker logs <service>` finds nothing (README, Troubleshooting).
    assert "Jupyter Server" in lab.docker("service", "logs", "--raw", f"{lab.project}-user-bob")


BIND_711 = """
import socket
try:
    socket.socket().bind(("0.0.0.0", 711))
    result = "bound"
except PermissionError:
    result = "refused"
result
"""


def test_a_users_process_cannot_bind_a_port_below_1024(lab, users):
    # Else it could speak to NFS from a "secure" port, as any uid it names, root included.
    assert run_code(users["bob"], BIND_711) == "'refused'"
    assert run_code(users["bob"], BIND_711.replace("711", "1024")) == "'bound'"


def test_a_server_sees_of_the_sites_files_only_bootstrap_and_welcome(lab, users):
    seen = ast.literal_eval(run_code(users["bob"], "import os; sorted(os.listdir('/opt/labhub/context'))"))
    assert seen == ["bootstrap.sh", "welcome"]
    # Nor is the site's hub config in the copy on the shared storage, where any node's root reads it.
    copy = f"{swarm.HOME_ROOT}/.labhub-site"
    assert lab.cluster.worker.exec("ls", "-A", copy).split() == ["bootstrap.sh", "welcome"]
    assert lab.cluster.worker.exec("grep", "-rl", SITE_SECRET, swarm.HOME_ROOT + "/", check=False) == ""


REACH = """
import urllib.request
def reach(url):
    try:
        return urllib.request.urlopen(url, timeout=5).read().decode()[:200]
    except Exception as e:
        return type(e).__name__
"""


def test_a_server_reaches_the_hub_but_not_another_users_server_on_the_other_node(lab, users):
    alice, bob = users["alice"], users["bob"]
    kernel = alice.start_kernel()
    assert '"version"' in alice.execute(kernel, REACH + "reach('http://hub:8081/hub/api')")
    # Bob's server answers /user/bob/api with its version to anyone who reaches it: alice must not
    # (checked by content: this machine's network proxy accepts any connection out).
    bob_url = f"http://{server_ip(lab, 'bob')}:8888/user/bob/api"
    assert '"version"' in run_code(bob, REACH + f"reach({bob_url!r})")  # it does answer, on its own network
    assert '"version"' not in alice.execute(kernel, REACH + f"reach({bob_url!r})")


def test_a_server_on_the_other_node_is_shared_and_a_revoke_cuts_the_guest_off_there_too(lab, users):
    """Sharing (tests/integration/test_sharing.py) with the owner's server on the worker: the guest
    reaches it through the routes to the other node, and its server there ends his way in and his
    open kernel connection when the owner revokes."""
    bob, carol = users["bob"], users["carol"]
    assert node_of(lab, "bob") == lab.cluster.worker.name
    bob.write_file("shared-plan.txt", "bob's plan on the worker")
    assert bob.api("POST", "/shares/bob/", json={"user": "carol"}).status_code == 200
    guest = carol.for_user("bob")
    assert guest.read_file("shared-plan.txt") == "bob's plan on the worker"
    his_kernel = guest.kernel_socket(guest.start_kernel())
    assert his_kernel.run("6 * 7") == "42"
    assert harness.lab_refused(carol.for_user("alice"))  # alice's server, on the manager, shared with nobody
    assert bob.api("DELETE", "/shares/bob/").status_code == 204
    revoked = time.monotonic()
    while guest.server_api("GET", "/contents/shared-plan.txt").status_code == 200:
        assert time.monotonic() - revoked < 30, "carol still reads bob's files 30 s after he revoked the share"
        time.sleep(0.5)
    assert harness.lab_refused(guest)
    assert harness.closed_within(his_kernel.ws, 30 - (time.monotonic() - revoked)), "carol's kernel outlived the share"


def task_ips(lab, service: str) -> list[str]:
    """The addresses of a service's running tasks, on every network they are on."""
    tasks = lab.docker("service", "ps", "-q", "--filter", "desired-state=running", service).split()
    return [address.split("/")[0] for task in tasks for address in
            lab.docker("inspect", "-f", "{{range .NetworksAttachments}}{{index .Addresses 0}} {{end}}", task).split()]


def test_the_other_nodes_host_and_servers_reach_prometheus_and_no_server_reaches_their_parts(lab, users):
    """Monitoring on (COMPOSE_PROFILES=monitoring): the worker's node-exporter and LabHub's exporter
    there run as global services on a network of their own, which Prometheus joins."""
    worker, bob = lab.cluster.worker, users["bob"]  # bob's server runs on the worker
    services = [f"{lab.project}-swarm-node-exporter", f"{lab.project}-swarm-node-sampler"]
    try:
        lab.wait_for_series(f'node_uname_info{{job="swarm-node", nodename="{worker.name}"}}', timeout=180)
        lab.wait_for_series('labhub_server_memory_bytes{job="swarm-labhub", user="bob"} > 10e6', timeout=120)
        lab.wait_for_series('labhub_server_cpu_seconds_total{job="swarm-labhub", user="bob"} > 0')
    except AssertionError as e:  # what Prometheus and Swarm say of them
        raise AssertionError("\n".join([str(e), *lab.prometheus('up{job=~"swarm-.*"} or labhub_server_memory_bytes'),
                                        *(lab.docker("service", "ps", "--no-trunc", name, check=False) for name in services),
                                        *(lab.docker("service", "logs", "--tail", "20", name, check=False) for name in services)]))
    assert lab.wait_for_series(f'labhub_server_info{{user="bob", node="{worker.name}"}}')
    # Alice's on the manager is the manager's exporter's, once.
    assert len(lab.wait_for_series('labhub_server_memory_bytes{user="alice"}')) == 1
    # Nothing of them answers bob's server: by name, at their tasks' addresses, at the node's.
    targets = [f"http://{name}:{port}/metrics" for name, port in (("swarm-node-exporter", 9100), ("swarm-node-sampler", 9101))]
    for service, port in zip(services, (9100, 9101)):
        ips = task_ips(lab, service)
        assert ips, f"{service} has no running task"
        targets += [f"http://{ip}:{port}/metrics" for ip in ips] + [f"http://{worker.ip()}:{port}/metrics"]
    # From bob's server on their node, and across nodes from alice's on the manager; by what they
    # answer (this machine's network proxy accepts any connection out).
    for attacker in (bob, users["alice"]):
        answers = ast.literal_eval(run_code(attacker, REACH + f"[reach(url) for url in {targets!r}]"))
        assert not [url for url, answer in zip(targets, answers) if "# HELP" in answer], \
            (attacker.user, list(zip(targets, answers)))


# A VXLAN frame as another node would send it, made by a user's process with a plain UDP socket:
# Docker's overlay networks are numbered from 4097, and a container's hardware address is 02:42
# and its IPv4 address. It carries a datagram from a forged address to a server on the node.
FORGED_FRAME = """
import socket, struct

def checksum(header):
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total >> 16) + (total & 0xffff)
    return ~(total + (total >> 16)) & 0xffff

def inject(node, vni, forged, target, port):
    payload = b"injected"
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(forged), socket.inet_aton(target))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    mac = lambda address: bytes([2, 0x42]) + socket.inet_aton(address)
    vxlan = struct.pack("!II", 0x08000000, vni << 8)
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
            vxlan + mac(target) + mac(forged) + bytes([8, 0]) + ip + udp, (node, 4789))
        return "sent"
    except OSError as e:
        return e.strerror
"""
# In the target's kernel: what arrives on UDP port 9999, kept in `heard`.
LISTEN = """
import socket, threading
heard = []
listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listener.bind(("0.0.0.0", 9999))
threading.Thread(target=lambda: heard.append(listener.recvfrom(100)), daemon=True).start()
"listening"
"""
CONNECT = """
import socket

def reach(target):
    try:
        socket.create_connection(tuple(target), timeout=5).close()
        return "open"
    except OSError as e:
        return e.strerror or type(e).__name__
"""


def network_of(lab, user: str) -> str:
    return f"{lab.project}_user-{user}"


def attack(lab, attacker: harness.HubClient, target: harness.HubClient):
    """From the attacker's server: a forged frame to the target's node, for the target's server (which
    listens for it), and connections to the swarm's control ports on both nodes. Returns what the
    send said, what the target heard, and what each connection did."""
    network = network_of(lab, target.user)
    vni = int(lab.docker("network", "inspect", "-f", '{{index .Options "com.docker.network.driver.overlay.vxlanid_list"}}', network))
    hub = str(ipaddress.ip_network(lab.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", network))[2])
    listening = target.start_kernel()
    assert target.execute(listening, LISTEN) == "'listening'"
    manager, worker = lab.cluster.manager.ip(), lab.cluster.worker.ip()
    kernel = attacker.start_kernel()
    sent = attacker.execute(kernel, FORGED_FRAME + f"inject({worker!r}, {vni}, {hub!r}, {server_ip(lab, target.user)!r}, 9999)")
    time.sleep(1)
    ports = attacker.execute(kernel, CONNECT + f"[reach(t) for t in {[(manager, 2377), (manager, 7946), (worker, 7946)]!r}]")
    return ast.literal_eval(sent), ast.literal_eval(target.execute(listening, "heard")), ast.literal_eval(ports), hub


@contextlib.contextmanager
def settings_of(lab, **settings):
    """The deployment with these settings besides the module's, as an admin changes .env."""
    lab.set_env(**SETTINGS, **settings)
    lab.up()
    try:
        yield
    finally:
        lab.set_env(**SETTINGS)
        lab.up()


def restart_on(lab, client: harness.HubClient, node: swarm.Node) -> None:
    client.stop_server()
    only_on(lab, node)
    client.start_server()


def test_a_server_can_neither_inject_frames_into_another_node_nor_reach_the_swarms_control_ports(lab, users):
    alice, bob = users["alice"], users["bob"]
    assert node_of(lab, "alice") == lab.cluster.manager.name and node_of(lab, "bob") == lab.cluster.worker.name
    # The guard, on by default in swarm mode: the frame never leaves alice's server, the ports refuse
    # at once (the nodes' addresses are no private ones here: they are shut off by name), and both
    # servers carry on.
    sent, heard, ports, _ = attack(lab, alice, bob)
    assert (sent, heard, ports) == ("Operation not permitted", [], ["Connection refused"] * 3)
    # Its agent on the manager has run since the lab started, never stopped as unhealthy (as one
    # judged by a health check not its own would be, every minute or so); the worker's, since
    # `nodes push` gave it the image.
    tasks = lab.docker("service", "ps", "--format", "{{.Node}} {{.CurrentState}} {{.Error}}",
                       f"{lab.project}-guard").splitlines()
    on_manager = [task for task in tasks if task.startswith(f"{lab.cluster.manager.name} ")]
    assert len(on_manager) == 1 and " Running " in on_manager[0] and "unhealthy" not in "".join(tasks), tasks
    assert run_code(alice, "1 + 1") == run_code(bob, "1 + 1") == "2"
    # The same attack without it: bob's server takes the datagram as the hub's, and the control
    # ports answer (what the guard stops is really there).
    with settings_of(lab, block_private_networks="false"):
        restart_on(lab, alice, lab.cluster.manager)
        restart_on(lab, bob, lab.cluster.worker)
        sent, heard, ports, hub = attack(lab, alice, bob)
        assert (sent, heard, ports) == ("sent", [(b"injected", (hub, 40000))], ["open"] * 3)
    restart_on(lab, alice, lab.cluster.manager)
    restart_on(lab, bob, lab.cluster.worker)
    assert attack(lab, alice, bob)[1] == []


def ipsec_error(node: swarm.Node) -> str:
    """What the node's kernel says to an IPsec state as Docker's encrypted overlay networks make
    them (in a network namespace of its own); "" when it takes it."""
    result = harness.run("docker", "exec", node.name, "unshare", "-n", "ip", "xfrm", "state", "add",
                         "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "spi", "0x100", "reqid", "1",
                         "mode", "transport", "aead", "rfc4106(gcm(aes))", "0x" + "ab" * 20, "64", check=False)
    return "" if result.returncode == 0 else result.stdout.strip()


def encrypted(lab, network: str) -> bool:
    return "encrypted" in json.loads(lab.docker("network", "inspect", "-f", "{{json .Options}}", network))


def test_check_names_each_node_that_cannot_encrypt_whose_servers_networks_are_then_in_clear(lab, users):
    nodes = (lab.cluster.manager, lab.cluster.worker)
    for node in nodes:  # check looks at the nodes that take servers
        labhub(lab, "nodes", "undrain", node.name)
    check = lab.compose("run", "--rm", "-T", "admin", "check", check=False).stdout
    for node in nodes:
        line = f"node {node.name}: cannot encrypt the servers' networks (its kernel has no IPsec ESP with AES-GCM)"
        assert (line in check) == bool(ipsec_error(node)), check
    # Where a node cannot, servers' networks are made in clear, and servers on it still answer.
    assert encrypted(lab, network_of(lab, "bob")) == (not ipsec_error(lab.cluster.worker))


def test_an_encrypted_overlay_network_carries_a_spawn_on_the_other_node(lab, users):
    error = ipsec_error(lab.cluster.worker)
    if error:
        pytest.skip(f"the nodes' kernel (this machine's) has no IPsec ESP with AES-GCM: `ip xfrm state add ... "
                    f"aead rfc4106(gcm(aes))` says {error!r}, and Docker logs `Failed Adding rSA ... function not implemented`")
    bob = users["bob"]
    restart_on(lab, bob, lab.cluster.worker)  # on a network made now
    assert encrypted(lab, network_of(lab, "bob"))
    assert run_code(bob, "6 * 7") == "42"


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
    # Swarm hands the node's GPU to the task in its container's environment, where NVIDIA's runtime
    # (swarm-resource) reads it.
    worker = lab.cluster.worker
    task = worker.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={lab.project}-user-carol").stdout.strip()
    assert "DOCKER_RESOURCE_NVIDIA-GPU=GPU-fake-0" in worker.docker("inspect", "-f", "{{json .Config.Env}}", task).stdout
    assert "GPU-fake-0" in labhub(lab, "status")
    # Its one GPU is taken: a second GPU server has no node to go to, and is refused within seconds.
    began = time.monotonic()
    assert "no node has room for this server now" in refused_start(dave, image="GPU test")
    assert time.monotonic() - began < 30
    carol.stop_server()


MANAGER_ONLY = "labhub/jupyterlab-manageronly:latest"


def test_a_node_without_the_home_root_is_reported_and_refused(lab, users):
    worker, manager = lab.cluster.worker, lab.cluster.manager
    worker.exec("mv", swarm.HOME_ROOT, swarm.HOME_ROOT + ".away")
    manager.docker("build", "-q", "-t", MANAGER_ONLY, "-",
                   input="FROM labhub/jupyterlab-base:latest\nLABEL org.labhub.flavor=manageronly\n")
    try:
        # Every problem of the node at once: the missing folder, and an image only the manager has.
        result = lab.compose("run", "--rm", "-T", "admin", "check", check=False)
        assert (f"LABHUB_HOME_ROOT: host folder {swarm.HOME_ROOT} is missing on node {worker.name}; "
                "mount the shared storage there") in result.stdout, result.stdout
        assert f"node {worker.name}: has no image {MANAGER_ONLY}" in result.stdout, result.stdout
        manager.docker("image", "rm", MANAGER_ONLY)
        only_on(lab, worker)
        erin = users["erin"]
        why = refused_start(erin)
        # (A bare "Internal Server Error" is an exception the spawner did not expect: the hub's log has it.)
        assert re.search(f"bind source path does not exist: {swarm.HOME_ROOT}/erin.*every node needs the host folders",
                         why), why + "\n" + "\n".join(lab.service_log("hub").splitlines()[-40:])
    finally:
        worker.exec("mv", swarm.HOME_ROOT + ".away", swarm.HOME_ROOT)
        manager.docker("image", "rm", "-f", MANAGER_ONLY, check=False)


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
