"""`labhub status`: the user servers running now, what each runs and uses; `labhub homes`: how
much disk each user's home takes (their files and what they installed), largest first."""

import datetime
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import docker
from escapism import unescape

from . import storage
from .gpu import ASSIGNED_LABEL
from .swarm import gpu_ids
from .settings import Settings
from .stack import Stack


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


def _cpu_percent(stats: dict) -> float:
    cpu, pre = stats["cpu_stats"], stats["precpu_stats"]
    used = cpu["cpu_usage"]["total_usage"] - pre.get("cpu_usage", {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or [1])
    return 100.0 * used / system * cpus if system > 0 else 0.0


def _gpus(container) -> str:
    if ASSIGNED_LABEL in container.labels:
        return container.labels[ASSIGNED_LABEL]
    requests = container.attrs["HostConfig"].get("DeviceRequests") or []
    return "all" if any(r.get("Count") == -1 for r in requests) else ""


def _owner(container, prefix: str) -> tuple[str, str]:
    """The user and server name of a server's container. DockerSpawner (14.0) labels neither; it
    names the container {prefix}-{escaped user}--{escaped, lowercased server name}, and JupyterHub
    gives every server both names in its environment. Without those, the name is unescaped."""
    env = dict(v.partition("=")[::2] for v in container.attrs.get("Config", {}).get("Env") or [])
    if "JUPYTERHUB_USER" in env:
        return env["JUPYTERHUB_USER"], env.get("JUPYTERHUB_SERVER_NAME", "")
    user, _, name = container.name.removeprefix(prefix).partition("--")
    return unescape(user, escape_char="-"), unescape(name, escape_char="-")


def _server(container, prefix: str) -> Server:
    user, name = _owner(container, prefix)
    stats = container.stats(stream=False)  # one sample, against the engine's previous one
    memory = stats.get("memory_stats", {})
    started = datetime.datetime.fromisoformat(container.attrs["State"]["StartedAt"][:26].rstrip("Z") + "+00:00")
    return Server(user=user, name=name, image=(container.image.tags or [container.image.short_id])[0],
                  started=started, cpu_percent=_cpu_percent(stats), memory=memory.get("usage", 0),
                  memory_limit=memory.get("limit", 0), gpus=_gpus(container))


def _swarm_server(engine: docker.DockerClient, service: dict) -> Server | None:
    """A server's service (swarm mode): who, what and where from the manager's view; its use of
    CPU and memory is its node's to tell."""
    tasks = engine.api.tasks(filters={"service": service["ID"], "desired-state": "running"})
    if not tasks:
        return None
    task, spec = tasks[0], service["Spec"]["TaskTemplate"]
    env = dict(v.partition("=")[::2] for v in spec["ContainerSpec"].get("Env") or [])
    try:
        node = engine.api.inspect_node(task["NodeID"])["Description"]["Hostname"]
    except docker.errors.NotFound:
        node = task["NodeID"][:12]
    started = datetime.datetime.fromisoformat(task["Status"]["Timestamp"][:26].rstrip("Z") + "+00:00")
    return Server(user=env.get("JUPYTERHUB_USER", ""), name=env.get("JUPYTERHUB_SERVER_NAME", ""),
                  image=spec["ContainerSpec"]["Image"].split("@")[0], started=started, cpu_percent=None, memory=None,
                  memory_limit=spec.get("Resources", {}).get("Limits", {}).get("MemoryBytes", 0),
                  gpus=",".join(gpu_ids(task.get("GenericResources"))), node=node)  # assigned to the task


def servers(engine: docker.DockerClient, stack: Stack, swarm: bool = False) -> list[Server]:
    prefix = f"{stack.container_prefix}-"
    if swarm:  # services (labhub.swarm), on any node
        services = [sv for sv in engine.api.services(filters={"name": prefix}) if sv["Spec"]["Name"].startswith(prefix)]
        found = [server for server in map(lambda sv: _swarm_server(engine, sv), services) if server]
        return sorted(found, key=lambda s: (s.user, s.name))
    running = [c for c in engine.containers.list(filters={"name": f"^{prefix}"}) if c.name.startswith(prefix)]
    with ThreadPoolExecutor() as pool:  # each sample takes the engine about a second
        return sorted(pool.map(lambda c: _server(c, prefix), running), key=lambda s: (s.user, s.name))


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
                     f"{used} / {s.memory_limit / 2**20:,.0f} MiB", s.gpus or "-") + ((s.node,) if with_node else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + [f"{len(found)} server(s) running"])


def home_sizes(engine: docker.DockerClient, stack: Stack, s: Settings) -> list[tuple[str, int]]:
    """(user, bytes on disk) for every home, largest first, measured by du in a helper container."""
    mounts = storage.home_mounts(engine, stack, s, "/homes")
    if not mounts:
        return []
    out = stack.run_helper(engine, ["find", "/homes", "-mindepth", "1", "-maxdepth", "1", "-type", "d",
                                    "-exec", "du", "-sB1", "{}", "+"], mounts=mounts).decode()
    sizes = [(unescape(path.rpartition("/")[2], escape_char="-"), int(size))
             for size, path in (line.split("\t", 1) for line in out.splitlines())]
    return sorted(sizes, key=lambda row: (-row[1], row[0]))


def homes_table(sizes: list[tuple[str, int]]) -> str:
    width = max([len("USER")] + [len(user) for user, _ in sizes])
    lines = [f"{'USER'.ljust(width)}  {'SIZE':>10}"] + [f"{user.ljust(width)}  {size / 2**20:>6,.0f} MiB" for user, size in sizes]
    return "\n".join(lines + [f"{len(sizes)} home(s), {sum(size for _, size in sizes) / 2**30:,.1f} GiB in all"])
