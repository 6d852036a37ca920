"""Where users' files live, and as whom: a home per user (a Docker volume, or a folder under a
host root), the host's data folders, the group-shared folder and the cluster tree.

Host folders are bind mounts of the `mount` type, so a missing one fails loudly instead of being
created, root-owned, by Docker. The folders LabHub itself makes (homes and cluster areas under
host roots) are made once, with their owner, by a short-lived helper container: the hub never
sees the host's file system and never changes ownership of anything that exists, but for its own
former cluster areas (below).

Every server may run as uid 1000, so what keeps one user's cluster area from the others is a
group of its own: the area is root:<the user's id> 2770, and only that user's servers get the group.
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
    """A host id per user, given out once, from FIRST_UID up, and remembered in the hub's state
    volume: the user's uid with LABHUB_USER_IDS=per-user (so their files keep one owner across
    restarts and upgrades), and the group of their cluster area in either mode."""

    def __init__(self, first_uid: int, path: Path):
        self.first_uid, self.path = first_uid, path
        self.ids = json.loads(path.read_text()) if path.exists() else {}

    def __call__(self, username: str) -> int:
        if username not in self.ids:
            self.ids[username] = max(self.ids.values(), default=self.first_uid - 1) + 1
            write_atomic(self.path, json.dumps(self.ids, indent=1, sort_keys=True))
        return self.ids[username]


@dataclass(frozen=True)
class Area:
    """A folder of one user's that LabHub makes under a host root: its owner, group and mode."""
    root: str
    owner: int
    group: int
    mode: str  # octal, as chmod takes it
    former: str = ""  # "uid:gid" LabHub gave such a folder before: brought to the above


# For each area: made if missing; a former LabHub folder gets the new owner and mode (the folder
# itself: its files keep theirs) and is reported; anything else that exists is left alone.
_MAKE_AREAS = """
while [ $# -gt 0 ]; do
  d=$1 owner=$2 group=$3 mode=$4 former=$5; shift 5
  if [ ! -d "$d" ]; then
    install -d -o "$owner" -g "$group" -m "$mode" "$d"
  elif [ -n "$former" ] && [ "$(stat -c '%u:%g' "$d")" = "$former" ]; then
    chown "$owner:$group" "$d" && chmod "$mode" "$d" && echo "$d"
  fi
done
"""


def _make_areas(engine, stack: Stack, name: str, areas: list[Area]) -> list[str]:
    """Makes each area's root/name, in one helper container; returns a line for each former one changed."""
    args = [str(v) for i, a in enumerate(areas) for v in (f"/area/{i}/{name}", a.owner, a.group, a.mode, a.former)]
    out = stack.run_helper(engine, ["sh", "-c", _MAKE_AREAS, "sh", *args],
                           mounts=[docker.types.Mount(f"/area/{i}", a.root, type="bind") for i, a in enumerate(areas)])
    changed = {f"/area/{i}/{name}": a for i, a in enumerate(areas)}
    return [f"{a.root}/{name}: made by an older LabHub, owned by {a.former} (open to every server with that uid); "
            f"now {a.owner}:{a.group} mode {a.mode}, its user's alone" for a in map(changed.get, out.decode().split())]


def configure(c, ctx: "HubContext") -> None:
    s, stack = ctx.settings, ctx.stack
    user_ids = UserIds(s.first_uid, USER_IDS_FILE) if s.user_ids == "per-user" or s.cluster_dir else None

    def uid(spawner) -> int:
        return user_ids(spawner.escaped_name) if s.user_ids == "per-user" else IMAGE_UID

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
        # The group of the user's own area (root:<id> 2770): no other server has it.
        hooks.merge(c, "extra_host_config", lambda spawner: {"group_add": [str(user_ids(spawner.escaped_name))]})
    hooks.merge(c, "mounts", mounts)

    # Always said, so that no image (a flavor that forgot `USER jovyan`) runs its server as root.
    hooks.merge(c, "extra_create_kwargs", lambda spawner: {"user": f"{uid(spawner)}:{IMAGE_GID}"})
    if s.user_ids == "per-user":
        # Without a passwd entry for the uid, Docker would set HOME=/.
        hooks.merge(c, "environment", {"HOME": HOME})

    def areas(spawner) -> list[Area]:
        found = [Area(s.home_root, uid(spawner), IMAGE_GID, "0700")] if s.home_root else []
        if s.cluster_dir:  # LabHub made them uid 1000's before: every server's, in the default mode
            found.append(Area(s.cluster_dir, 0, user_ids(spawner.escaped_name), "2770", former=f"{IMAGE_UID}:{IMAGE_GID}"))
        return found

    if s.home_root or s.cluster_dir:
        async def make_own_folders(spawner):
            for line in await asyncio.to_thread(_make_areas, ctx.engine, stack, spawner.escaped_name, areas(spawner)):
                spawner.log.warning("labhub: %s", line)

        hooks.add_hook(c, "pre_spawn_hook", make_own_folders)
