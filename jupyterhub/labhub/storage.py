"""Where users' files live, and as whom: a home per user (a Docker volume, or a folder under a
host root), the host's data folders, the group-shared folder and the cluster tree.

Host folders are bind mounts of the `mount` type, so a missing one fails loudly instead of being
created, root-owned, by Docker. The folders LabHub itself makes (homes and cluster subfolders under
host roots) are made once, with the user's owner, by a short-lived helper container: the hub never
sees the host's file system and never changes ownership of anything that exists.
"""

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import docker
from docker.errors import APIError

from . import hooks
from .files import write_atomic
from .settings import DATA_DIR, Settings, fail
from .stack import Stack

if TYPE_CHECKING:
    from .context import HubContext

HOME = "/home/jovyan"
SHARED_MOUNT = f"{HOME}/shared"
IMAGE_UID, IMAGE_GID = 1000, 1000  # jovyan in every LabHub user image
USER_IDS_FILE = DATA_DIR / "user-ids.json"


def _bind(source: str, target: str, read_only: bool = False) -> dict:
    return {"type": "bind", "source": source, "target": target, "read_only": read_only}


def host_folders(s: Settings) -> dict[str, str]:
    """Every host folder the settings name -> the setting naming it."""
    folders = {s.home_root: "HOME_ROOT", s.shared_dir: "SHARED_DIR", s.cluster_dir: "CLUSTER_DIR"}
    folders.update({m.host: "DATA_MOUNTS" for m in s.data_mounts})
    folders.pop("", None)
    return folders


@dataclass(frozen=True)
class HostFolder:
    gid: int
    mode: int  # permission bits, setgid included


def probe_host_folders(engine: docker.DockerClient, stack: Stack, s: Settings) -> dict[str, HostFolder]:
    """Checks that each host folder exists and reads its group and mode, from a throwaway container."""
    folders = list(host_folders(s))
    if not folders:
        return {}
    mounts = [docker.types.Mount(f"/probe/{i}", path, type="bind", read_only=True) for i, path in enumerate(folders)]
    try:
        out = stack.run_helper(engine, ["stat", "-c", "%g %a", *(m["Target"] for m in mounts)], mounts=mounts)
    except APIError as e:
        missing = next((path for path in folders if path in str(e)), None)
        if missing is None:
            raise
        raise fail(host_folders(s)[missing], f"host folder {missing} does not exist",
                   "create it (see README, Storage) or change the setting") from None
    found = [HostFolder(int(gid), int(mode, 8)) for gid, mode in map(str.split, out.decode().splitlines())]
    return dict(zip(folders, found, strict=True))


def home_mounts(engine: docker.DockerClient, stack: Stack, s: Settings, root: str) -> list[docker.types.Mount]:
    """Read-only mounts placing every user's home at root/<escaped user name>, for a helper
    container: the host's home root whole, or each user's home volume."""
    if s.home_root:
        return [docker.types.Mount(root, s.home_root, type="bind", read_only=True)]
    prefix = stack.home_volume.removesuffix("{username}")
    names = sorted(v.name for v in engine.volumes.list(filters={"name": prefix}) if v.name.startswith(prefix))
    return [docker.types.Mount(f"{root}/{name.removeprefix(prefix)}", name, read_only=True) for name in names]


class UserIds:
    """Host uids for LABHUB_USER_IDS=per-user: given out once, from FIRST_UID up, and remembered
    in the hub's state volume, so a user's files keep one owner across restarts and upgrades."""

    def __init__(self, first_uid: int, path: Path = USER_IDS_FILE):
        self.first_uid, self.path = first_uid, path
        self.ids = json.loads(path.read_text()) if path.exists() else {}

    def __call__(self, username: str) -> int:
        if username not in self.ids:
            self.ids[username] = max(self.ids.values(), default=self.first_uid - 1) + 1
            write_atomic(self.path, json.dumps(self.ids, indent=1, sort_keys=True))
        return self.ids[username]


def _make_folders(engine, stack: Stack, root: str, names: list[str], uid: int, gid: int) -> None:
    """Makes root/name for each missing name, owned by uid:gid; existing folders are left alone."""
    script = 'for d; do [ -d "$d" ] || install -d -o "$U" -g "$G" -m 0700 "$d"; done'
    stack.run_helper(engine, ["sh", "-c", script, "sh", *(f"/root-folder/{n}" for n in names)],
                     environment={"U": str(uid), "G": str(gid)},
                     mounts=[docker.types.Mount("/root-folder", root, type="bind")])


def configure(c, ctx: "HubContext") -> None:
    s, stack = ctx.settings, ctx.stack
    user_ids = UserIds(s.first_uid) if s.user_ids == "per-user" else None

    mounts = [_bind(m.host, m.container, m.read_only) for m in s.data_mounts]
    if s.home_root:
        mounts.append(_bind(f"{s.home_root}/{{username}}", HOME))
    else:
        hooks.merge(c, "volumes", {stack.home_volume: HOME})
    if s.shared_dir:
        mounts.append(_bind(s.shared_dir, SHARED_MOUNT))
        # Every user gets the shared folder's host group (as is, never a group made up in the
        # image); the folder's setgid bit and default ACL make what they create there the group's.
        hooks.merge(c, "extra_host_config", {"group_add": [str(ctx.facts.folders[s.shared_dir].gid)]})
    if s.cluster_dir:
        mounts.append(_bind(s.cluster_dir, s.cluster_dir, read_only=True))
        mounts.append(_bind(f"{s.cluster_dir}/{{username}}", f"{s.cluster_dir}/{{username}}"))
    hooks.merge(c, "mounts", mounts)

    def uid(spawner) -> int:
        return user_ids(spawner.escaped_name) if user_ids else IMAGE_UID

    # Always said, so that no image (a flavor that forgot `USER jovyan`) runs its server as root.
    hooks.merge(c, "extra_create_kwargs", lambda spawner: {"user": f"{uid(spawner)}:{IMAGE_GID}"})
    if user_ids:
        # Without a passwd entry for the uid, Docker would set HOME=/.
        hooks.merge(c, "environment", {"HOME": HOME})

    roots = [root for root in (s.home_root, s.cluster_dir) if root]
    if roots:
        async def make_own_folders(spawner):
            for root in roots:
                await asyncio.to_thread(_make_folders, ctx.engine, stack, root, [spawner.escaped_name], uid(spawner), IMAGE_GID)

        hooks.add_hook(c, "pre_spawn_hook", make_own_folders)
