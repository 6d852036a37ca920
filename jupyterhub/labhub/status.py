"""`labhub status`: the user servers running now, what each runs and uses; `labhub homes`: how
much disk each user's home takes (their files and what they installed) against its quota, fullest
first; `labhub
nodes` (swarm mode): the nodes, with their resources and servers."""

import datetime
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import docker
from escapism import unescape

from . import quota, storage, swarm
from .settings import DATABASE, Settings
from .stack import ASSIGNED_LABEL, SERVER_LABEL, Stack
from .terminal import columns, printable


@dataclass(frozen=True)
class Server:
    user: str  # as the user logs in (the container name has it escaped: ht-0 -> ht-2d0)
    name: str  # "" for the default server
    image: str
    started: datetime.datetime
    cpu_percent: float | None  # None: not measured (a server on another node of a swarm)
    memory: int | None
    memory_limit: int
    gpus: str
    node: str = ""  # in swarm mode, the node it runs on


def _cpu_percent(stats: dict) -> float | None:
    """The share of a CPU the server used since the engine's previous sample; None for a sample
    without one (one_shot)."""
    cpu, pre = stats["cpu_stats"], stats.get("precpu_stats") or {}
    if "system_cpu_usage" not in pre:
        return None
    used = cpu["cpu_usage"]["total_usage"] - pre.get("cpu_usage", {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or [1])
    return 100.0 * used / system * cpus if system > 0 else 0.0


def held_gpus(container) -> str:
    """The GPUs a server's container holds: given by labhub.gpu (indexes, or all), or by Swarm."""
    if ASSIGNED_LABEL in container.labels:
        return container.labels[ASSIGNED_LABEL]
    requests = container.attrs["HostConfig"].get("DeviceRequests") or []
    if any(r.get("Count") == -1 for r in requests):
        return "all"
    return _environment(container.attrs.get("Config", {}).get("Env")).get(swarm.GPU_ENV, "")


def _environment(variables) -> dict[str, str]:
    """A container's (or a service's) environment, from its list of NAME=value."""
    return dict(v.partition("=")[::2] for v in variables or [])


def server_owner(container, prefix: str) -> tuple[str, str]:
    """The user and server name of a server's container. DockerSpawner (14.0) labels neither; it
    names the container {prefix}-{escaped user}--{escaped, lowercased server name}, and JupyterHub
    gives every server both names in its environment. Without those, the name is unescaped."""
    env = _environment(container.attrs.get("Config", {}).get("Env"))
    if "JUPYTERHUB_USER" in env:
        return env["JUPYTERHUB_USER"], env.get("JUPYTERHUB_SERVER_NAME", "")
    user, _, name = container.name.removeprefix(prefix).partition("--")
    return unescape(user, escape_char="-"), unescape(name, escape_char="-")


def memory_used(stats: dict) -> int:
    """Memory in use as `docker stats` counts it: without the page cache the kernel can drop."""
    memory = stats.get("memory_stats", {})
    extra = memory.get("stats", {})
    return max(0, memory.get("usage", 0) - extra.get("inactive_file", extra.get("total_inactive_file", 0)))


def sampled_server(container, prefix: str, stats: dict) -> Server:
    """A server's container, with a sample of its use (the engine's stats; labhub status and the
    exporter sample differently)."""
    user, name = server_owner(container, prefix)
    started = datetime.datetime.fromisoformat(container.attrs["State"]["StartedAt"][:26].rstrip("Z") + "+00:00")
    return Server(user=user, name=name, image=container.attrs["Config"]["Image"], started=started,
                  cpu_percent=_cpu_percent(stats), memory=memory_used(stats),
                  memory_limit=container.attrs["HostConfig"].get("Memory") or 0, gpus=held_gpus(container))


def _sampled(container, prefix: str) -> Server | None:
    """None for a server that stopped meanwhile."""
    try:
        return sampled_server(container, prefix, container.stats(stream=False))  # against the engine's previous sample
    except docker.errors.NotFound:
        return None


def _swarm_server(service: dict, task: dict, hostnames: dict[str, str]) -> Server:
    """A server's service and its running task (swarm mode): who, what and where from the
    manager's view; its use of CPU and memory is its node's to tell."""
    spec = service["Spec"]["TaskTemplate"]
    env = _environment(spec["ContainerSpec"].get("Env"))
    started = datetime.datetime.fromisoformat(task["Status"]["Timestamp"][:26].rstrip("Z") + "+00:00")
    return Server(user=env.get("JUPYTERHUB_USER", ""), name=env.get("JUPYTERHUB_SERVER_NAME", ""),
                  image=spec["ContainerSpec"]["Image"].split("@")[0], started=started, cpu_percent=None, memory=None,
                  memory_limit=spec.get("Resources", {}).get("Limits", {}).get("MemoryBytes", 0),
                  gpus=",".join(swarm.gpu_ids(task.get("GenericResources"))),  # assigned to the task
                  node=hostnames.get(task.get("NodeID", ""), task.get("NodeID", "")[:12]))


def _running_tasks(engine: docker.DockerClient) -> dict[str, dict]:
    """service id -> its running task, for every service (one call)."""
    return {task["ServiceID"]: task for task in engine.api.tasks(filters={"desired-state": "running"})}


def servers(engine: docker.DockerClient, stack: Stack, swarm_mode: bool = False) -> list[Server]:
    prefix = f"{stack.container_prefix}-"
    if swarm_mode:  # services (labhub.swarmspawner), on any node
        services = [sv for sv in engine.api.services(filters={"name": prefix}) if sv["Spec"]["Name"].startswith(prefix)]
        tasks, hostnames = _running_tasks(engine), {node.id: node.hostname for node in swarm.nodes(engine)}
        found = [_swarm_server(sv, tasks[sv["ID"]], hostnames) for sv in services if sv["ID"] in tasks]
        return sorted(found, key=lambda s: (s.user, s.name))
    running = [c for c in engine.containers.list(filters={"name": f"^{prefix}"}) if c.name.startswith(prefix)]
    with ThreadPoolExecutor() as pool:  # each sample takes the engine about a second
        sampled = [server for server in pool.map(lambda c: _sampled(c, prefix), running) if server]
    return sorted(sampled, key=lambda s: (s.user, s.name))


def _duration(delta: datetime.timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    return f"{minutes // 1440}d {minutes // 60 % 24}h" if minutes >= 1440 else f"{minutes // 60}h {minutes % 60:02d}m"


def table(found: list[Server], now: datetime.datetime) -> str:
    with_node = any(s.node for s in found)
    rows = [("USER", "SERVER", "IMAGE", "UP", "CPU", "MEMORY", "GPU") + (("NODE",) if with_node else ())]
    for s in found:
        used = "-" if s.memory is None else f"{s.memory / 2**20:,.0f}"
        rows.append((s.user, s.name or "-", s.image, _duration(now - s.started),
                     "-" if s.cpu_percent is None else f"{s.cpu_percent:.0f}%",
                     f"{used} / {s.memory_limit / 2**20:,.0f} MiB" if s.memory_limit else f"{used} MiB, no limit",
                     s.gpus or "-") + ((s.node,) if with_node else ()))
    return "\n".join(columns(rows) + [f"{len(found)} server(s) running"])


def nodes_table(engine: docker.DockerClient) -> str:
    """The swarm's nodes, each with its resources and the servers running there."""
    servers = {service["ID"] for service in engine.api.services(filters={"label": SERVER_LABEL})}
    running = Counter(task.get("NodeID") for service, task in _running_tasks(engine).items() if service in servers)
    rows = [("NODE", "ROLE", "STATE", "TAKES SERVERS", "CPUS", "MEMORY", "GPUS", "SERVERS")]
    for n in swarm.nodes(engine):
        rows.append((n.hostname, n.role, n.state if n.availability == "active" else f"{n.state} ({n.availability})",
                     "yes" if n.takes_servers else "no (drained)", f"{n.cpus:g}", f"{n.memory / 2**30:.1f} GiB",
                     str(len(n.gpus)), str(running[n.id])))
    return "\n".join(columns(rows))


@dataclass(frozen=True)
class Home:
    user: str
    used: int  # bytes
    quota: int  # bytes; 0: none
    enforced: bool  # the file system holds it to its quota (else LabHub only measures)

    @property
    def fraction(self) -> float:
        return self.used / self.quota if self.quota else 0.0


def homes(engine: docker.DockerClient, stack: Stack, s: Settings) -> list[Home]:
    """Every home with its use and quota, fullest first (then largest): as the file system counts
    them where it enforces quotas, else measured by du against the quota the user would have."""
    found = quota.probe(engine, stack, s, storage.probe_host_folders(engine, stack, s)[s.home_root]) if s.home_quota else None
    mounts = storage.home_mounts(engine, stack, s, "/homes", found)
    if not mounts:
        return []
    enforced = bool(found and found.name)
    out = stack.run_helper(engine, quota.measure_command(found), mounts=mounts, **quota.helper_options(found)).decode()
    overrides, groups = quota.Overrides(), quota.user_groups(DATABASE) if s.home_quota else {}
    rows = []
    for name, use in quota.parse_measured(out).items():
        user = unescape(name, escape_char="-")
        limit = use.limit or (quota.quota_for(user, groups.get(user, []), overrides, s.home_quota)[0] if s.home_quota else 0)
        rows.append(Home(user, use.used, limit, enforced and bool(use.limit)))
    return sorted(rows, key=_fullest_first)


def _fullest_first(h: Home):
    return -h.fraction, -h.used, h.user


def homes_table(found: list[Home]) -> str:
    rows = [("USER", "SIZE", "QUOTA", "USE")]
    for h in found:
        rows.append((h.user, quota.format_size(h.used), (quota.format_size(h.quota) if h.quota else "-") +
                     ("" if h.enforced or not h.quota else " (not enforced)"), f"{100 * h.fraction:.0f}%" if h.quota else "-"))
    full = [h.user for h in found if h.quota and h.fraction >= quota.WARN_AT]
    return "\n".join(columns(rows) + [f"{len(found)} home(s), {quota.format_size(sum(h.used for h in found))} in all" +
                                       (f"; {len(full)} at {quota.WARN_AT:.0%} of their quota or more" if full else "")])


def near_full(found: list[Home], running: list[Server]) -> list[str]:
    """A line for each running server's user whose home is near its quota (`labhub status`)."""
    users = {s.user for s in running}
    return [f"{printable(h.user)}'s home is {100 * h.fraction:.0f}% full ({quota.format_size(h.used)} of "
            f"{quota.format_size(h.quota)}): their saves fail at the quota" for h in found
            if h.user in users and h.quota and h.fraction >= quota.WARN_AT]
