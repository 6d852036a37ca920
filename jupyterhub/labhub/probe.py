"""The Docker engine's facts, asked once per start: its API version, CPUs, memory, the host folders
the settings name and its GPUs. The hub (labhub.hub) and `labhub check` both read them. A probe that
finds a setting wrong (a missing host folder, LABHUB_GPUS=on without a GPU) records the error:
`check` lists it, the hub refuses to start on it.
"""

import docker

from . import gpu, quota, storage, swarm
from .context import EngineFacts
from .settings import Settings, SettingError
from .stack import Stack


def engine_facts(engine: docker.DockerClient, stack: Stack, s: Settings) -> EngineFacts:
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
    home_quotas, docker_root = None, info.get("DockerRootDir", "")
    try:
        folders = storage.probe_host_folders(engine, stack, s, also=(docker_root,) if docker_root else ())
    except SettingError as error:
        folders = {}
        errors.append(error)
    else:
        if s.home_quota:
            home_quotas = quota.probe(engine, stack, s, folders[s.home_root])
    try:
        devices = gpu.available(info, engine, stack, s, placed)
    except SettingError as error:
        devices = []
        errors.append(error)
    return EngineFacts(api_version=api_version, cpus=int(cpus), memory=memory, folders=folders, gpus=devices,
                       errors=errors, docker_root=docker_root, home_quotas=home_quotas)
