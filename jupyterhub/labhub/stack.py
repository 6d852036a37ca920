"""Where the hub runs: its compose project, and the network user servers join.

Everything here is derived from the hub container's own compose labels, so the project name (and
with it every container, volume and network name) is written nowhere else.
"""

import socket
from dataclasses import dataclass

import docker
from docker.errors import NotFound

from .settings import CONTEXT_DIR

USERS_NETWORK_LABEL = "org.labhub.users-network"


@dataclass(frozen=True)
class Stack:
    project: str
    hub_alias: str  # the hub's compose service name: how user servers reach the hub API
    hub_image: str  # the hub's own image id, for short-lived helper containers
    context_dir: str  # the host folder mounted at CONTEXT_DIR, to mount into user containers too

    @property
    def users_network(self) -> str:
        return f"{self.project}-users"

    @property
    def container_prefix(self) -> str:
        return f"{self.project}-user"

    @property
    def home_volume(self) -> str:
        """Per-user home volume; DockerSpawner fills in the escaped user name."""
        return f"{self.project}-home-{{username}}"


def own(client: docker.DockerClient) -> Stack:
    """The stack of the compose container this runs in (the hub, or the admin command)."""
    me = client.containers.get(socket.gethostname())
    context = next(m["Source"] for m in me.attrs["Mounts"] if m["Destination"] == str(CONTEXT_DIR))
    return Stack(project=me.labels["com.docker.compose.project"],
                 hub_alias=me.labels["com.docker.compose.service"],
                 hub_image=me.image.id, context_dir=context)


def join_users_network(client: docker.DockerClient) -> Stack:
    """Finds the hub's compose project and attaches the hub to the user servers' network.

    The hub creates that network itself instead of compose: user servers outlive the hub
    (cleanup_servers = False), and a compose-managed network with servers still on it would make
    `docker compose down` fail.
    """
    stack = own(client)
    hub = client.containers.get(socket.gethostname())
    try:
        network = client.networks.get(stack.users_network)
    except NotFound:
        network = client.networks.create(stack.users_network, driver="bridge",
                                         labels={USERS_NETWORK_LABEL: stack.project})
    if stack.users_network not in hub.attrs["NetworkSettings"]["Networks"]:
        network.connect(hub, aliases=[stack.hub_alias])
    return stack
