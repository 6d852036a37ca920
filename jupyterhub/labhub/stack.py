"""Where the hub runs: its compose project and image.

Everything here is derived from the hub container's own compose labels, so the project name (and
with it every container, volume and network name) is written nowhere else.
"""

import socket
from dataclasses import dataclass

import docker

from .settings import CONTEXT_DIR

# On every network LabHub makes for user servers, so a restarted hub finds them (labhub.network).
USERS_NETWORK_LABEL = "org.labhub.users-network"
# Whose server it is (labhub.spawner.server_name): on each server's Swarm service and on a GPU
# server's container, for those who find them again (labhub.gpu after a hub restart, `labhub nodes`).
SERVER_LABEL = "org.labhub.server"
# The GPUs a container was given of its own (labhub.gpu), for the same readers and the exporter.
ASSIGNED_LABEL = "org.labhub.gpus"


@dataclass(frozen=True)
class Stack:
    project: str
    hub_alias: str  # the hub's compose service name: how user servers reach the hub API
    hub_image: str  # the hub's own image id, for short-lived helper containers
    hub_image_name: str  # its name (labhub/hub:latest), as swarm nodes know it (labhub.guard's agent)
    context_dir: str  # the host folder mounted at CONTEXT_DIR, to mount into user containers too

    def run_helper(self, engine: docker.DockerClient, command: list[str], image: str = "", **options):
        """run_helper() with the hub's image, unless given another."""
        return run_helper(engine, image or self.hub_image, command, **options)

    def service_containers(self, engine: docker.DockerClient, service: str) -> list:
        """The running containers of one of this LabHub's compose services."""
        return engine.containers.list(filters={"label": [f"com.docker.compose.project={self.project}",
                                                         f"com.docker.compose.service={service}"]})

    def hub_containers(self, engine: docker.DockerClient) -> list:
        """This LabHub's hub container, if it runs (the admin command's view of it)."""
        return self.service_containers(engine, "hub")

    @property
    def container_prefix(self) -> str:
        return f"{self.project}-user"

    @property
    def home_volume(self) -> str:
        """Per-user home volume; DockerSpawner fills in the escaped user name."""
        return f"{self.project}-home-{{username}}"


def run_helper(engine: docker.DockerClient, image: str, command: list[str], **options):
    """Runs a short-lived helper container of image and returns its output: no network and removed
    when done, unless options say otherwise. (A swarm node's sampler has the image, not a Stack.)"""
    return engine.containers.run(image, command, **{"network_mode": "none", "remove": True, **options})


def own(client: docker.DockerClient) -> Stack:
    """The stack of the compose container this runs in (the hub, or the admin command)."""
    me = client.containers.get(socket.gethostname())
    context = next(m["Source"] for m in me.attrs["Mounts"] if m["Destination"] == str(CONTEXT_DIR))
    return Stack(project=me.labels["com.docker.compose.project"],
                 hub_alias=me.labels["com.docker.compose.service"],
                 hub_image=me.image.id, hub_image_name=me.attrs["Config"]["Image"], context_dir=context)
