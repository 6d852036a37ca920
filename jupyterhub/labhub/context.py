"""What every configure step of the hub takes: one context, made once per hub start.

The engine is asked once: its API version, CPUs, memory, the host folders the settings name and
its GPUs are probed here, and the hub's configuration (labhub.hub) and `labhub check` both read
these facts instead of asking again. A probe that finds a setting wrong (a missing host folder,
LABHUB_GPUS=on without a GPU) records the error: `check` lists it, the hub refuses to start on it.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import docker

from . import gpu, images, resources, storage, swarm
from .settings import Settings, SettingError
from .stack import Stack


@dataclass(frozen=True)
class EngineFacts:
    api_version: tuple[int, ...]
    cpus: int
    memory: int  # bytes
    folders: dict[str, storage.HostFolder]  # host folder -> its group and mode
    gpus: list[str]  # GPU indexes servers may use
    errors: list[SettingError] = field(default_factory=list)  # what the probes found wrong


def probe(engine: docker.DockerClient, stack: Stack, s: Settings) -> EngineFacts:
    info = engine.info()
    errors = []
    api_version = tuple(int(part) for part in engine.version()["ApiVersion"].split("."))
    cpus, memory = info["NCPU"], info["MemTotal"]
    placed = None  # swarm mode: the nodes servers may land on
    if s.swarm:
        try:
            swarm.check_manager(info)
        except SettingError as error:
            return EngineFacts(api_version=api_version, cpus=cpus, memory=memory, folders={}, gpus=[], errors=[error])
        placed = swarm.server_nodes(engine)
        if placed:  # limits that fit on every node servers may land on
            cpus, memory = min(node.cpus for node in placed), min(node.memory for node in placed)
    try:
        folders = storage.probe_host_folders(engine, stack, s)
    except SettingError as error:
        folders = {}
        errors.append(error)
    try:
        devices = gpu.available(info, engine, stack, s, placed)
    except SettingError as error:
        devices = []
        errors.append(error)
    return EngineFacts(api_version=api_version, cpus=int(cpus), memory=memory, folders=folders, gpus=devices,
                       errors=errors)


@dataclass(frozen=True)
class HubContext:
    """Everything a configure step may need; steps take it whole (`configure(c, ctx)`)."""

    settings: Settings
    stack: Stack
    engine: docker.DockerClient
    facts: EngineFacts
    catalog: images.Catalog
    secret_dir: Path
    environ: Mapping[str, str]


def make(engine: docker.DockerClient, stack: Stack, s: Settings, secret_dir: Path, environ) -> HubContext:
    """The hub's context; raises the first SettingError the engine's probes found."""
    facts = probe(engine, stack, s)
    if facts.errors:
        raise facts.errors[0]
    mem_limit, cpu_limit = resources.site_limits(facts, s)
    catalog = images.Catalog(engine, gpus_available=bool(facts.gpus), mem_limit=mem_limit, cpu_limit=cpu_limit)
    return HubContext(settings=s, stack=stack, engine=engine, facts=facts, catalog=catalog,
                      secret_dir=secret_dir, environ=environ)
