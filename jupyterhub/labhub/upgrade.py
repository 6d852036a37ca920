"""`labhub upgrade`, the part that runs in the new hub image (./labhub builds the images before
and restarts the hub after): a backup, then JupyterHub's own database migration.

The hub is stopped for the migration, so no old hub writes to an upgraded database; user servers
keep running (cleanup_servers = False) and the restarted hub picks them up again."""

import subprocess
from pathlib import Path

import docker

from . import backup
from .settings import DATABASE, Settings, SettingError
from .stack import Stack


def stop_hub(engine: docker.DockerClient, stack: Stack) -> bool:
    """Stops this LabHub's hub container, if running; True if it was."""
    running = stack.hub_containers(engine)
    for hub in running:
        hub.stop(timeout=30)
    return bool(running)


def upgrade(engine: docker.DockerClient, stack: Stack, s: Settings, output: Path, log=print) -> None:
    archive = backup.backup(engine, stack, s, output, shared=False, excludes=[])
    log(f"labhub upgrade: backed up to {archive.relative_to(output.parent)}")
    if stop_hub(engine, stack):
        log("labhub upgrade: stopped the hub (user servers keep running)")
    if not DATABASE.exists():
        log("labhub upgrade: no hub database yet, nothing to migrate")
        return
    result = subprocess.run(["jupyterhub", "upgrade-db", f"--JupyterHub.db_url=sqlite:///{DATABASE}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode:
        raise SettingError(f"`jupyterhub upgrade-db` failed (the backup is {archive.name}):\n{result.stdout}")
    log("labhub upgrade: database upgraded to this JupyterHub's schema")
