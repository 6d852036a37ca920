"""The spawner of swarm mode (labhub.swarm): each user server a Swarm service.

DockerSpawner's SwarmSpawner (14.0) does the service's life cycle. This subclass carries what it
lacks for LabHub:
- the spawner's mounts (it turns only `volumes` into bind mounts and ignores `mounts`) and the
  confinement of labhub.containers (it ignores extra_host_config), put in the service's spec;
- DNS round robin instead of a virtual IP (which needs IPVS), and the route to the task's own
  address: the service's name resolves to stale tasks for a while after a restart;
- no restart by Swarm: a server whose node fails shows as stopped, and its user's next start
  places it again, on a node that is up;
- a start that cannot happen (no node with room, a missing image or host folder on the chosen
  node) fails at once with Swarm's reason, instead of at the end of the start timeout.
"""

import asyncio
import time

import docker
from docker.errors import NotFound
from docker.types import ContainerSpec, EndpointSpec, Placement, Resources, RestartPolicy, TaskTemplate
from dockerspawner import SwarmSpawner
from tornado import web
from traitlets import Callable, Dict, List, Union

from .settings import SettingError
from .spawner import PromptDockerSpawner, server_name
from .stack import SERVER_LABEL
from .swarm import ENDED, POLL_SECONDS, PUSH_HINT, container_options, placement_constraints

# Each server reserves this share of its memory limit on its node, and Swarm places it where that
# much is not reserved yet: most servers sit idle most of the time, so a node takes limits worth
# four times its memory, as servers on one machine share it.
MEMORY_RESERVED = 0.25
PENDING_SECONDS = 10  # a server no node has room for is refused after this long
# What the admin can do about a task Swarm refused, by what Swarm said.
HINTS = {"No such image": PUSH_HINT,
         "bind source path does not exist": "every node needs the host folders at the same path (NFS)"}
NODE_GONE = {"down", "unknown", "disconnected"}


class SwarmServerSpawner(PromptDockerSpawner, SwarmSpawner):
    # SwarmSpawner shadows DockerSpawner's `mounts` setting with a property: it is a setting again here.
    mounts = List(config=True, help="As DockerSpawner.mounts: docker.types.Mount arguments, with {username}.")
    generic_resources = Union([Callable(), Dict()], default_value={}, config=True,
                              help="Swarm generic resources per server, e.g. {'NVIDIA-GPU': 1}, or a function of the spawner.")

    async def _evaluated(self, value):
        value = self._eval_if_callable(value)
        if asyncio.iscoroutine(value):
            value = await value
        return self._render_templates(value)

    async def create_object(self):
        host = await self._evaluated(self.extra_host_config)
        create = await self._evaluated(self.extra_create_kwargs)
        container = ContainerSpec(
            image=self.image, args=await self.get_command(), env=self.get_env(), user=create.pop("user", None),
            labels=create.pop("labels", None), mounts=self.mount_binds + SwarmSpawner.mounts.fget(self),
            **container_options(host))
        if create:
            raise SettingError(f"extra_create_kwargs {', '.join(sorted(create))}: not supported in swarm mode")
        resources = Resources(mem_limit=self.mem_limit, mem_reservation=int(self.mem_limit * MEMORY_RESERVED) if self.mem_limit else None,
                              cpu_limit=int(self.cpu_limit * 1e9) if self.cpu_limit else None,
                              generic_resources=await self._evaluated(self.generic_resources) or None)
        if host.get("pids_limit"):
            resources.setdefault("Limits", {})["Pids"] = host["pids_limit"]
        task = TaskTemplate(container_spec=container, resources=resources, networks=[self.network_name],
                            placement=Placement(constraints=placement_constraints(await self.docker("nodes"))),
                            restart_policy=RestartPolicy(condition="none"))
        service = await self.docker("create_service", task_template=task, name=self.service_name,
                                    endpoint_spec=EndpointSpec(mode="dnsrr"),
                                    labels={SERVER_LABEL: server_name(self)})
        while not await self.docker("tasks", filters={"service": self.service_name}):
            await asyncio.sleep(POLL_SECONDS)
        return service

    async def _task(self) -> dict | None:
        """The service's newest task (one per service: Swarm never restarts it); None without the service."""
        try:
            tasks = await self.docker("tasks", filters={"service": self.service_name})
        except NotFound:
            return None
        return max(tasks, key=lambda t: t["CreatedAt"]) if tasks else None

    async def _node_name(self, task: dict) -> str:
        try:
            node = await self.docker("inspect_node", task.get("NodeID") or "")
            return node["Description"]["Hostname"]
        except docker.errors.APIError:  # NotFound too
            return "no node"

    async def start_object(self):
        """Waits until the task runs; fails at once on a task Swarm refused or ended, and after
        PENDING_SECONDS on one no node has room for."""
        since = time.monotonic()
        while True:
            task = await self._task()
            status = task["Status"] if task else {"State": "remove", "Err": "the service is gone"}
            state = status["State"]
            if state == "running":
                return
            if state in ENDED:
                raise refusal(500, f"the server could not start on {await self._node_name(task)}: "
                                   f"{explained(status.get('Err') or status.get('Message') or state)}")
            if state == "pending" and time.monotonic() - since > PENDING_SECONDS:
                raise refusal(503, f"no node has room for this server now ({status.get('Err', 'pending')}); "
                                   "try again when servers have stopped")
            await asyncio.sleep(POLL_SECONDS)

    async def get_ip_and_port(self):
        """The task's own address on the server's network (the service name may resolve to a task
        that is gone)."""
        task = await self._task()
        for attachment in (task or {}).get("NetworksAttachments") or []:
            if attachment["Network"]["Spec"]["Name"] == self.network_name:
                return attachment["Addresses"][0].split("/")[0], self.port
        raise RuntimeError(f"service {self.service_name} has no address on {self.network_name}")

    async def poll(self):
        """None while the task runs on a node that is up. A task on a node that is down (the node
        failed, or left) counts as stopped: its service is removed, so the next start is placed
        afresh."""
        task = await self._task()  # None once the service is gone
        if task is None or task["Status"]["State"] in ENDED:
            return task["Status"]["State"] if task else 0
        if not task.get("NodeID"):  # not placed yet
            return None
        try:
            node = await self.docker("inspect_node", task["NodeID"])
        except NotFound:
            node = {"Status": {"State": "down"}, "Description": {"Hostname": task["NodeID"][:12]}}
        if node["Status"]["State"] in NODE_GONE:
            self.log.warning("%s: its node %s is %s; counting the server as stopped", self._log_name,
                             node["Description"]["Hostname"], node["Status"]["State"])
            await self.remove_object()
            return f"node {node['Description']['Hostname']} is {node['Status']['State']}"
        return None

    async def remove_object(self):
        try:
            await super().remove_object()
        except NotFound:
            pass


def refusal(status: int, message: str) -> web.HTTPError:
    """A failed start whose reason JupyterHub shows (on the spawn page, and in the API's answer)."""
    return web.HTTPError(status, message.replace("%", "%%"))


def explained(error: str) -> str:
    """Swarm's reason, with what the admin can do about it."""
    hint = next((hint for cause, hint in HINTS.items() if cause in error), "")
    return f"{error} ({hint}; README, More than one machine)" if hint else error
