"""Swarm mode (LABHUB_SWARM=true): the hub runs on a Docker Swarm manager, as on one machine, and
starts each user server as a Swarm service, which Swarm places on a node with room: the memory the
server reserves, and a free GPU for a GPU flavor (nodes advertise theirs as the generic resource
NVIDIA-GPU). Everything else is as on one machine: the same images, limits, confinement, homes
(on storage every node mounts at the same path), bootstrap, and a network of its own per server
(an attachable overlay, labhub.network) that only the hub and the routing proxy join.

Servers are started by labhub.swarmspawner; this module is what the hub, `labhub check`,
`status` and the exporter know of the nodes (it loads neither DockerSpawner nor JupyterHub).
"""

import ipaddress
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import docker
from docker.types import ContainerSpec, Placement, RestartPolicy, ServiceMode, TaskTemplate

from .settings import SettingError, Settings, fail
from .storage import host_folders

log = logging.getLogger("JupyterHub")

GPU_KIND = "NVIDIA-GPU"  # the generic resource nodes advertise GPUs as (Docker's and NVIDIA's docs)
# What Swarm tells a task of the GPUs it got (their ids, as the node advertises them), which the
# NVIDIA runtime reads (its swarm-resource setting, README: More than one machine).
GPU_ENV = f"DOCKER_RESOURCE_{GPU_KIND}"
SERVERS_LABEL = "labhub.servers"  # a node labelled labhub.servers=no gets no new servers (`labhub nodes drain`)
POLL_SECONDS = 0.1
ENDED = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
PUSH_HINT = "copy LabHub's images to every node with `./labhub nodes push`"
# Run on a node, of the hub's image, with NET_ADMIN in its own network namespace: what Docker's
# encrypted overlay networks need of the node's kernel (ESP with AES-GCM, iptables' policy match).
IPSEC_PROBE = """ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 reqid 1 mode transport \\
  aead 'rfc4106(gcm(aes))' 0x00112233445566778899aabbccddeeff00112233 64 || exit 3
iptables -w -A INPUT -m policy --dir in --pol none -j ACCEPT || exit 4
"""
IPSEC_LACKS = {"task: non-zero exit (3)": "its kernel has no IPsec ESP with AES-GCM",
               "task: non-zero exit (4)": "its kernel has no iptables policy match"}
RECHECK_SECONDS = 300  # a node the IPsec probe could not run on is looked at again after this long


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    role: str  # manager or worker
    state: str  # ready, down, ...
    availability: str  # Swarm's: active, pause, drain
    takes_servers: bool  # not labelled labhub.servers=no
    cpus: float
    memory: int  # bytes
    gpus: tuple[str, ...]  # the NVIDIA-GPU ids it advertises


def gpu_ids(generic_resources) -> tuple[str, ...]:
    """The GPUs among a node's (or a task's) generic resources: named ones by their id (a GPU's
    UUID, as NVIDIA's docs have nodes advertise them), counted ones as numbers."""
    ids = []
    for resource in generic_resources or []:
        named, counted = resource.get("NamedResourceSpec", {}), resource.get("DiscreteResourceSpec", {})
        if named.get("Kind") == GPU_KIND:
            ids.append(named["Value"])
        elif counted.get("Kind") == GPU_KIND:
            ids += [str(i) for i in range(counted["Value"])]
    return tuple(ids)


def parse_nodes(listed: list[dict]) -> list[Node]:
    """The nodes as the engine's API lists them, manager first."""
    found = []
    for node in listed:
        spec, description = node["Spec"], node["Description"]
        resources = description.get("Resources", {})
        found.append(Node(id=node["ID"], hostname=description["Hostname"], role=spec["Role"],
                          state=node["Status"]["State"], availability=spec["Availability"],
                          takes_servers=spec.get("Labels", {}).get(SERVERS_LABEL) != "no",
                          cpus=resources.get("NanoCPUs", 0) / 1e9, memory=resources.get("MemoryBytes", 0),
                          gpus=gpu_ids(resources.get("GenericResources"))))
    return sorted(found, key=lambda n: (n.role != "manager", n.hostname))


def nodes(engine: docker.DockerClient) -> list[Node]:
    return parse_nodes(engine.api.nodes())


def node_addresses(listed: list[dict]) -> list[str]:
    """Every IPv4 address the nodes (as the engine's API lists them) are reached at: the swarm's,
    and a manager's control plane's."""
    found = set()
    for node in listed:
        for address in (node["Status"].get("Addr", ""), node.get("ManagerStatus", {}).get("Addr", "").rpartition(":")[0]):
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                continue
            if ip.version == 4 and not (ip.is_unspecified or ip.is_loopback):
                found.add(ip)
    return [str(ip) for ip in sorted(found)]


def server_nodes(engine: docker.DockerClient) -> list[Node]:
    """The nodes servers may be placed on now."""
    return [n for n in nodes(engine) if n.takes_servers and n.state == "ready" and n.availability == "active"]


def check_manager(info: dict) -> None:
    """Swarm mode needs the hub's engine to be a swarm manager (services are made there)."""
    if not info.get("Swarm", {}).get("ControlAvailable"):
        raise fail("SWARM", "true, but the hub's Docker engine is not a swarm manager",
                   "run `docker swarm init` on this machine (README, More than one machine), or set it to false")


def placement_constraints(listed: list[dict]) -> list[str]:
    """Keeps a new server off the drained nodes. By their ids, fixed at the start: Swarm would stop a
    running task whose node no longer met a constraint on the label, so draining leaves running
    servers be."""
    return [f"node.id!={node.id}" for node in parse_nodes(listed) if not node.takes_servers]


def _probe(engine: docker.DockerClient, node: Node, image: str, command=("true",), folders=(), cap_add=None) -> str:
    """Runs a one-off task of image on node (the command, with the host folders mounted): "" when
    it ran and exited 0, else Swarm's reason (a missing image or folder is refused at once, an exit
    status N is "task: non-zero exit (N)")."""
    name = f"labhub-probe-{uuid.uuid4().hex[:12]}"
    mounts = [docker.types.Mount(f"/probe/{i}", path, type="bind", read_only=True) for i, path in enumerate(folders)]
    task = TaskTemplate(ContainerSpec(image, command=list(command), mounts=mounts, cap_add=cap_add),
                        restart_policy=RestartPolicy("none"), placement=Placement(constraints=[f"node.id=={node.id}"]))
    engine.api.create_service(task, name=name, mode=ServiceMode("replicated-job"))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for t in engine.api.tasks(filters={"service": name}):
                if t["Status"]["State"] in ENDED:
                    return "" if t["Status"]["State"] == "complete" else t["Status"].get("Err", t["Status"]["State"])
            time.sleep(POLL_SECONDS)
        return "its probe did not finish within a minute"
    finally:
        engine.api.remove_service(name)


def ipsec_problem(engine: docker.DockerClient, node: Node, hub_image: str) -> str:
    """"" when the node's kernel can encrypt overlay networks as Docker does, else why not."""
    error = _probe(engine, node, hub_image, ["sh", "-c", IPSEC_PROBE], cap_add=["NET_ADMIN"])
    return IPSEC_LACKS.get(error, error)


class Encryption:
    """Whether a new server's network is encrypted: when every node servers may land on can
    encrypt it. Each node's kernel is looked at (ipsec_problem) when the hub first finds the node
    there; a node the probe could not run on (no hub image yet) again after RECHECK_SECONDS."""

    def __init__(self, engine: docker.DockerClient, hub_image: str):
        self.engine, self.hub_image = engine, hub_image
        self.problems: dict[str, tuple[str, float]] = {}  # node id -> ("" or why it cannot, when looked at)
        self.lock = threading.Lock()

    def _due(self, node: Node, now: float) -> bool:
        """Not looked at yet, or looked at without a verdict (the probe did not run) long enough ago."""
        if node.id not in self.problems:
            return True
        problem, when = self.problems[node.id]
        verdict = problem == "" or problem in IPSEC_LACKS.values()
        return not verdict and now - when >= RECHECK_SECONDS

    def lacking(self) -> dict[str, str]:
        """Host name -> why not, for each node servers may land on now that cannot encrypt."""
        with self.lock:
            placed, now = server_nodes(self.engine), time.monotonic()
            due = [node for node in placed if self._due(node, now)]
            with ThreadPoolExecutor() as pool:
                for node, problem in zip(due, pool.map(lambda n: ipsec_problem(self.engine, n, self.hub_image), due)):
                    self.problems[node.id] = problem, now
                    if problem:
                        log.warning("Node %s cannot encrypt the servers' networks (%s): new ones are made in clear "
                                    "(README, More than one machine)", node.hostname, problem)
            return {node.hostname: self.problems[node.id][0] for node in placed if self.problems[node.id][0]}


def node_problems(engine: docker.DockerClient, s: Settings, images: list[str], hub_image: str,
                  monitoring_image: str | None = None) -> list[str]:
    """For every node servers may land on, every problem at once: an image it lacks (the user
    images, and the hub's, which runs the private-network guard and the IPsec probe there), a host
    folder it lacks (looked for with an image it has), and a kernel that cannot encrypt."""
    folders = host_folders(s)
    placed = server_nodes(engine)
    jobs = [(node, image) for node in placed for image in (*images, hub_image, *filter(None, [monitoring_image]))]
    with ThreadPoolExecutor() as pool:
        found = dict(zip(jobs, pool.map(lambda job: _probe(engine, *job), jobs)))

        def with_an_image(node: Node) -> tuple[str | None, str | None]:
            """(what probing the host folders there said, why it cannot encrypt); None: not looked at."""
            has = [image for image in (hub_image, *images) if not found[node, image]]
            folders_error = _probe(engine, node, has[0], folders=list(folders)) if folders and has else None
            ipsec = ipsec_problem(engine, node, hub_image) if hub_image in has else None
            return folders_error, ipsec

        second = dict(zip(placed, pool.map(with_an_image, placed)))
    problems = []
    for (node, image), error in found.items():
        if "No such image" in error:
            what = ("the hub's: the private-network guard runs it there, and the IPsec probe" if image == hub_image
                    else "the monitoring's: node-exporter runs it there" if image == monitoring_image
                    else "so servers of it cannot start there")
            problems.append(f"node {node.hostname}: has no image {image} ({what}); {PUSH_HINT} "
                            "(README, More than one machine)")
        elif error:
            problems.append(f"node {node.hostname}: a test task of {image} failed: {error}")
    for node, (folders_error, ipsec) in second.items():
        missing = re.search(r"bind source path does not exist: (\S+)", folders_error or "")
        if folders and folders_error is None:
            problems.append(f"node {node.hostname}: its host folders were not looked for, as it has none of LabHub's "
                            f"images; {PUSH_HINT}")
        elif missing:
            folder = next((f for f in folders if missing.group(1).startswith(f)), missing.group(1))
            problems.append(str(fail(folders.get(folder, "HOME_ROOT"), f"host folder {folder} is missing on node {node.hostname}",
                                     "mount the shared storage there at the same path (README, More than one machine)")))
        elif folders_error:
            problems.append(f"node {node.hostname}: a test task with the host folders failed: {folders_error}")
        if ipsec:
            problems.append(f"node {node.hostname}: cannot encrypt the servers' networks ({ipsec}), so their traffic "
                            "between nodes (logins' cookies, API tokens, kernel messages) crosses the lab's network "
                            "in clear; load its kernel's IPsec modules (modprobe esp4 xt_policy) "
                            "(README, More than one machine)")
    return list(dict.fromkeys(problems))


def join_command(engine: docker.DockerClient) -> str:
    """What to run on a new machine to make it a worker of this swarm."""
    token = engine.swarm.attrs["JoinTokens"]["Worker"]
    return f"docker swarm join --token {token} {engine.info()['Swarm']['NodeAddr']}:2377"


def take_servers(engine: docker.DockerClient, hostname: str, takes: bool) -> None:
    """Lets Swarm place servers on the node, or not (its running servers stay until they stop)."""
    node = next((n for n in engine.nodes.list() if n.attrs["Description"]["Hostname"] == hostname), None)
    if node is None:
        raise SettingError(f"no node {hostname!r} in this swarm; `./labhub nodes` lists them")
    spec = node.attrs["Spec"]
    labels = {k: v for k, v in spec.get("Labels", {}).items() if k != SERVERS_LABEL}
    node.update({**spec, "Labels": labels if takes else {**labels, SERVERS_LABEL: "no"}})


def container_options(host_config: dict) -> dict:
    """labhub.containers' host config (and the shared folder's group) as ContainerSpec arguments;
    anything else a service cannot carry is refused, never dropped."""
    host_config = dict(host_config)
    options = {"cap_drop": host_config.pop("cap_drop", None), "cap_add": host_config.pop("cap_add", None),
               "groups": host_config.pop("group_add", None), "sysctls": host_config.pop("sysctls", None)}
    host_config.pop("pids_limit", None)  # a task resource limit (create_object)
    security = host_config.pop("security_opt", [])
    unknown = [opt for opt in security if opt.split(":")[0].split("=")[0] != "no-new-privileges"] + sorted(host_config)
    if unknown:
        raise SettingError(f"extra_host_config {', '.join(map(str, unknown))}: not supported in swarm mode")
    if security:
        options["privileges"] = {"NoNewPrivileges": True}
    return {key: value for key, value in options.items() if value}

