"""Networks: each user server alone on a bridge network of its own, which only the hub joins.

A server reaches the hub (its API and login pages, as `hub`) and, through Docker's NAT, the
outside world; nothing else of the stack: Docker drops traffic between bridge networks, so other
users' servers, Traefik and anything on the host's other networks are out of reach, on any port.
The hub and its proxy reach each server at the server's address on that network.

Each network gets a small subnet (a /29: gateway, hub and server) from LABHUB_USER_SUBNETS, so a
lab is not limited by Docker's default address pools (about 30 networks per engine).
"""

import asyncio
import ipaddress
import logging
import threading

import docker
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool

from . import hooks
from .settings import Settings
from .stack import USERS_NETWORK_LABEL, Stack

log = logging.getLogger("JupyterHub")
SUBNET_PREFIX = 29
HUB_PORT = 8081
# Where the hub's proxy (configurable-http-proxy) takes orders: loopback only, never a network.
PROXY_API_URL = "http://127.0.0.1:8001"


def server_network(spawner) -> str:
    """The network of one server: named after its container (user name as escaped)."""
    return f"{spawner.container_name}-net"


def used_subnets(engine: docker.DockerClient) -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet some network on this engine has (any project's)."""
    subnets = []
    for network in engine.api.networks():
        for config in (network.get("IPAM") or {}).get("Config") or []:
            subnet = ipaddress.ip_network(config.get("Subnet", "::/128"), strict=False)
            if subnet.version == 4:
                subnets.append(subnet)
    return subnets


def free_subnet(pool: ipaddress.IPv4Network, used) -> ipaddress.IPv4Network | None:
    """The first /29 of the pool that overlaps no used subnet, or None."""
    return next((s for s in pool.subnets(new_prefix=SUBNET_PREFIX) if not any(s.overlaps(u) for u in used)), None)


class ServerNetworks:
    """Makes a server's network (and puts the hub on it) before the server starts, and removes
    it once the server has stopped."""

    def __init__(self, engine: docker.DockerClient, stack: Stack, pool: ipaddress.IPv4Network):
        self.engine, self.stack, self.pool = engine, stack, pool
        self.hub = engine.containers.get(stack.hub_id)
        self.lock = threading.Lock()  # one subnet choice at a time

    def front_ip(self) -> str:
        """The hub's address on its compose network, where Traefik reaches it."""
        return self.hub.attrs["NetworkSettings"]["Networks"][f"{self.stack.project}_default"]["IPAddress"]

    def _labels(self) -> dict:
        return {USERS_NETWORK_LABEL: self.stack.project}

    def _join(self, network) -> None:
        network.reload()
        if self.hub.id not in (network.attrs.get("Containers") or {}):
            network.connect(self.hub, aliases=[self.stack.hub_alias])

    def recover(self) -> None:
        """At hub start: join the networks of servers still running; remove those left empty."""
        for network in self.engine.networks.list(filters={"label": f"{USERS_NETWORK_LABEL}={self.stack.project}"}):
            network.reload()
            others = set(network.attrs.get("Containers") or {}) - {self.hub.id}
            if others:
                self._join(network)
            else:
                self._remove(network)

    def create(self, name: str) -> None:
        with self.lock:
            try:
                network = self.engine.networks.get(name)
            except NotFound:
                network = self._create(name)
            self._join(network)

    def _create(self, name: str):
        # Another engine user (e.g. a second deployment) may take the same subnet between our
        # look and our create: then look again.
        for _ in range(5):
            subnet = free_subnet(self.pool, used_subnets(self.engine))
            if subnet is None:
                raise RuntimeError(f"no free /{SUBNET_PREFIX} subnet left in LABHUB_USER_SUBNETS={self.pool}; "
                                   "give it a larger range")
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(subnet[1]))])
            try:
                return self.engine.networks.create(name, driver="bridge", ipam=ipam, labels=self._labels())
            except APIError as e:
                if "overlap" not in str(e).lower():
                    raise
        raise RuntimeError(f"could not find a free subnet for {name} in LABHUB_USER_SUBNETS={self.pool}")

    def remove(self, name: str) -> None:
        try:
            self._remove(self.engine.networks.get(name))
        except NotFound:
            pass

    def _remove(self, network) -> None:
        try:
            network.reload()
            if self.hub.id in (network.attrs.get("Containers") or {}):
                network.disconnect(self.hub, force=True)
            network.remove()
        except APIError as e:  # e.g. a container that has not gone yet: the next hub start retries
            log.warning("Could not remove network %s: %s", network.name, e)


def configure(c, s: Settings, stack: Stack, engine: docker.DockerClient) -> None:
    """Per-server networks, the hub reachable as `hub` on each, the proxy's API on loopback."""
    networks = ServerNetworks(engine, stack, s.user_subnets)
    networks.recover()

    async def make_network(spawner):
        spawner.network_name = server_network(spawner)
        await asyncio.to_thread(networks.create, spawner.network_name)

    async def remove_network(spawner):
        await asyncio.to_thread(networks.remove, server_network(spawner))

    hooks.add_hook(c, "pre_spawn_hook", make_network)
    hooks.add_hook(c, "post_stop_hook", remove_network)
    # The hub and its proxy reach servers at their address on their own network.
    c.DockerSpawner.use_internal_ip = True
    # The hub API answers on every server's network, where servers know it as `hub`; the proxy
    # and the hub's services, in the hub's container, use loopback: a server's network (and the
    # hub's address on it) goes away while requests may still be on their way.
    c.JupyterHub.hub_ip = "0.0.0.0"
    c.JupyterHub.hub_port = HUB_PORT
    c.JupyterHub.hub_connect_ip = "127.0.0.1"
    c.Spawner.hub_connect_url = f"http://{stack.hub_alias}:{HUB_PORT}"
    # The proxy's public side only where Traefik is, and its API on loopback only.
    c.JupyterHub.bind_url = f"http://{networks.front_ip()}:8000"
    c.ConfigurableHTTPProxy.api_url = PROXY_API_URL
