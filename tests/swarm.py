"""A two-node Docker Swarm on the test machine, for LabHub's swarm mode: two Docker engines, each
in a container of the outer engine (tests/peers/swarm-node), on a network of their own.

- node1 is the manager: the LabHub deployment runs there (its compose commands reach node1's
  engine through a unix socket in a host folder, DOCKER_HOST), and publishes the deployment's ports
  on the host. The test work folder is mounted at the same path, so compose's bind mounts resolve.
- node2 is a worker advertising one (fake) GPU as the Swarm generic resource NVIDIA-GPU.
- The nodes' addresses are outside every private range (198.18.0.0/15, set aside for tests), as a
  lab's nodes with public addresses have them: what keeps servers off them must know them.
- Shared storage: one host folder mounted at /srv/nfs on both, as NFS would be; the LabHub host
  folders are made there and reached through symlinks in each node (/srv/homes -> /srv/nfs/homes),
  so a test can take one away from one node.
- Images reach node1 by `docker save | docker load`; node2 gets none here (`./labhub nodes push`
  is what a lab uses, and what the tests exercise).

The engines need more than an ordinary container (SYS_ADMIN, NET_ADMIN, SYS_PTRACE for nested
exec, no seccomp/AppArmor profile, the host's cgroups), never --privileged, which this machine refuses.
"""

import ipaddress
import os
import shutil
import subprocess
import time
from pathlib import Path

from harness import NAMESPACE, REPO, WORK, docker

NODE_IMAGE = "labhub-test/swarm-node:latest"
PUBLIC_LOOKING = "198.18.0.0/15"  # benchmarking's (RFC 2544): in no private range, routed nowhere
HOME_ROOT = "/srv/homes"  # LABHUB_HOME_ROOT, the same path on every node
GPU_KIND = "NVIDIA-GPU"
NODE_OPTIONS = ("--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE",
                "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-e", "DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1")


class Node:
    def __init__(self, name: str, network: str, shared: Path):
        self.name = name  # the container's, and the node's host name in the swarm
        self.network, self.shared = network, shared
        self.run_dir = Path(f"/tmp/{name}")  # holds the engine's socket for the host

    @property
    def docker_host(self) -> str:
        return f"unix://{self.run_dir}/docker.sock"

    def start(self, *options: str, engine_args: tuple[str, ...] = ()) -> None:
        docker("rm", "-f", "-v", self.name, check=False)
        docker("volume", "rm", "-f", f"{self.name}-data", check=False)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        docker("run", "-d", "--name", self.name, "--hostname", self.name, "--network", self.network, *NODE_OPTIONS,
               "-v", f"{self.name}-data:/var/lib/docker", "-v", f"{self.run_dir}:/run/outer",
               "-v", f"{self.shared}:/srv/nfs", *options, NODE_IMAGE,
               "dockerd", "--storage-driver=overlay2", "-H", "unix:///var/run/docker.sock",
               "-H", "unix:///run/outer/docker.sock", *engine_args)

    def wait(self, timeout=60) -> None:
        deadline = time.monotonic() + timeout
        while self.docker("info", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the engine in {self.name} did not come up:\n" + docker("logs", self.name, check=False)[-3000:])
            time.sleep(0.3)

    def ip(self) -> str:
        return docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}', self.name)

    def docker(self, *args, check=True, input=None) -> subprocess.CompletedProcess:
        """The docker command against this node's engine."""
        return subprocess.run(["docker", *args], env={**os.environ, "DOCKER_HOST": self.docker_host}, check=check,
                              input=input, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)

    def exec(self, *command: str, check=True) -> str:
        """A command in the node's own container (its file system, its mounts)."""
        return docker("exec", self.name, *command, check=check)

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)
        docker("volume", "rm", "-f", f"{self.name}-data", check=False)
        shutil.rmtree(self.run_dir, ignore_errors=True)


class Swarm:
    def __init__(self, ports: tuple[int, int], name: str = NAMESPACE + "labhubtest"):
        """name: of the swarm's network, and the prefix of its nodes' names (<name>-node1, -node2)."""
        self.network, self.shared = f"{name}-swarm", Path(f"/tmp/{name}-swarm-nfs")  # shared: the "NFS server"
        self.manager, self.worker = (Node(f"{name}-node{i}", self.network, self.shared) for i in (1, 2))
        self.ports = ports

    def start(self, images: list[str]) -> None:
        """Both engines up, the swarm formed, the images loaded into the manager."""
        docker("build", "--quiet", "-f", str(REPO / "tests/peers/swarm-node/Dockerfile"), "-t", NODE_IMAGE, str(REPO))
        self.remove()
        self.create_network()
        (self.shared / "homes").mkdir(parents=True, exist_ok=True)
        http, https = self.ports
        WORK.mkdir(parents=True, exist_ok=True)
        self.manager.start("-p", f"{http}:{http}", "-p", f"{https}:{https}", "-v", f"{WORK}:{WORK}")
        self.worker.start(engine_args=("--node-generic-resource", f"{GPU_KIND}=GPU-fake-0"))
        for node in (self.manager, self.worker):
            node.wait()
            node.exec("ln", "-sfn", "/srv/nfs/homes", HOME_ROOT)
        self.manager.docker("swarm", "init", "--advertise-addr", self.manager.ip())
        token = self.manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        self.worker.docker("swarm", "join", "--token", token, f"{self.manager.ip()}:2377")
        self.load(self.manager, images)

    def create_network(self) -> None:
        """The nodes' network, on the first /24 of 198.18.0.0/15 no other network of the engine has."""
        for subnet in ipaddress.ip_network(PUBLIC_LOOKING).subnets(new_prefix=24):
            made = subprocess.run(["docker", "network", "create", "--subnet", str(subnet), self.network],
                                  text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if made.returncode == 0:
                return
            assert "overlap" in made.stdout, made.stdout
        raise RuntimeError(f"no free /24 in {PUBLIC_LOOKING} for the swarm's network")

    @staticmethod
    def load(node: Node, images: list[str]) -> None:
        with subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE) as save:
            loaded = subprocess.run(["docker", "exec", "-i", node.name, "docker", "load", "-q"], stdin=save.stdout,
                                    text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert save.returncode == 0 and loaded.returncode == 0, loaded.stdout

    def remove(self) -> None:
        for node in (self.worker, self.manager):
            node.remove()
        docker("network", "rm", self.network, check=False)
        shutil.rmtree(self.shared, ignore_errors=True)


def only_on(deployment, cluster: Swarm, node: Node) -> None:
    """New servers of the deployment go to node only: every other node drained (`labhub nodes drain`)."""
    for other in (cluster.manager, cluster.worker):
        action = "undrain" if other is node else "drain"
        result = deployment.compose("run", "--rm", "-T", "admin", "nodes", action, other.name, check=False)
        assert result.returncode == 0, result.stdout
