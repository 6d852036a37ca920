"""Networks: each user server alone on a bridge network of its own, which only the hub and the
routing proxy (labhub.chp) join.

A server reaches the hub (its API and login pages, as `hub`) and, through Docker's NAT, the
outside world; nothing else of the stack: Docker drops traffic between bridge networks, so other
users' servers, Traefik and anything on the host's other networks are out of reach, on any port.
The proxy serves nothing there. The hub and the proxy reach each server at the server's address
on that network; a proxy container started anew (restarted, recreated) is joined again at once.

Each network gets a small subnet (a /29: gateway, hub, proxy and server) from LABHUB_USER_SUBNETS, so a
lab is not limited by Docker's default address pools (about 30 networks per engine). In swarm mode
(labhub.swarm) it is an attachable overlay network, which reaches the server on whichever node it
runs, and a /28: each node with a member on it takes an address too. A network
outlives its server for KEEP_SECONDS: the user's next start that day finds it made and the hub on
it, which saves about a tenth of a second. Then it is removed (looked for whenever a server
stops, which is how networks become unused), so that networks, bridges and the hub's interfaces
do not pile up on a hub that runs for months; the hub's next start removes all those left without
a server.

In swarm mode a new network is encrypted (IPsec between the nodes, so that logins' cookies, API
tokens and kernel messages do not cross the lab's network in clear) when every node servers may
land on can encrypt (labhub.swarm.Encryption); otherwise it is not, and the hub's log and `labhub
check` name the nodes that cannot.

What else a server may reach (LABHUB_BLOCK_PRIVATE_NETWORKS) is labhub.guard's.
"""

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

import docker
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool

from . import chp, hooks
from .stack import USERS_NETWORK_LABEL, Stack
from .swarm import Encryption

if TYPE_CHECKING:
    from .context import HubContext

log = logging.getLogger("JupyterHub")
SUBNET_PREFIX = 29
SWARM_SUBNET_PREFIX = 28
KEEP_SECONDS = 24 * 3600  # how long a stopped server's network waits for its next start
HUB_PORT = 8081
# Swarm's allocator gives a new overlay network its subnet moments after it is made (seconds under
# load); until then the engine shows it with none.
ALLOCATION_SECONDS = 30
HUB_DIRECT_PORT = 8000  # hub-direct mode: where the hub's own proxy serves TLS (docker-compose.hub-ssl.yml)


def server_network(stack: Stack, spawner) -> str:
    """The network of one server, e.g. labhub_user-jo-2danne for container labhub-user-jo-2danne.

    Docker gives a container with several networks its default route through the first network
    by name: these names sort after the compose network's ({project}_default), so the hub keeps
    its route there (its published port in hub-direct mode, its own connections out)."""
    return f"{stack.project}_{spawner.container_name.removeprefix(stack.project + '-')}"


def used_subnets(engine: docker.DockerClient) -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet some network on this engine has (any project's)."""
    subnets = []
    for network in engine.api.networks():
        for config in (network.get("IPAM") or {}).get("Config") or []:
            subnet = ipaddress.ip_network(config.get("Subnet", "::/128"), strict=False)
            if subnet.version == 4:
                subnets.append(subnet)
    return subnets


def free_subnet(pool: ipaddress.IPv4Network, used, prefix: int = SUBNET_PREFIX) -> ipaddress.IPv4Network | None:
    """The first subnet of that size in the pool that overlaps no used subnet, or None."""
    return next((s for s in pool.subnets(new_prefix=prefix) if not any(s.overlaps(u) for u in used)), None)


class ServerNetworks:
    """Makes a server's network (and puts the hub and the proxy on it) before the server first
    starts."""

    def __init__(self, engine: docker.DockerClient, stack: Stack, pool: ipaddress.IPv4Network, with_proxy: bool,
                 swarm: bool = False, encryption=None):
        self.engine, self.stack, self.pool, self.swarm = engine, stack, pool, swarm
        self.encryption = encryption  # swarm mode: a labhub.swarm.Encryption
        self.hub = engine.containers.get(socket.gethostname())  # the hub's own container
        self.with_proxy = with_proxy  # whether a chp service routes to the servers (not hub-direct)
        self.proxy = self._running_proxy()
        self.lock = threading.Lock()  # one subnet choice, or one removal, at a time
        self.unused_since: dict[str, float] = {}  # kept network -> when its server stopped (monotonic)

    def front_ip(self) -> str:
        """The hub's address on its compose network (hub-direct mode serves there)."""
        return self.hub.attrs["NetworkSettings"]["Networks"][f"{self.stack.project}_default"]["IPAddress"]

    def _running_proxy(self):
        if not self.with_proxy:
            return None
        running = self.stack.service_containers(self.engine, chp.SERVICE)
        if not running:
            log.warning("The %s service is not running: user servers are not reachable until it is", chp.SERVICE)
        return running[0] if running else None

    def _labels(self) -> dict:
        return {USERS_NETWORK_LABEL: self.stack.project}

    def _members(self) -> list:
        """(container, aliases) of what joins every server's network: the hub, as `hub`, and the proxy."""
        return [(self.hub, [self.stack.hub_alias])] + ([(self.proxy, [])] if self.proxy else [])

    def _service_networks(self) -> set[str]:
        """In swarm mode, the networks some service's tasks are on, on any node (a network lists
        this node's containers only); looked up once for all the networks being looked at."""
        if not self.swarm:
            return set()
        return {attached.get("Target") for service in self.engine.api.services()
                for attached in service["Spec"]["TaskTemplate"].get("Networks") or []}

    def _serves(self, network, service_networks: set[str] | None = None) -> bool:
        """Whether a container besides the hub and the proxy is on the network (whose attrs are
        fresh), or a service's task (service_networks, looked up when not given)."""
        members = {member.id for member, _ in self._members()}
        if set(network.attrs.get("Containers") or {}) - members:
            return True
        service_networks = self._service_networks() if service_networks is None else service_networks
        return bool(service_networks) and network.id in service_networks

    def _join(self, network) -> None:
        """Puts the hub and the proxy on the network (whose attrs are fresh) unless there."""
        joined = False
        for member, aliases in self._members():
            if member.id not in (network.attrs.get("Containers") or {}):
                try:
                    if member is self.hub:
                        self._join_hub(network, aliases)
                    else:
                        network.connect(member, aliases=aliases)
                except APIError as e:  # e.g. the proxy recreated just now: its start joins it
                    if member is self.hub:
                        raise
                    log.warning("Could not put %s on network %s: %s", member.name, network.name, e)
                joined = True
        if joined:
            network.reload()

    def _join_hub(self, network, aliases) -> None:
        """The hub takes the first address after the gateway, which the engine never hands out
        (networks are made with only their upper half for the engine to give): a restarted or
        recreated hub (an upgrade, a settings change) has the address the old one had, so what a
        running server holds of `hub` (its HTTP client caches name lookups) stays true. Networks
        made before LabHub did this get the hub wherever the engine puts it."""
        config = network.attrs["IPAM"]["Config"][0]
        if config.get("IPRange"):
            network.connect(self.hub, aliases=aliases, ipv4_address=str(ipaddress.ip_network(config["Subnet"])[2]))
        else:
            network.connect(self.hub, aliases=aliases)

    def _server_networks(self) -> list:
        return self.engine.networks.list(filters={"label": f"{USERS_NETWORK_LABEL}={self.stack.project}"})

    def recover(self) -> None:
        """At hub start: join the networks of servers still running; remove those left empty."""
        service_networks = self._service_networks()
        for network in self._server_networks():
            network.reload()
            if self._serves(network, service_networks):
                self._join(network)
            else:
                self._remove(network)

    def proxy_started(self, container_id: str) -> None:
        """A chp container started (anew, or the same one restarted): put it on every server's network."""
        with self.lock:
            self.proxy = self.engine.containers.get(container_id)
            for network in self._server_networks():
                network.reload()
                self._join(network)

    def watch_proxy(self, started) -> None:
        """Forever (a daemon thread): on each start of a chp container, proxy_started, then
        started() (the hub re-makes the routes a restarted proxy lost)."""
        filters = {"type": "container", "event": "start",
                   "label": [f"com.docker.compose.project={self.stack.project}",
                             f"com.docker.compose.service={chp.SERVICE}"]}
        while True:
            try:
                for event in self.engine.events(decode=True, filters=filters):
                    log.info("The %s service started: joining it to the servers' networks, re-making routes",
                             chp.SERVICE)
                    self.proxy_started(event["id"])
                    started()
            except Exception as e:  # the engine restarted, say: watch again
                log.warning("Watching the %s service: %s", chp.SERVICE, e)
                time.sleep(5)

    def create(self, name: str) -> tuple[str, str]:
        """Makes the network with the hub on it, unless an earlier server left it; returns the
        hub's and the gateway's addresses there."""
        with self.lock:
            self.unused_since.pop(name, None)
            try:
                network = self.engine.networks.get(name)
            except NotFound:
                network = self._create(name)
            self._join(network)
        hub_ip = network.attrs["Containers"][self.hub.id]["IPv4Address"].split("/")[0]
        return hub_ip, network.attrs["IPAM"]["Config"][0]["Gateway"]

    def keep(self, name: str, since: float) -> None:
        """The network's server stopped at `since`: the network waits KEEP_SECONDS for its next start."""
        with self.lock:
            self.unused_since[name] = since

    def remove_unused(self, now: float) -> list[str]:
        """Removes the kept networks whose server stopped KEEP_SECONDS or more before `now`, one at
        a time (a start waits for one removal at most); returns their names."""
        removed = []
        with self.lock:
            due = [(name, since) for name, since in self.unused_since.items() if now - since >= KEEP_SECONDS]
        for name, since in due:
            with self.lock:
                if self.unused_since.get(name) != since:  # started again meanwhile
                    continue
                del self.unused_since[name]
                try:
                    network = self.engine.networks.get(name)
                except NotFound:
                    continue
                if not self._serves(network):
                    self._remove(network)
                    removed.append(name)
        if removed:
            log.info("Removed the networks of servers stopped a day ago or more: %s", ", ".join(removed))
        return removed

    def _create(self, name: str):
        # Another engine user (e.g. a second deployment) may take the same subnet between our
        # look and our create: then look again.
        prefix = SWARM_SUBNET_PREFIX if self.swarm else SUBNET_PREFIX
        options = {"encrypted": ""} if self.encryption and not self.encryption.lacking() else None
        for _ in range(5):
            subnet = free_subnet(self.pool, used_subnets(self.engine), prefix)
            if subnet is None:
                raise RuntimeError(f"no free /{prefix} subnet left in LABHUB_USER_SUBNETS={self.pool}; "
                                   "give it a larger range")
            # The engine gives out the upper half (the proxy, the server, a swarm's nodes); the
            # lower is the gateway's and the hub's (_join_hub).
            upper = list(subnet.subnets(prefixlen_diff=1))[1]
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(subnet[1]), iprange=str(upper))])
            try:
                network = self.engine.networks.create(name, driver="overlay" if self.swarm else "bridge", options=options,
                                                      attachable=self.swarm or None, ipam=ipam, labels=self._labels())
            except APIError as e:
                if "overlap" not in str(e).lower():
                    raise
                continue
            return allocated(network)
        raise RuntimeError(f"could not find a free subnet for {name} in LABHUB_USER_SUBNETS={self.pool}")

    def _remove(self, network) -> None:
        try:
            for member, _ in self._members():
                if member.id in (network.attrs.get("Containers") or {}):
                    network.disconnect(member, force=True)
            network.remove()
        except APIError as e:  # e.g. a container that has not gone yet: the next hub start retries
            log.warning("Could not remove network %s: %s", network.name, e)


def allocated(network):
    """The network once it has its subnet (at once, but for a swarm's overlay network)."""
    deadline = time.monotonic() + ALLOCATION_SECONDS
    while not network.attrs["IPAM"].get("Config"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Swarm gave network {network.name} no subnet within {ALLOCATION_SECONDS} s; "
                               "see the manager's engine log")
        time.sleep(0.2)
        network.reload()
    return network


def configure(c, ctx: "HubContext") -> None:
    """Per-server networks, the hub reachable as `hub` on each, and the proxy on each."""
    s, stack = ctx.settings, ctx.stack
    encryption = None
    if s.swarm:
        encryption = Encryption(ctx.engine, stack.hub_image_name)
        threading.Thread(target=encryption.lacking, name="labhub-ipsec", daemon=True).start()  # looked at once, early
    networks = ServerNetworks(ctx.engine, stack, s.user_subnets, with_proxy=not s.hub_ssl, swarm=s.swarm,
                              encryption=encryption)
    networks.recover()
    try:
        loop = asyncio.get_running_loop()  # JupyterHub's: it loads its config in its loop
    except RuntimeError:  # not in the hub (tests)
        loop = None
    if networks.with_proxy and loop:
        def started():
            asyncio.run_coroutine_threadsafe(chp.recheck_routes(), loop)
        threading.Thread(target=networks.watch_proxy, args=(started,), name="labhub-proxy-watch", daemon=True).start()

    tasks = set()  # running background tasks (the event loop keeps only weak references)

    def in_background(work, *args) -> None:
        task = asyncio.create_task(asyncio.to_thread(work, *args))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def make_network(spawner):
        spawner.network_name = server_network(stack, spawner)
        # The hub's and the gateway's addresses there (labhub.guard's rules let the hub through).
        spawner.network_addresses = await asyncio.to_thread(networks.create, spawner.network_name)

    def keep_network(spawner):
        networks.keep(server_network(stack, spawner), time.monotonic())
        in_background(networks.remove_unused, time.monotonic())

    hooks.add_hook(c, "pre_spawn_hook", make_network)
    hooks.add_hook(c, "post_stop_hook", keep_network)
    # The hub and the proxy reach servers at their address on their own network.
    c.DockerSpawner.use_internal_ip = True
    # The hub API answers on every server's network, where servers know it as `hub`; the proxy
    # and the hub's services reach it on the compose network (labhub.chp): a server's network
    # (and the hub's address on it) goes away while requests may still be on their way.
    c.JupyterHub.hub_ip = "0.0.0.0"
    c.JupyterHub.hub_port = HUB_PORT
    c.Spawner.hub_connect_url = f"http://{stack.hub_alias}:{HUB_PORT}"
    # Hub-direct mode: the hub's own proxy serves where its port is published, not on servers' networks.
    if s.hub_ssl:
        c.JupyterHub.bind_url = f"http://{networks.front_ip()}:{HUB_DIRECT_PORT}"
