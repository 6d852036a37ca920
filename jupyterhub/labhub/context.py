"""What every configure step of the hub takes: one context, made once per hub start (labhub.hub).

The engine's facts are probed once (labhub.probe): the hub's configuration and `labhub check` both
read them instead of asking again. This module holds only the dataclasses, so any module may name
them without importing the others.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import docker

from .settings import Settings, SettingError
from .stack import Stack

if TYPE_CHECKING:
    from .images import Catalog
    from .quota import Backend
    from .storage import HostFolder


@dataclass(frozen=True)
class EngineFacts:
    api_version: tuple[int, ...]
    cpus: int
    memory: int  # bytes
    folders: dict[str, "HostFolder"]  # host folder (and Docker's data root) -> its group, mode and file system
    gpus: list[str]  # GPU indexes servers may use
    errors: list[SettingError] = field(default_factory=list)  # what the probes found wrong
    docker_root: str = ""  # the engine's data root (images, volumes, the hub's state)
    home_quotas: "Backend | None" = None  # with LABHUB_HOME_QUOTA: how the home root's file system limits homes


@dataclass(frozen=True)
class HubContext:
    """Everything a configure step may need; steps take it whole (`configure(c, ctx)`)."""

    settings: Settings
    stack: Stack
    engine: docker.DockerClient
    facts: EngineFacts
    catalog: "Catalog"
    secret_dir: Path
    environ: Mapping[str, str]
