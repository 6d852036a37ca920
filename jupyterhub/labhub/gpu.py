"""GPUs: requested only where the Docker engine has them, so a spawn never fails for lack of an
NVIDIA runtime. LABHUB_GPUS=auto asks the engine; on insists (and refuses to start without);
off never asks. LABHUB_GPUS_PER_SERVER=all gives every server all GPUs; a number N gives each
server of a GPU flavor N devices of its own from the free ones, released when it stops.

In swarm mode (labhub.swarm) the GPUs are those the nodes advertise as the generic resource
NVIDIA-GPU, and Swarm keeps the books: a GPU flavor's service asks for N of them, and lands on a
node with N free. `all` has no meaning there (a node's GPUs are not shared), so it is refused."""

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import docker
from docker.types import DeviceRequest

from . import hooks, nvidia, swarm
from .settings import Settings, fail
from .spawner import server_name
from .stack import ASSIGNED_LABEL, SERVER_LABEL, Stack

if TYPE_CHECKING:
    from .context import HubContext

log = logging.getLogger("JupyterHub")


@dataclass
class GpuPool:
    """Which server holds which devices. Without sharing, a device is never given twice; with
    sharing, the least-used devices are given when none is free."""

    devices: list[str]
    per_server: int
    sharing: bool = False
    held: dict[str, list[str]] = field(default_factory=dict)

    def assign(self, server: str) -> list[str]:
        if server in self.held:
            return self.held[server]
        use = {d: sum(d in ids for ids in self.held.values()) for d in self.devices}
        free = [d for d in self.devices if use[d] == 0]
        if len(free) < self.per_server and not self.sharing:
            raise RuntimeError(f"all {len(self.devices)} GPUs are in use; try again when a server stops")
        chosen = sorted(self.devices, key=lambda d: (use[d], self.devices.index(d)))[:self.per_server]
        self.held[server] = chosen
        return chosen

    def release(self, server: str) -> None:
        self.held.pop(server, None)


def available(info: dict, engine: docker.DockerClient, stack: Stack, s: Settings,
              nodes: list["swarm.Node"] | None = None) -> list[str]:
    """The GPUs servers may use: none with LABHUB_GPUS=off; with on, some or a refusal. In swarm
    mode, those of the nodes that take servers (nodes: as listed already, else looked up)."""
    if s.gpus == "off":
        devices = []
    elif s.swarm:
        nodes = swarm.server_nodes(engine) if nodes is None else nodes
        devices = [f"{node.hostname}:{gpu}" for node in nodes for gpu in node.gpus]
    else:
        devices = nvidia.detect(info, engine, stack.hub_image)
    if s.gpus == "on" and not devices:
        raise fail("GPUS", "on, but the Docker engine offers no NVIDIA GPU",
                   "install the NVIDIA driver and container toolkit, or set it to auto")
    if devices and s.swarm and s.gpus_per_server == "all":
        raise fail("GPUS_PER_SERVER", "all, but in swarm mode each GPU server gets GPUs of its own on its node",
                   "set a number, e.g. 1 (README, More than one machine)")
    if not devices and s.gpus == "auto":
        log.info("No NVIDIA GPU in this Docker engine: servers get none, GPU flavors are unavailable")
    return devices


def configure(c, ctx: "HubContext") -> None:
    """Adds device requests to the spawner's host config, where there are devices."""
    s, devices, catalog = ctx.settings, ctx.facts.gpus, ctx.catalog
    if not devices:
        return
    if s.swarm:
        count = int(s.gpus_per_server)
        c.SwarmServerSpawner.generic_resources = \
            lambda spawner: {swarm.GPU_KIND: count} if catalog.chosen(spawner).gpu else {}
        return
    if s.gpus_per_server == "all":
        hooks.merge(c, "extra_host_config", {"device_requests": [DeviceRequest(count=-1, capabilities=[["gpu"]])]})
        return

    pool = GpuPool(devices, int(s.gpus_per_server), s.gpu_sharing)
    for container in ctx.engine.containers.list(filters={"label": ASSIGNED_LABEL}):  # after a hub restart
        labels = container.labels
        pool.held[labels[SERVER_LABEL]] = labels[ASSIGNED_LABEL].split(",")

    def create_kwargs(spawner):
        # Evaluated before the host config: the devices are chosen here, and labelled on the
        # container so a restarted hub knows who holds what.
        if not catalog.chosen(spawner).gpu:
            return {}
        ids = pool.assign(server_name(spawner))
        return {"labels": {ASSIGNED_LABEL: ",".join(ids), SERVER_LABEL: server_name(spawner)}}

    def host_config(spawner):
        ids = pool.held.get(server_name(spawner))
        return {"device_requests": [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]} if ids else {}

    hooks.merge(c, "extra_create_kwargs", create_kwargs)
    hooks.merge(c, "extra_host_config", host_config)
    hooks.add_hook(c, "post_stop_hook", lambda spawner: pool.release(server_name(spawner)))
