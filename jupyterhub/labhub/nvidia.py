"""The NVIDIA runtime's GPUs as an engine has them, asked of nvidia-smi in a throwaway container
of the hub's image: which there are (labhub.gpu gives them to servers) and their use now (the
monitoring's exporter, on the hub's machine and on each swarm node, which must stay light: no
JupyterHub here)."""

import logging
from dataclasses import dataclass

import docker
from docker.types import DeviceRequest

from .stack import run_helper

log = logging.getLogger("JupyterHub")


def has_runtime(info: dict) -> bool:
    """Whether the engine (its `docker info`) has the NVIDIA runtime, without which it has no GPU."""
    return "nvidia" in info.get("Runtimes", {})


def query(engine: docker.DockerClient, image: str, fields: str) -> list[list[str]]:
    """nvidia-smi's answer, a row of the fields per GPU, from a throwaway container of image given
    all GPUs (the runtime brings nvidia-smi in) and no network."""
    out = run_helper(engine, image, ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                     device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])])
    return [[value.strip() for value in line.split(",")] for line in out.decode().splitlines() if line.strip()]


def detect(info: dict, engine: docker.DockerClient, image: str) -> list[str]:
    """The engine's GPU indexes: none without the NVIDIA runtime; else what nvidia-smi lists."""
    if not has_runtime(info):
        return []
    try:
        return [index for index, in query(engine, image, "index")]
    except docker.errors.DockerException as e:
        log.warning("The engine has the NVIDIA runtime, but listing GPUs failed: %s", e)
        return []


@dataclass(frozen=True)
class GpuUse:
    index: str  # how labhub.gpu gives a GPU to a server on one machine
    uuid: str  # how a swarm node advertises it, and Swarm gives it
    utilization: float  # 0 to 1 over nvidia-smi's last sample period; NaN where the GPU does not tell
    memory_used: float  # bytes
    memory_total: float


USE_FIELDS = "index,uuid,utilization.gpu,memory.used,memory.total"


def use(engine: docker.DockerClient, image: str) -> list[GpuUse]:
    """Each GPU's use now (the monitoring's exporter)."""
    return [GpuUse(index, uuid, _number(utilization) / 100, _number(used) * 2**20, _number(total) * 2**20)
            for index, uuid, utilization, used, total in query(engine, image, USE_FIELDS)]


def _number(value: str) -> float:
    """A figure of nvidia-smi's (units off); "[N/A]" or "[Not Supported]" where a GPU cannot tell."""
    try:
        return float(value)
    except ValueError:
        return float("nan")
