"""LabHub's Prometheus exporter (`python -m labhub.exporter`, the monitoring-exporter service,
README: Monitoring; not a `labhub` command, whose imports would triple its memory): what no packaged exporter gives about user servers on Docker.

Per server: CPU time, memory against its limit, processes killed for memory, starts, GPUs held
and their use, last activity, image and node. Per GPU (an engine with the NVIDIA runtime): its use
and memory, from nvidia-smi every GPUS_EVERY seconds. Per home: use against its quota. In swarm
mode: each node's state, and the other nodes' parts kept running
(labhub.monitoring.keep_node_services); on each of those
nodes `python -m labhub.exporter --node PREFIX IMAGE` gives the CPU, memory, kills, starts and GPU
use of the servers there, and its GPUs' use (nvidia-smi in a container of IMAGE), which only that
node's engine knows.
It reads the engine (its socket) and the hub's database (read-only) and serves only on the
monitoring network (in swarm mode, the nodes' one too); user servers get nothing from it.
"""

import logging
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import docker
from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily

from . import monitoring, nvidia, settings, status, swarm
from .settings import DATABASE, Settings
from .stack import Stack, own

log = logging.getLogger("labhub.exporter")
PORT = monitoring.EXPORTER_PORT
NODES_EVERY = 30  # seconds between looks at the other nodes' parts (swarm mode)
SAMPLERS = 32  # servers sampled at once: a scrape takes about a second per 32 servers
HOMES_EVERY = 300  # seconds between measurements of the homes (du over every home is slow)
GPUS_EVERY = 60  # seconds between nvidia-smi's samples (each a throwaway container)
SERVER = ("user", "server")

# Its own registry: the default one has the metrics of whatever this imports (JupyterHub's own,
# through DockerSpawner), which the hub serves itself.
REGISTRY = CollectorRegistry()
OOM_KILLS = Counter("labhub_server_oom_kills", "Processes of the server the kernel killed for memory", SERVER,
                    registry=REGISTRY)
STARTS = Counter("labhub_server_starts", "Times the server's container started", SERVER, registry=REGISTRY)


def last_activity(database) -> dict[tuple[str, str], float]:
    """(user, server) -> the hub's last activity of that server (unix time), from its database."""
    if not database.exists():
        return {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT users.name, spawners.name, spawners.last_activity FROM spawners "
                          "JOIN users ON users.id = spawners.user_id WHERE spawners.last_activity IS NOT NULL").fetchall()
    return {(user, server or ""): datetime.fromisoformat(when).replace(tzinfo=timezone.utc).timestamp()
            for user, server, when in rows}


def held(gpus: str) -> list[str]:
    """The GPUs a server holds, each, from labhub.status's form: indexes or UUIDs ("0,2"), "all", or ""."""
    return [gpu for gpu in gpus.split(",") if gpu]


def gpu_count(gpus: str) -> float:
    """GPUs a server holds: "0,2" -> 2, "all" -> NaN (every GPU, however many)."""
    return float("nan") if gpus == "all" else float(len(held(gpus)))


class Collector:
    """Reads the engine at each scrape (a sample of every server's container at once), and the
    homes every HOMES_EVERY seconds in the background. Without a stack and settings, a node's
    sampler (swarm mode): only the use of the servers on this engine, and of its GPUs."""

    def __init__(self, engine: docker.DockerClient, prefix: str, stack: Stack | None = None, s: Settings | None = None,
                 helper_image: str = ""):
        self.engine, self.prefix, self.stack, self.s = engine, prefix, stack, s
        self.helper_image = helper_image or (stack.hub_image if stack else "")  # nvidia-smi's container
        self.homes: list[status.Home] = []
        self.homes_measured = 0.0
        self.gpus: list[nvidia.GpuUse] = []

    def measure_homes(self) -> None:
        while True:
            try:
                self.homes, self.homes_measured = status.homes(self.engine, self.stack, self.s), time.time()
            except Exception:  # the next round tries again; the measured time tells how old they are
                log.exception("measuring the homes")
            time.sleep(HOMES_EVERY)

    def measure_gpus(self) -> None:
        while True:
            try:
                self.gpus = nvidia.use(self.engine, self.helper_image)
            except Exception as e:  # the next round tries again; meanwhile no figures rather than old ones
                log.warning("measuring the GPUs: %s", e)
                self.gpus = []
            time.sleep(GPUS_EVERY)

    def watch_events(self) -> None:
        """Counts OOM kills and starts of servers' containers as the engine reports them."""
        filters = {"type": "container", "event": ["oom", "start"]}
        while True:
            try:
                for event in self.engine.events(decode=True, filters=filters):
                    name = event.get("Actor", {}).get("Attributes", {}).get("name", "")
                    if not name.startswith(self.prefix):
                        continue
                    try:
                        owner = status.server_owner(self.engine.containers.get(event["id"]), self.prefix)
                    except docker.errors.NotFound:
                        continue
                    (OOM_KILLS if event["status"] == "oom" else STARTS).labels(*owner).inc()
            except Exception as e:  # the engine restarted, say: watch again
                log.warning("watching the engine's events: %s", e)
                time.sleep(5)

    def _sample(self, container) -> tuple[status.Server, float] | None:
        """One server's use now, and the CPU time it used (status.Server has a percent instead);
        None if it stopped meanwhile."""
        try:
            stats = container.stats(stream=False, one_shot=True)  # at once, with no percent
        except docker.errors.NotFound:
            return None
        cpu_seconds = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0) / 1e9
        return status.sampled_server(container, self.prefix, stats), cpu_seconds

    def collect(self):
        info = GaugeMetricFamily("labhub_server_info", "A running user server: its image and node", labels=[*SERVER, "image", "node"])
        cpu = GaugeMetricFamily("labhub_server_cpu_seconds_total", "CPU time the server used", labels=SERVER)
        memory = GaugeMetricFamily("labhub_server_memory_bytes", "Memory the server uses (no droppable cache)", labels=SERVER)
        limit = GaugeMetricFamily("labhub_server_memory_limit_bytes", "The server's memory limit", labels=SERVER)
        gpus = GaugeMetricFamily("labhub_server_gpus", "GPUs the server holds (NaN: all of the node's)", labels=SERVER)
        holders = GaugeMetricFamily("labhub_server_gpu_info", "A GPU a server holds", labels=[*SERVER, "gpu"])
        activity = GaugeMetricFamily("labhub_server_last_activity_timestamp_seconds",
                                     "When the hub last saw activity in the server", labels=SERVER)
        # Of the GPUs as a whole: a GPU shared between servers (LABHUB_GPU_SHARING) counts for each.
        gpu_use = GaugeMetricFamily("labhub_server_gpu_utilization_ratio", "Use of the GPUs the server holds (mean)",
                                    labels=SERVER)
        gpu_memory = GaugeMetricFamily("labhub_server_gpu_memory_used_bytes", "Memory used on the GPUs the server holds",
                                       labels=SERVER)
        sampled = self._sampled()
        # Servers hold GPUs by index (labhub.gpu), or in swarm mode by UUID (Swarm's generic resources).
        measured_gpus = {held_as: g for g in self.gpus for held_as in (g.index, g.uuid)}
        for server, cpu_seconds in sampled:
            owner = (server.user, server.name)
            memory.add_metric(owner, server.memory)
            cpu.add_metric(owner, cpu_seconds)
            # Counted from zero while the server runs, so that its first kill is an increase.
            OOM_KILLS.labels(*owner)
            STARTS.labels(*owner)
            ids = [g.index for g in self.gpus] if server.gpus == "all" else held(server.gpus)
            measured = [measured_gpus[gpu] for gpu in ids if gpu in measured_gpus]
            if measured and len(measured) == len(ids):
                gpu_use.add_metric(owner, sum(g.utilization for g in measured) / len(measured))
                gpu_memory.add_metric(owner, sum(g.memory_used for g in measured))
        yield from (cpu, memory, gpu_use, gpu_memory)
        yield from self._gpus()
        if self.s is None:  # a node's sampler
            return
        seen = last_activity(DATABASE)
        # Who runs what where: this engine's servers, or in swarm mode every node's (the services).
        described = (status.servers(self.engine, self.stack, swarm_mode=True) if self.s.swarm
                     else [server for server, _ in sampled])
        for server in described:
            owner = (server.user, server.name)
            info.add_metric([*owner, server.image, server.node], 1)
            limit.add_metric(owner, server.memory_limit)
            gpus.add_metric(owner, gpu_count(server.gpus))
            for gpu in held(server.gpus):
                holders.add_metric([*owner, gpu], 1)
            if owner in seen:
                activity.add_metric(owner, seen[owner])
        yield from (info, limit, gpus, holders, activity)
        yield from self._homes()
        if self.s.swarm:
            nodes = GaugeMetricFamily("labhub_swarm_node_up", "1: the swarm node is ready", labels=["node", "role"])
            for node in swarm.nodes(self.engine):
                nodes.add_metric([node.hostname, node.role], 1 if node.state == "ready" else 0)
            yield nodes

    def _sampled(self) -> list[tuple[status.Server, float]]:
        """The servers running on this engine, with their use and CPU time."""
        containers = [c for c in self.engine.containers.list(filters={"name": f"^{self.prefix}"})
                      if c.name.startswith(self.prefix)]
        # At once: the engine answers a sample at its next collection, about a second away.
        with ThreadPoolExecutor(max_workers=min(SAMPLERS, len(containers) or 1)) as pool:
            return [sample for sample in pool.map(self._sample, containers) if sample]

    def _gpus(self):
        gpu = ["gpu", "uuid"]  # its index on its machine, and its UUID (unique across the nodes)
        use = GaugeMetricFamily("labhub_gpu_utilization_ratio", "The GPU's use (nvidia-smi's utilization.gpu)", labels=gpu)
        used = GaugeMetricFamily("labhub_gpu_memory_used_bytes", "The GPU's memory in use", labels=gpu)
        total = GaugeMetricFamily("labhub_gpu_memory_total_bytes", "The GPU's memory", labels=gpu)
        for measured in self.gpus:
            use.add_metric([measured.index, measured.uuid], measured.utilization)
            used.add_metric([measured.index, measured.uuid], measured.memory_used)
            total.add_metric([measured.index, measured.uuid], measured.memory_total)
        yield from (use, used, total)

    def _homes(self):
        used = GaugeMetricFamily("labhub_home_used_bytes", "Disk the user's home takes", labels=["user"])
        quota = GaugeMetricFamily("labhub_home_quota_bytes", "The home's quota (0: none)", labels=["user"])
        enforced = GaugeMetricFamily("labhub_home_quota_enforced", "1: the file system holds the home to its quota",
                                     labels=["user"])
        for home in self.homes:
            used.add_metric([home.user], home.used)
            quota.add_metric([home.user], home.quota)
            enforced.add_metric([home.user], 1 if home.enforced else 0)
        measured = GaugeMetricFamily("labhub_homes_measured_timestamp_seconds", "When the homes were last measured")
        measured.add_metric([], self.homes_measured)
        yield from (used, quota, enforced, measured)


def measures_gpus(s: Settings, engine_info: dict) -> bool:
    """Whether this machine's GPUs are sampled: where servers may get them (LABHUB_GPUS not off)
    and the engine has the NVIDIA runtime (in swarm mode, this node's; the others' samplers
    measure theirs)."""
    return s.gpus != "off" and nvidia.has_runtime(engine_info)


def keep_node_services(engine: docker.DockerClient, stack: Stack) -> None:
    """Swarm mode, forever (a thread): the other nodes' parts running, Prometheus on their network."""
    encryption = swarm.Encryption(engine, stack.hub_image_name)
    while True:
        try:
            prometheus = stack.service_containers(engine, "prometheus")
            if prometheus:
                monitoring.keep_node_services(engine, stack, prometheus[0].attrs["Config"]["Image"], encryption)
        except Exception:  # the next round tries again
            log.exception("keeping the other nodes' monitoring running")
        time.sleep(NODES_EVERY)


def main(argv: list[str] | None = None) -> None:
    """`python -m labhub.exporter`: the manager's (or the only machine's); `--node PREFIX IMAGE`: a
    swarm node's sampler of the servers whose containers' names start with PREFIX, and of the
    node's GPUs where it has them (nvidia-smi in a container of IMAGE, the hub's)."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s labhub exporter: %(message)s")
    engine = docker.from_env()
    if argv[:1] == ["--node"]:
        collector = Collector(engine, argv[1], helper_image=argv[2])
        work = [collector.measure_gpus] if nvidia.has_runtime(engine.info()) else []
    else:
        s = settings.load()
        stack = own(engine)
        collector = Collector(engine, f"{stack.container_prefix}-", stack, s)
        work = [collector.measure_homes] + ([lambda: keep_node_services(engine, stack)] if s.swarm else [])
        if measures_gpus(s, engine.info()):
            work.append(collector.measure_gpus)
    REGISTRY.register(collector)
    for job in (collector.watch_events, *work):
        threading.Thread(target=job, daemon=True).start()
    start_http_server(PORT, registry=REGISTRY)
    log.info("serving metrics on :%d", PORT)
    threading.Event().wait()


if __name__ == "__main__":
    main()
